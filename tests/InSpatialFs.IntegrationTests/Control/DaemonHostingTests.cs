using System.Diagnostics;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Control;

/// <summary>How the daemon behaves as a service (issue 6, "systemd"): journal-friendly logging and SIGHUP reload.</summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class DaemonHostingTests
{
    private string _work = "";

    [SetUp]
    public void CreateWorkDirectory()
    {
        DaemonProcess.RequireMountable();
        _work = Path.Combine("/var/tmp", "inspatialfs-host-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_work);
    }

    [TearDown]
    public void Cleanup()
    {
        foreach (string m in new[] { "mnt", "mnt2", "control" })
        {
            Mounts.ForceUnmount(Path.Combine(_work, m));
        }

        Shell.Run($"rm -rf '{_work}'");
    }

    [Test]
    public void A_second_instance_on_the_same_state_directory_is_refused_and_mounts_nothing()
    {
        string state = Path.Combine(_work, "state");
        string second = Path.Combine(_work, "mnt2");
        Directory.CreateDirectory(second);
        using (DaemonProcess first = DaemonProcess.Start(Path.Combine(_work, "mnt"), ["--memory", "--no-control", "--state-dir", state, "--name", "first"]))
        {
            ShellResult refused = Shell.Run($"timeout -s KILL 20 '{DaemonProcess.Binary}' mount --memory --no-control --state-dir '{state}' --name second '{second}'", TimeSpan.FromSeconds(30));
            File.WriteAllText(Path.Combine(first.MountPoint, "still-served"), "yes");
            Assert.Multiple(() =>
            {
                Assert.That(refused.ExitCode, Is.EqualTo(1), refused.ToString());
                Assert.That(refused.Both, Does.Contain($"state directory {state} is in use by another instance (pid {first.Pid})"), refused.ToString());
                Assert.That(Mounts.IsFuse(second), Is.False, "the refused instance mounted nothing");
                Assert.That(File.ReadAllText(Path.Combine(first.MountPoint, "still-served")), Is.EqualTo("yes"), "the first instance is untouched");
            });

            // SIGKILL: the kernel drops the lock with the process, so no stale lock outlives it.
            Shell.Check($"kill -KILL {first.Pid}");
            Shell.Run($"for i in $(seq 100); do kill -0 {first.Pid} 2>/dev/null || break; sleep 0.05; done");
            Mounts.ForceUnmount(first.MountPoint);
        }

        using DaemonProcess again = DaemonProcess.Start(second, ["--memory", "--no-control", "--state-dir", state, "--name", "second"]);
        Assert.That(again.Stop(), Is.Zero, again.Output);
    }

    [Test]
    public void Sigterm_as_soon_as_the_mount_appears_unmounts_cleanly([Values(1, 2, 3, 4, 5)] int attempt)
    {
        // The signal lands while the daemon is still finishing its start (INIT, control mount): it must stop through
        // its own unmount, not die by the default action and leave a dead mount behind.
        string mnt = Path.Combine(_work, "mnt");
        using DaemonProcess daemon = DaemonProcess.Start(mnt, ["--memory", "--control", Path.Combine(_work, "control"), "--state-dir", Path.Combine(_work, "state"), "--name", "early-" + attempt]);
        int code = daemon.Stop();
        Assert.Multiple(() =>
        {
            Assert.That(code, Is.Zero, daemon.Output);
            Assert.That(Mounts.IsFuse(mnt), Is.False, "no mount left behind");
            Assert.That(Mounts.IsFuse(Path.Combine(_work, "control")), Is.False, "no control mount left behind");
        });
    }

    [TestCase(true, "<6>")]
    [TestCase(false, "info: ")]
    public void Log_lines_carry_syslog_priorities_only_under_systemd(bool journal, string prefix)
    {
        string mnt = Path.Combine(_work, "mnt");
        Directory.CreateDirectory(mnt);
        var env = new Dictionary<string, string>();
        if (journal)
        {
            env["JOURNAL_STREAM"] = "8:12345";
        }

        // env -u keeps a JOURNAL_STREAM of the test runner itself (run under systemd) out of the plain case.
        ShellResult r = Shell.Run($"env -u INVOCATION_ID {(journal ? "" : "-u JOURNAL_STREAM")} timeout -s TERM 4 '{DaemonProcess.Binary}' mount --memory --no-control --state-dir '{_work}/state-mnt' '{mnt}'", TimeSpan.FromSeconds(30), environment: env);
        string[] lines = r.Both.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Is.Not.Empty, r.ToString());
        Assert.That(lines.Any(l => l.Contains("serving", StringComparison.Ordinal)), Is.True, r.ToString());
        Assert.That(lines.Where(l => l.Contains("serving", StringComparison.Ordinal)), Has.All.Contain(prefix), r.ToString());
        if (!journal)
        {
            Assert.That(lines, Has.None.StartsWith("<"), r.ToString());
        }
    }

    [Test]
    public void Sighup_reloads_the_rules()
    {
        string control = Path.Combine(_work, "control");
        using DaemonProcess daemon = DaemonProcess.Start(Path.Combine(_work, "mnt"), ["--memory", "--control", control, "--state-dir", Path.Combine(_work, "state"), "--name", "hup"]);
        string Reloads() => Shell.Check($"head -1 '{control}/rules'");
        for (int i = 0; i < 200 && !Mounts.IsFuse(control); i++)
        {
            Thread.Sleep(25); // the control mount goes live just after the container mount
        }

        Assert.That(Reloads(), Does.Contain("reloads 0"));
        Shell.Check($"kill -HUP {daemon.Pid}");
        var clock = Stopwatch.StartNew();
        while (!Reloads().Contains("reloads 1", StringComparison.Ordinal) && clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            Thread.Sleep(50);
        }

        Assert.That(Reloads(), Does.Contain("reloads 1"));
        Assert.That(daemon.HasExited, Is.False, "SIGHUP stopped the daemon");
        Assert.That(daemon.Stop(), Is.Zero, "SIGTERM after reload did not exit 0:\n" + daemon.Output);
    }
}
