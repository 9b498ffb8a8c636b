using System.Collections.Concurrent;
using System.Diagnostics;
using InSpatialFs.Security.Events;

namespace InSpatialFs.Security.Tests.Manager;

/// <summary>
/// The queue between request threads and the event consumer: every event is processed in order, a steady stream of
/// events costs the requests no wake-ups (the consumer polls while events keep coming), and an idle consumer sleeps
/// until the next event wakes it.
/// </summary>
public sealed class EventPipelineTests
{
    private static EventPipeline Pipeline(ConcurrentQueue<ulong> seen) => new(
        1024, _ => false, e => seen.Enqueue(e.Seq), _ => { }, () => false, () => { }, (ex, _) => Assert.Fail(ex.ToString()));

    private static FsEvent Event(ulong seq) => new() { Seq = seq, Op = FsOp.GetAttr, Path = "/x" };

    /// <summary>Spins until <paramref name="due"/> ticks of <paramref name="pace"/>; true when more than <paramref name="gap"/>
    /// ticks passed since the last call (the test thread was descheduled).</summary>
    private static bool PaceTo(Stopwatch pace, long due, ref long last, long gap)
    {
        while (pace.ElapsedTicks < due)
        {
            Thread.SpinWait(20);
        }

        long now = pace.ElapsedTicks;
        bool paused = now - last > gap;
        last = now;
        return paused;
    }

    [Test]
    public void A_steady_stream_of_events_is_processed_in_order_with_almost_no_wake_ups()
    {
        var seen = new ConcurrentQueue<ulong>();
        using EventPipeline pipeline = Pipeline(seen);
        const int Events = 2000;
        var pace = Stopwatch.StartNew();
        long last = 0, longGaps = 0;
        for (int i = 0; i < Events; i++)
        {
            // One event every 100 µs, as requests arrive from a busy container: far less than the consumer's 1 ms
            // period, so each period drains a few events and finds the queue empty again. Waking the consumer each
            // time it found the queue empty cost one wake-up per period, about Events / 10.
            if (PaceTo(pace, (i + 1) * Stopwatch.Frequency / 10_000, ref last, Stopwatch.Frequency / 1000))
            {
                longGaps++; // the test thread was descheduled for a whole period: the consumer may rightly sleep
            }

            Assert.That(pipeline.Record(Event((ulong)i)), Is.True);
        }

        Assert.That(pipeline.WaitIdle(TimeSpan.FromSeconds(30), () => true), Is.True);
        Assert.That(seen, Is.EqualTo(Enumerable.Range(0, Events).Select(i => (ulong)i)), "every event, in order");
        TestContext.Out.WriteLine($"{pipeline.Wakeups} wake-ups, {pipeline.Passes} consumer passes, {longGaps} producer pauses over 1 ms, for {Events} events over {pace.ElapsedMilliseconds} ms");
        // Only a quiet period puts the consumer to sleep: at most one wake-up per pause of the producer, plus the first.
        Assert.That(pipeline.Wakeups, Is.LessThanOrEqualTo(longGaps + 5));
    }

    [Test]
    public void Short_lived_processes_one_after_another_do_not_wake_the_consumer_for_each()
    {
        var seen = new ConcurrentQueue<ulong>();
        using EventPipeline pipeline = Pipeline(seen);
        const int Processes = 300;
        var pace = Stopwatch.StartNew();
        long last = 0, longGaps = 0;
        ulong seq = 0;
        for (int i = 0; i < Processes; i++)
        {
            // A shell loop in the container: each process makes its two events (open, release) and is gone; the next
            // one starts about 1.5 ms later (fork and exec). Each pause outlasts the consumer's poll period.
            if (PaceTo(pace, (i + 1) * Stopwatch.Frequency * 3 / 2000, ref last, Stopwatch.Frequency / 100))
            {
                longGaps++; // the test thread was descheduled for a whole quiet period: the consumer may rightly sleep
            }

            Assert.That(pipeline.Record(Event(seq++)), Is.True);
            Assert.That(pipeline.Record(Event(seq++)), Is.True);
        }

        Assert.That(pipeline.WaitIdle(TimeSpan.FromSeconds(30), () => true), Is.True);
        Assert.That(seen.Count, Is.EqualTo(2 * Processes));
        TestContext.Out.WriteLine($"{pipeline.Wakeups} wake-ups, {pipeline.Passes} consumer passes, {longGaps} producer pauses over 10 ms, for {Processes} processes over {pace.ElapsedMilliseconds} ms");
        // One empty poll ending the burst made this one wake-up per process.
        Assert.That(pipeline.Wakeups, Is.LessThanOrEqualTo(longGaps + 5));
        // A pass every 2 ms found the events of one process or two: about 225 passes, each a timer wake-up of the
        // consumer. The period grows while passes find few events, so one pass takes several processes.
        Assert.That(pipeline.Passes, Is.LessThan(Processes / 2), "consumer passes");
    }

    [Test]
    public void An_idle_consumer_sleeps_until_the_next_event_wakes_it()
    {
        var seen = new ConcurrentQueue<ulong>();
        using EventPipeline pipeline = Pipeline(seen);
        Assert.That(pipeline.Record(Event(1)), Is.True);
        Assert.That(pipeline.WaitIdle(TimeSpan.FromSeconds(10), () => true), Is.True);
        Thread.Sleep(100); // a quiet period ends the burst
        long passes = pipeline.Passes;
        Thread.Sleep(300);
        Assert.That(pipeline.Passes, Is.EqualTo(passes), "no polling while nothing happens");

        long wakeups = pipeline.Wakeups;
        Assert.That(pipeline.Record(Event(2)), Is.True);
        Assert.That(pipeline.WaitIdle(TimeSpan.FromSeconds(10), () => true), Is.True);
        Assert.That(seen, Is.EqualTo(new ulong[] { 1, 2 }));
        Assert.That(pipeline.Wakeups, Is.EqualTo(wakeups + 1), "the event woke it");
    }
}
