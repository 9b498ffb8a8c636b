using System.Diagnostics;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Control;

/// <summary>How the daemon behaves as a service (issue 6, "systemd"): journal-friendly logging and SIGHUP reload.</summary>
[TestFixture]
[NonParallelizable]
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
        foreach (string m in new[] { "mnt", "control" })
        {
            Mounts.ForceUnmount(Path.Combine(_work, m));
        }

        Shell.Run($"rm -rf '{_work}'");
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
        ShellResult r = Shell.Run($"env -u INVOCATION_ID {(journal ? "" : "-u JOURNAL_STREAM")} timeout -s TERM 4 '{DaemonProcess.Binary}' mount --memory --no-control '{mnt}'", TimeSpan.FromSeconds(30), environment: env);
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
