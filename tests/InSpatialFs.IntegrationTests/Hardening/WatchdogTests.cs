using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Hardening;

/// <summary>
/// Issue 10, the watchdog: WATCHDOG=1 is sent only while a probe through the mount is answered. The instance under test
/// serves a host directory that is itself another InSpatialFs mount; SIGSTOP of that lower daemon hangs every request of
/// the upper one in its reader threads (as a hung reader pool would), so the pings stop; SIGCONT brings them back.
/// systemd is played by a unix datagram socket (NOTIFY_SOCKET) and WATCHDOG_USEC.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class WatchdogTests
{
    private string _work = "";

    [SetUp]
    public void SetUp()
    {
        DaemonProcess.RequireMountable();
        _work = Path.Combine("/var/tmp", "isfs-wd-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_work);
    }

    [TearDown]
    public void TearDown()
    {
        Mounts.ForceUnmount(Path.Combine(_work, "upper"));
        Mounts.ForceUnmount(Path.Combine(_work, "lower"));
        Shell.Run($"rm -rf '{_work}'");
    }

    [Test]
    public void Pings_stop_while_the_mount_does_not_answer_and_resume_when_it_does()
    {
        string socketPath = Path.Combine(_work, "notify.sock");
        using var systemd = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        systemd.Bind(new UnixDomainSocketEndPoint(socketPath));
        using DaemonProcess lower = DaemonProcess.Start(Path.Combine(_work, "lower"), ["--memory", "--no-control", "--name", "wd-lower-" + _work[^8..], "--state-dir", Path.Combine(_work, "state-lower")]);
        using DaemonProcess upper = DaemonProcess.Start(Path.Combine(_work, "upper"),
            ["--source", lower.MountPoint, "--no-control", "--name", "wd-upper-" + _work[^8..], "--state-dir", Path.Combine(_work, "state-upper")],
            environment: new Dictionary<string, string> { ["NOTIFY_SOCKET"] = socketPath, ["WATCHDOG_USEC"] = "6000000" });
        int lowerServer = lower.ServerPid; // the lower mount is kept: its keeper's child serves it
        try
        {
            // WATCHDOG_USEC 6 s: a ping every 3 s while the last probe answer (one every 1.5 s) is younger than 3 s.
            int answering = CountPings(systemd, TimeSpan.FromSeconds(10));
            Assert.That(answering, Is.GreaterThanOrEqualTo(2), "pings every 3 s while the mount answers:\n" + upper.Output);

            Shell.Check($"kill -STOP {lowerServer}");
            Thread.Sleep(TimeSpan.FromSeconds(4.5)); // the last answer ages past half the watchdog interval
            Drain(systemd); // pings sent before that were legitimate
            int hung = CountPings(systemd, TimeSpan.FromSeconds(8));
            Assert.That(hung, Is.Zero, "no ping while the mount's requests hang");
            Assert.That(upper.Output, Does.Contain("withholding the watchdog ping"));

            Shell.Check($"kill -CONT {lowerServer}");
            int resumed = CountPings(systemd, TimeSpan.FromSeconds(10));
            Assert.That(resumed, Is.GreaterThanOrEqualTo(1), "pings resume once the mount answers");
            Assert.That(upper.Output, Does.Contain("answers again; pings resumed"));
        }
        finally
        {
            Shell.Run($"kill -CONT {lowerServer}");
        }

        Assert.That(upper.Stop(), Is.Zero, "upper stop:\n" + upper.Output);
        Assert.That(lower.Stop(), Is.Zero, "lower stop:\n" + lower.Output);
    }

    private static void Drain(Socket socket)
    {
        var buffer = new byte[4096];
        while (socket.Poll(TimeSpan.Zero, SelectMode.SelectRead))
        {
            socket.Receive(buffer);
        }
    }

    /// <summary>WATCHDOG=1 datagrams received within <paramref name="window"/> (other notifications are skipped).</summary>
    private static int CountPings(Socket socket, TimeSpan window)
    {
        int pings = 0;
        var buffer = new byte[4096];
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < window)
        {
            if (!socket.Poll(TimeSpan.FromMilliseconds(100), SelectMode.SelectRead))
            {
                continue;
            }

            int n = socket.Receive(buffer);
            if (Encoding.UTF8.GetString(buffer, 0, n).Contains("WATCHDOG=1", StringComparison.Ordinal))
            {
                pings++;
            }
        }

        return pings;
    }
}
