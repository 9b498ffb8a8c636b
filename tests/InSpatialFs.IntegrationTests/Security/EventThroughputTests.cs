using System.Diagnostics;
using System.Globalization;
using InSpatialFs.TestKit.Processes;
using static InSpatialFs.IntegrationTests.Security.ControlFiles;

namespace InSpatialFs.IntegrationTests.Security;

/// <summary>
/// Issue 4, "Done when": the event throughput at the demo workload, with no drops. The workload is the demo's
/// normal activity (logs appended, files copied, listed, renamed in bulk, removed) repeated through a real mount.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class EventThroughputTests
{
    private const int Rounds = 20;

    private const string Workload = """
        set -e
        cd "$M"
        for r in $(seq 1 ROUNDS); do
          mkdir -p data/app$r/logs data/docs$r
          for i in 1 2 3 4 5 6 7 8 9 10; do echo "record $i" >> data/app$r/logs/app.log; done
          cp /etc/passwd tmp/passwd.$r && wc -l < tmp/passwd.$r > /dev/null
          ls usr/bin data/app$r > /dev/null
          mv data/app$r/logs/app.log data/app$r/logs/app.log.1
          for i in $(seq 1 20); do echo "doc $i" > data/docs$r/doc$i.txt; done
          for i in $(seq 1 20); do mv data/docs$r/doc$i.txt data/docs$r/doc$i.txt.locked; done
          cat data/docs$r/*.locked > /dev/null
          rm -r data/docs$r data/app$r tmp/passwd.$r
        done
        """;

    private SecuredMount _mount = null!;

    [OneTimeSetUp]
    public void Mount() => _mount = SecuredMount.Start("standard");

    [OneTimeTearDown]
    public void Unmount() => _mount?.Dispose();

    [Test]
    public void A_demo_like_workload_drops_no_events_and_every_event_reaches_the_readers()
    {
        Dictionary<string, string> start = _mount.Status();
        var clock = Stopwatch.StartNew();
        ShellResult run = _mount.Sh(Workload.Replace("ROUNDS", Rounds.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal));
        clock.Stop();
        Assert.That(run.ExitCode, Is.Zero, run.ToString());

        Dictionary<string, string> end = _mount.Status();
        long ops = Number(end, "ops") - Number(start, "ops");
        long recorded = Number(end, "events_recorded") - Number(start, "events_recorded");
        Assert.That(ops, Is.GreaterThan(3000), "a few thousand mediated operations");
        Assert.That(recorded, Is.GreaterThan(2000));
        Assert.That(end["events_dropped"], Is.EqualTo("0"), "the bounded queue never overflowed");

        // Every recorded event was analysed and reached the events file: its last sequence number is the count recorded.
        long total = Number(end, "events_recorded");
        Assert.That(Eventually(() => LastSeq() >= total, TimeSpan.FromSeconds(20)), Is.True, $"events file ends at seq {LastSeq()}, {total} recorded");

        double seconds = clock.Elapsed.TotalSeconds;
        TestContext.Out.WriteLine(FormattableString.Invariant(
            $"demo workload: {ops} mediated ops and {recorded} events in {seconds:0.00} s = {ops / seconds:0} ops/s, {recorded / seconds:0} events/s, dropped 0"));
    }

    [Test]
    public void A_metadata_burst_from_one_process_drops_no_events()
    {
        // Without the shell's fork and exec per command the daemon sees its callers as fast as one process can go.
        string fsmeta = Path.Combine(DaemonProcess.RepoRoot, "native", "build", "fsmeta");
        Dictionary<string, string> start = _mount.Status();
        var clock = Stopwatch.StartNew();
        ShellResult run = _mount.Sh($"mkdir \"$M/tmp/burst\" && '{fsmeta}' \"$M/tmp/burst\" 4000 20");
        clock.Stop();
        Assert.That(run.ExitCode, Is.Zero, run.ToString());

        Dictionary<string, string> end = _mount.Status();
        long ops = Number(end, "ops") - Number(start, "ops");
        long recorded = Number(end, "events_recorded") - Number(start, "events_recorded");
        Assert.That(recorded, Is.GreaterThanOrEqualTo(8000), "create and unlink of 4000 files are events");
        Assert.That(end["events_dropped"], Is.EqualTo("0"));
        long total = Number(end, "events_recorded");
        Assert.That(Eventually(() => LastSeq() >= total, TimeSpan.FromSeconds(20)), Is.True, $"events file ends at seq {LastSeq()}, {total} recorded");
        double seconds = clock.Elapsed.TotalSeconds;
        TestContext.Out.WriteLine(FormattableString.Invariant(
            $"metadata burst: {ops} mediated ops and {recorded} events in {seconds:0.00} s = {ops / seconds:0} ops/s, {recorded / seconds:0} events/s, dropped 0\n{run.StdOut}"));
    }

    [Test]
    public void A_non_blocking_read_of_events_ends_at_the_end_of_the_log_without_waiting()
    {
        // A blocking reader waits for new events; an O_NONBLOCK one (ctl events, tests) must get end of file at once.
        Assert.That(_mount.Fsop("read $M/etc/hosts"), Is.EqualTo("OK"));
        // Before the fix every such read waited a 250 ms poll at the end of the log: five took at least 1.25 s.
        var buffer = new byte[1 << 20];
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < 5; i++)
        {
            Assert.That(ReadEventsToEnd(buffer), Is.GreaterThan(0));
        }

        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(1)), "five reads to the end of the log");
    }

    /// <summary>Reads the events file to its end (O_NONBLOCK) in large chunks; returns the bytes read.</summary>
    private long ReadEventsToEnd(byte[] buffer)
    {
        string path = Path.Combine(_mount.ControlDirectory, "events");
        int fd = Interop.LibC.open(path, Interop.LibC.O_RDONLY | Interop.LibC.O_NONBLOCK | Interop.LibC.O_CLOEXEC, 0);
        Assert.That(fd, Is.GreaterThanOrEqualTo(0), $"open {path}");
        using var stream = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true), FileAccess.Read, bufferSize: 0);
        long total = 0;
        int n;
        while ((n = stream.Read(buffer)) > 0)
        {
            total += n;
        }

        return total;
    }

    private long LastSeq() => _mount.Events().Select(e => long.Parse(Str(e, "evt.seq"), CultureInfo.InvariantCulture)).DefaultIfEmpty(0).Max();

    private static long Number(Dictionary<string, string> status, string key) => long.Parse(status[key], CultureInfo.InvariantCulture);
}
