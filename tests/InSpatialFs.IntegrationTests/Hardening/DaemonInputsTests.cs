using System.Globalization;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Hardening;

/// <summary>
/// Issue 10: exact modes without a process-wide umask, bounded control lines, untrusted names escaped in `ctl` and the log.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class DaemonInputsTests
{
    private string _work = "";

    [SetUp]
    public void SetUp()
    {
        DaemonProcess.RequireMountable();
        _work = Path.Combine("/var/tmp", "isfs-inputs-" + Guid.NewGuid().ToString("N")[..8]);
        Shell.Check($"mkdir -m 0755 '{_work}' '{_work}/source' '{_work}/plain'");
    }

    [TearDown]
    public void TearDown()
    {
        Mounts.ForceUnmount(Path.Combine(_work, "mnt"));
        Mounts.ForceUnmount(Path.Combine(_work, "ctl"));
        Shell.Run($"rm -rf '{_work}'");
    }

    private DaemonProcess Start() =>
        DaemonProcess.Start(Path.Combine(_work, "mnt"),
            ["--source", Path.Combine(_work, "source"), "--control", Path.Combine(_work, "ctl"), "--state-dir", Path.Combine(_work, "state"), "--name", "inputs-" + _work[^8..]]);

    [Test]
    public void Host_creates_get_the_callers_modes_exactly_while_the_daemon_keeps_its_own_umask()
    {
        // The daemon runs under the unit's UMask=0077 (set here through a wrapper); callers create with umask 0.
        string wrapper = Path.Combine(_work, "inspatialfs-umask");
        File.WriteAllText(wrapper, $"#!/bin/sh\numask 0077\nexec '{DaemonProcess.Binary}' \"$@\"\n");
        Shell.Check($"chmod 0755 '{wrapper}'");
        string script = Path.Combine(_work, "create.sh");
        File.WriteAllText(script, "umask 0; cd \"$1\" && touch f && mkdir d && mkfifo p && install -m 0640 /dev/null g && mkdir -m 0751 e && stat -c '%n %a' f d p g e\n");
        string plain = Shell.Check($"sh '{script}' '{_work}/plain'");

        using DaemonProcess daemon = DaemonProcess.StartWith(wrapper, Path.Combine(_work, "mnt"),
            ["--source", Path.Combine(_work, "source"), "--no-control", "--state-dir", Path.Combine(_work, "state"), "--name", "umask-" + _work[^8..]]);
        string viaMount = Shell.Check($"sh '{script}' '{_work}/mnt'");
        string onHost = Shell.Check($"cd '{_work}/source' && stat -c '%n %a' f d p g e");
        Assert.Multiple(() =>
        {
            Assert.That(plain.Trim().Split('\n'), Is.EqualTo(new[] { "f 666", "d 777", "p 666", "g 640", "e 751" }), "positive control: a plain directory");
            Assert.That(viaMount, Is.EqualTo(plain), "through the mount");
            Assert.That(onHost, Is.EqualTo(plain), "on the host directory behind it");
            string status = File.ReadAllText($"/proc/{daemon.Pid}/status");
            Assert.That(status, Does.Contain("Umask:\t0077"), "no process-wide umask(0): the daemon's main thread keeps the unit's umask");
            Assert.That(Shell.Check($"stat -c '%a' '{_work}/state' '{_work}/state/incidents.jsonl'").Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(new[] { "700", "600" }));
        });
        Assert.That(daemon.Stop(), Is.Zero, daemon.Output);
    }

    [Test]
    public void A_200_MiB_control_line_fails_with_EINVAL_and_the_daemon_stays_small()
    {
        using DaemonProcess daemon = Start();
        Security.ControlFiles.WaitUntilServing(Path.Combine(_work, "ctl"), daemon);
        long before = RssKiB(daemon.Pid);
        ShellResult flood = Shell.Run($"head -c 200M /dev/zero | tr '\\0' a > '{_work}/ctl/control'", TimeSpan.FromMinutes(3));
        long after = RssKiB(daemon.Pid);
        TestContext.Out.WriteLine($"daemon RSS before {before} KiB, after a 200 MiB line {after} KiB");
        Assert.Multiple(() =>
        {
            Assert.That(flood.ExitCode, Is.Not.Zero, flood.ToString());
            Assert.That(flood.StdErr, Does.Contain("Invalid argument"));
            Assert.That(after - before, Is.LessThan(64 * 1024), "the daemon did not buffer the line");
            Assert.That(Security.ControlFiles.Eventually(() => daemon.Output.Contains("a command line longer than 4096 bytes", StringComparison.Ordinal), TimeSpan.FromSeconds(5)), Is.True);
        });

        // Positive control: a normal command on a new open still works; a line just under the limit is parsed (and refused by name).
        Assert.That(Shell.Run($"echo resume > '{_work}/ctl/control'").ExitCode, Is.Zero);
        ShellResult longButLegal = Shell.Run($"printf 'ack %04090d\\n' 1 > '{_work}/ctl/control'");
        Assert.That(longButLegal.StdErr, Does.Contain("Invalid argument"));
        Assert.That(Security.ControlFiles.Eventually(() => daemon.Output.Contains("is not an incident id", StringComparison.Ordinal), TimeSpan.FromSeconds(5)), Is.True,
            "the 4095-byte line reached the parser:\n" + daemon.Output);
        Assert.That(daemon.Stop(), Is.Zero, daemon.Output);
    }

    [Test]
    public void A_container_chosen_name_with_escape_sequences_is_shown_escaped_by_ctl_and_in_the_log()
    {
        using DaemonProcess daemon = Start();
        string control = Path.Combine(_work, "ctl");
        Security.ControlFiles.WaitUntilServing(control, daemon);
        Shell.Check($"touch \"$(printf '{_work}/mnt/evil\\033[2J\\033]0;pwned\\007\\nFAKE LINE')\"");
        Shell.Check($"touch '{_work}/mnt/plain-name'");
        ShellResult events = Shell.Run($"for i in $(seq 50); do '{DaemonProcess.Binary}' ctl '{control}' events > '{_work}/events.txt'; grep -q 'plain-name' '{_work}/events.txt' && break; sleep 0.2; done; cat '{_work}/events.txt'");
        Assert.Multiple(() =>
        {
            Assert.That(events.StdOut, Does.Contain("/plain-name"), "positive control: the plain create is listed");
            Assert.That(events.StdOut, Does.Contain("/evil\\x1b[2J\\x1b]0;pwned\\x07\\nFAKE LINE"), "the hostile name, escaped");
            Assert.That(events.StdOut, Does.Not.Contain("\u001b").And.Not.Contain("\u0007"), "no raw escape reaches the terminal");
            Assert.That(events.StdOut.Split('\n').Count(l => l.StartsWith("FAKE LINE", StringComparison.Ordinal)), Is.Zero, "the newline cannot forge a line");
        });

        // The log escapes too: a refused control line carrying an escape sequence is logged visibly.
        Assert.That(Shell.Run($"printf 'ack \\033[2Jx\\n' > '{control}/control'").ExitCode, Is.Not.Zero);
        Assert.That(Security.ControlFiles.Eventually(() => daemon.Output.Contains("\\x1b[2Jx", StringComparison.Ordinal), TimeSpan.FromSeconds(5)), Is.True, daemon.Output);
        Assert.That(daemon.Output, Does.Not.Contain("\u001b"));
        Assert.That(daemon.Output, Does.Contain("control:1:5: refused"), "positioned: line 1, column 5");
        Assert.That(daemon.Stop(), Is.Zero);
    }

    private static long RssKiB(int pid)
    {
        string line = File.ReadAllLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
    }
}
