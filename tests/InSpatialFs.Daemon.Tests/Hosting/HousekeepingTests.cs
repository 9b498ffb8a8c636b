using System.Collections.Concurrent;
using System.Diagnostics;
using InSpatialFs.Interop.Threading;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.Daemon.Tests.Hosting;

/// <summary>The one thread of periodic upkeep that replaced the daemon's Timers (heartbeat, sweep, memory look, flushes).</summary>
public sealed class HousekeepingTests
{
    [Test]
    public void Periodic_jobs_run_at_their_own_periods_on_the_one_named_thread()
    {
        var house = new Housekeeping("hk-periods");
        var fast = new ConcurrentBag<(long At, string Thread)>();
        var slow = new ConcurrentBag<long>();
        var sw = Stopwatch.StartNew();
        using HousekeepingJob a = house.Schedule(() => fast.Add((sw.ElapsedMilliseconds, Thread.CurrentThread.Name ?? "")),
            TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(50));
        using HousekeepingJob b = house.Schedule(() => slow.Add(sw.ElapsedMilliseconds), TimeSpan.FromMilliseconds(300), TimeSpan.FromMilliseconds(300));
        Thread.Sleep(1000);
        a.Dispose();
        b.Dispose();
        int fastRuns = fast.Count, slowRuns = slow.Count;
        Thread.Sleep(200);
        Assert.Multiple(() =>
        {
            // 20 runs at 50 ms, 3 at 300 ms; a loaded machine may lose some, never gain.
            Assert.That(fastRuns, Is.InRange(10, 20), "runs every 50 ms in a second");
            Assert.That(slowRuns, Is.InRange(2, 3), "runs every 300 ms in a second");
            Assert.That(fast.Min(r => r.At), Is.GreaterThanOrEqualTo(42), "not before its first due time (a coarse clock's tick aside)");
            Assert.That(fast.Select(r => r.Thread).Distinct(), Is.EqualTo(new[] { "hk-periods" }));
            Assert.That(fast.Count, Is.EqualTo(fastRuns), "nothing runs after Dispose");
            Assert.That(slow.Count, Is.EqualTo(slowRuns), "nothing runs after Dispose");
        });
    }

    [Test]
    public void A_one_shot_runs_once_and_again_only_when_armed_again()
    {
        var house = new Housekeeping("hk-oneshot");
        int runs = 0;
        using HousekeepingJob job = house.Schedule(() => Interlocked.Increment(ref runs), Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        Thread.Sleep(200);
        Assert.That(Volatile.Read(ref runs), Is.Zero, "scheduled unarmed");
        job.Change(TimeSpan.FromMilliseconds(20), Timeout.InfiniteTimeSpan);
        Thread.Sleep(300);
        Assert.That(Volatile.Read(ref runs), Is.EqualTo(1), "armed once, ran once");
        job.Change(TimeSpan.FromMilliseconds(20), Timeout.InfiniteTimeSpan);
        Thread.Sleep(300);
        Assert.That(Volatile.Read(ref runs), Is.EqualTo(2));
        job.Dispose();
        job.Change(TimeSpan.FromMilliseconds(1), Timeout.InfiniteTimeSpan); // after Dispose: ignored, no exception
        Thread.Sleep(200);
        Assert.That(Volatile.Read(ref runs), Is.EqualTo(2));
    }

    [Test]
    public void An_earlier_due_time_wakes_the_thread_out_of_a_long_wait()
    {
        var house = new Housekeeping("hk-wake");
        using var ran = new ManualResetEventSlim();
        using HousekeepingJob far = house.Schedule(() => { }, TimeSpan.FromMinutes(10), TimeSpan.FromMinutes(10));
        Thread.Sleep(100); // the thread now waits for the job ten minutes away
        var sw = Stopwatch.StartNew();
        using HousekeepingJob near = house.Schedule(ran.Set, TimeSpan.FromMilliseconds(10), Timeout.InfiniteTimeSpan);
        Assert.That(ran.Wait(TimeSpan.FromSeconds(5)), Is.True);
        Assert.That(sw.ElapsedMilliseconds, Is.LessThan(1000));

        // A period shortened by Change takes effect at once too.
        int runs = 0;
        far.Dispose();
        using HousekeepingJob changed = house.Schedule(() => Interlocked.Increment(ref runs), TimeSpan.FromMinutes(10), TimeSpan.FromMinutes(10));
        Thread.Sleep(50);
        changed.Change(TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(10));
        Thread.Sleep(500);
        Assert.That(Volatile.Read(ref runs), Is.GreaterThan(5));
    }

    [Test]
    public void A_waiting_thread_does_not_wake_between_due_times()
    {
        var house = new Housekeeping("hk-idle");
        int runs = 0;
        using HousekeepingJob job = house.Schedule(() => Interlocked.Increment(ref runs), TimeSpan.FromMilliseconds(10), TimeSpan.FromSeconds(10));
        Thread.Sleep(300);
        Assert.That(Volatile.Read(ref runs), Is.EqualTo(1));
        long before = ProcessThreads.ContextSwitches(Environment.ProcessId, "hk-idle");
        Assert.That(before, Is.GreaterThan(0), "the thread is there, by its name");
        Thread.Sleep(1500);
        long idle = ProcessThreads.ContextSwitches(Environment.ProcessId, "hk-idle") - before;
        // A System.Threading.Timer firing costs 10-15 switches over four threads; here a job every 10 s costs one
        // wake-up, and between them the thread sleeps.
        Assert.That(idle, Is.Zero, "context switches of the housekeeping thread in 1.5 s between due times");
    }

    [Test]
    public void A_job_due_shortly_after_another_runs_in_the_same_wake_up_and_stays_in_step()
    {
        var house = new Housekeeping("hk-ride");
        var a = new ConcurrentQueue<long>();
        var b = new ConcurrentQueue<long>();
        var sw = Stopwatch.StartNew();
        // b is due 80 ms after a, within an eighth of its 1 s period: it runs when the thread wakes for a.
        using HousekeepingJob ja = house.Schedule(() => a.Enqueue(sw.ElapsedMilliseconds), TimeSpan.FromMilliseconds(300), TimeSpan.FromSeconds(1));
        using HousekeepingJob jb = house.Schedule(() => b.Enqueue(sw.ElapsedMilliseconds), TimeSpan.FromMilliseconds(380), TimeSpan.FromSeconds(1));
        // c is due 300 ms after a, beyond its slack: it waits for its own time.
        var c = new ConcurrentQueue<long>();
        using HousekeepingJob jc = house.Schedule(() => c.Enqueue(sw.ElapsedMilliseconds), TimeSpan.FromMilliseconds(600), Timeout.InfiniteTimeSpan);
        Thread.Sleep(2500);
        long[] ra = a.ToArray(), rb = b.ToArray(), rc = c.ToArray();
        Assert.Multiple(() =>
        {
            Assert.That(ra, Has.Length.InRange(2, 3));
            Assert.That(rb, Has.Length.EqualTo(ra.Length), "b runs as often as a");
            for (int i = 0; i < Math.Min(ra.Length, rb.Length); i++)
            {
                Assert.That(Math.Abs(rb[i] - ra[i]), Is.LessThan(40), $"run {i}: b rode along with a (a at {ra[i]} ms, b at {rb[i]} ms)");
            }

            Assert.That(rc, Has.Length.EqualTo(1));
            // Due times are kept on Environment.TickCount64, a coarse clock (4 ms ticks here), the Stopwatch is precise.
            Assert.That(rc[0], Is.GreaterThanOrEqualTo(592), "a one-shot never runs early");
        });
    }
}
