using System.Text.Json;
using InSpatialFs.Daemon.Cli;
using InSpatialFs.Daemon.Hosting;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.Daemon.Tests.Hardening;

/// <summary>
/// Issue 10, "Cannot restart after a crash" (unit side) and "escape untrusted names": the template unit verifies with
/// systemd-analyze and carries the new directives; terminal output escapes control characters.
/// </summary>
[TestFixture]
public sealed class SystemdUnitTests
{
    private static string UnitPath => Path.Combine(DaemonProcess.RepoRoot, "scripts", "systemd", "inspatialfs@.service");

    [TestCase("inspatialfs-prune.service")]
    [TestCase("inspatialfs-prune.timer")]
    [Category("Mount")]
    public void The_prune_units_pass_systemd_analyze_verify(string unit)
    {
        if (!Shell.Has("systemd-analyze"))
        {
            Assert.Ignore("systemd-analyze is not installed");
        }

        string dir = Path.Combine(Path.GetTempPath(), "isfs-unit-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        try
        {
            // A timer is verified with the service it starts; the service's ExecStart must exist.
            foreach (string name in new[] { "inspatialfs-prune.service", "inspatialfs-prune.timer" })
            {
                string text = File.ReadAllText(Path.Combine(DaemonProcess.RepoRoot, "scripts", "systemd", name));
                File.WriteAllText(Path.Combine(dir, name), text.Replace("/usr/local/bin/inspatialfs", DaemonProcess.Binary, StringComparison.Ordinal));
            }

            ShellResult verified = Shell.Run($"systemd-analyze verify '{Path.Combine(dir, unit)}'");
            Assert.That((verified.ExitCode, verified.Both.Trim()), Is.EqualTo((0, "")), verified.ToString());
            Assert.That(File.ReadAllText(Path.Combine(dir, "inspatialfs-prune.service")), Does.Contain($"ExecStart={DaemonProcess.Binary} prune --older-than 7d"));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Test]
    [Category("Mount")]
    public void The_unit_passes_systemd_analyze_verify_and_a_broken_copy_does_not()
    {
        if (!Shell.Has("systemd-analyze"))
        {
            Assert.Ignore("systemd-analyze is not installed");
        }

        string dir = Path.Combine(Path.GetTempPath(), "isfs-unit-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        try
        {
            // verify also checks that ExecStart's program exists: point it at the built daemon, change nothing else.
            string unit = File.ReadAllText(UnitPath).Replace("/usr/local/bin/inspatialfs", DaemonProcess.Binary, StringComparison.Ordinal);
            string copy = Path.Combine(dir, "inspatialfs@.service");
            File.WriteAllText(copy, unit);
            ShellResult verified = Shell.Run($"systemd-analyze verify '{copy}'");
            Assert.That((verified.ExitCode, verified.Both.Trim()), Is.EqualTo((0, "")), verified.ToString());

            // Positive control: verify does read our directives (a bad value is reported).
            File.WriteAllText(copy, unit.Replace("RestartPreventExitStatus=2", "RestartPreventExitStatus=two", StringComparison.Ordinal));
            ShellResult broken = Shell.Run($"systemd-analyze verify '{copy}'");
            Assert.That(broken.Both, Does.Contain("RestartPreventExitStatus").Or.Contain("Failed to parse"), broken.ToString());
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [TestCase("Restart=on-failure")]
    [TestCase("RestartPreventExitStatus=2")]
    [TestCase("OOMScoreAdjust=-900")]
    [TestCase("WatchdogSec=30")]
    [TestCase("StateDirectoryMode=0700")]
    [TestCase("RuntimeDirectoryMode=0700")]
    [TestCase("UMask=0077")]
    [TestCase("ExecStart=/usr/local/bin/inspatialfs mount --config /etc/inspatialfs/%i.yaml --name %i")]
    public void The_unit_carries_the_directive(string directive)
    {
        Assert.That(File.ReadAllLines(UnitPath), Does.Contain(directive));
        Assert.That(ExitCodes.UsageError, Is.EqualTo(2), "RestartPreventExitStatus names the usage/config exit code");
    }

    [TestCase("plain name", "plain name")]
    [TestCase("\u001b[31mred\u001b[0m", "\\x1b[31mred\\x1b[0m")]
    [TestCase("two\nlines\r", "two\\nlines\\r")]
    [TestCase("back\\slash", "back\\\\slash")]
    [TestCase("c1\u009bx", "c1\\x9bx")]
    [TestCase("bad\uFFFDutf8", "bad\\ufffdutf8")]
    [TestCase("emoji 😀 ok", "emoji 😀 ok")]
    public void Terminal_text_escapes_control_characters_visibly(string input, string shown)
    {
        Assert.That(TerminalText.Escape(input), Is.EqualTo(shown));
    }

    [Test]
    public void Ctl_event_and_incident_lines_show_a_hostile_name_escaped()
    {
        string evil = "/tmp/\u001b]0;owned\u0007\u001b[2J\nFAKE 12:00:00 ALLOW";
        string eventLine = JsonSerializer.Serialize(new Dictionary<string, string>
        {
            ["evt.time"] = "2026-12-02T05:00:00.000000Z", ["evt.decision"] = "deny", ["evt.op"] = "create", ["fs.path"] = evil, ["proc.name"] = "sh\u001b[1m",
        });
        string human = CtlCommand.HumanEvent(eventLine);
        Assert.That(human, Does.Not.Contain("\u001b").And.Not.Contain("\n").And.Not.Contain("\u0007"));
        Assert.That(human, Does.Contain("/tmp/\\x1b]0;owned\\x07\\x1b[2J\\nFAKE 12:00:00 ALLOW").And.Contain("sh\\x1b[1m"));

        using var incident = JsonDocument.Parse(JsonSerializer.Serialize(new Dictionary<string, string> { ["id"] = "inc-1", ["output"] = "read of " + evil }));
        string line = CtlCommand.HumanIncident(incident.RootElement);
        Assert.That(line, Does.Not.Contain("\u001b").And.Contain("read of /tmp/\\x1b]0;owned"));
        Assert.That(CtlCommand.HumanEvent("not json \u001b[2J"), Is.EqualTo("not json \\x1b[2J"), "an unparsable line is escaped too");
    }
}
