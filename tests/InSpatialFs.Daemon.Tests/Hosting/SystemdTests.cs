using System.Net.Sockets;
using System.Text;
using InSpatialFs.Daemon.Hosting;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.Daemon.Tests.Hosting;

public sealed class SystemdTests
{
    [Test]
    public void Notifier_sends_ready_status_stopping_and_watchdog_datagrams()
    {
        string path = Path.Combine(Path.GetTempPath(), "notify-" + Guid.NewGuid().ToString("N")[..8] + ".sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.ReceiveTimeout = 2000;
        try
        {
            using var notifier = new SystemdNotifier(path, watchdogUsec: "30000000", watchdogPid: Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Assert.That(notifier.Enabled, Is.True);
            Assert.That(notifier.WatchdogInterval, Is.EqualTo(TimeSpan.FromSeconds(30)));

            notifier.Ready("serving /mnt");
            notifier.Status("ops=5");
            notifier.WatchdogPing();
            notifier.Stopping("unmounting");

            var buffer = new byte[4096];
            string Next() => Encoding.UTF8.GetString(buffer, 0, listener.Receive(buffer));
            Assert.That(Next(), Does.StartWith("READY=1\nSTATUS=serving /mnt\nMAINPID="));
            Assert.That(Next(), Is.EqualTo("STATUS=ops=5\n"));
            Assert.That(Next(), Is.EqualTo("WATCHDOG=1\n"));
            Assert.That(Next(), Is.EqualTo("STOPPING=1\nSTATUS=unmounting\n"));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public void Notifier_is_silent_without_notify_socket_and_ignores_a_foreign_watchdog()
    {
        using var notifier = new SystemdNotifier(notifySocket: "", watchdogUsec: "1000000", watchdogPid: "1");
        Assert.That(notifier.Enabled, Is.False);
        Assert.That(notifier.WatchdogInterval, Is.Null, "WATCHDOG_PID names another process");
        Assert.DoesNotThrow(() => notifier.Ready("x"));
        using var ours = new SystemdNotifier(notifySocket: "", watchdogUsec: "1000000", watchdogPid: Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.That(ours.WatchdogInterval, Is.EqualTo(TimeSpan.FromSeconds(1)), "the control: the same watchdog naming this process is taken");
    }

    [Test]
    public void Notifier_reaches_an_abstract_socket()
    {
        string name = "inspatialfs-test-" + Guid.NewGuid().ToString("N")[..8];
        using var listener = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint("\0" + name));
        listener.ReceiveTimeout = 2000;
        using var notifier = new SystemdNotifier("@" + name);
        notifier.Status("hello");
        var buffer = new byte[256];
        Assert.That(Encoding.UTF8.GetString(buffer, 0, listener.Receive(buffer)), Is.EqualTo("STATUS=hello\n"));
    }

    [Test]
    public void Unit_file_passes_systemd_analyze_verify()
    {
        if (!Shell.Has("systemd-analyze"))
        {
            Assert.Ignore("systemd-analyze is not installed");
        }

        // verify checks that ExecStart exists: point it at the built binary, under the instance name.
        string dir = Path.Combine(Path.GetTempPath(), "unit-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        try
        {
            string unit = File.ReadAllText(Path.Combine(DaemonProcess.RepoRoot, "scripts", "systemd", "inspatialfs@.service"))
                .Replace("/usr/local/bin/inspatialfs", "/bin/true", StringComparison.Ordinal)
                .Replace("ConditionPathExists=/etc/inspatialfs/%i.yaml", "ConditionPathExists=/", StringComparison.Ordinal);
            string path = Path.Combine(dir, "inspatialfs@.service");
            File.WriteAllText(path, unit);
            Shell.Check($"ln -s inspatialfs@.service '{dir}/inspatialfs@test.service'");
            ShellResult r = Shell.Run($"cd '{dir}' && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify ./inspatialfs@test.service");
            Assert.That(r.ExitCode, Is.Zero, r.ToString());
            Assert.That(r.Both, Does.Not.Contain("Unknown key").And.Not.Contain("Failed to parse"), r.ToString());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
