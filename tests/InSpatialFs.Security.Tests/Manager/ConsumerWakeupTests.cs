using System.Diagnostics;
using InSpatialFs.Security.Events;

namespace InSpatialFs.Security.Tests.Manager;

/// <summary>
/// The event consumer's wake-up: a sleeping consumer wakes for any event; a lingering one (busy a moment ago, polling
/// on a timer) wakes early only for urgent events, so routine events cost request threads no futex wake.
/// Bounds are generous (the test machines are shared): "early" is well under the wait that would otherwise pass.
/// </summary>
public sealed class ConsumerWakeupTests
{
    private static TimeSpan Timed(Action wait, Action? fromAnotherThread, int delayMs = 100)
    {
        using var started = new ManualResetEventSlim();
        Task other = Task.Run(() =>
        {
            started.Wait();
            Thread.Sleep(delayMs);
            fromAnotherThread?.Invoke();
        });
        var clock = Stopwatch.StartNew();
        started.Set();
        wait();
        TimeSpan elapsed = clock.Elapsed;
        other.Wait();
        return elapsed;
    }

    [Test]
    public void A_sleeping_consumer_wakes_for_a_routine_event()
    {
        using var w = new ConsumerWakeup();
        TimeSpan elapsed = Timed(() => w.Sleep(() => false, 20_000), () => w.Wake(urgent: false));
        Assert.That(elapsed, Is.LessThan(TimeSpan.FromSeconds(10)));
    }

    [Test]
    public void A_lingering_consumer_wakes_early_for_an_urgent_event_and_not_for_a_routine_one()
    {
        using var w = new ConsumerWakeup();
        TimeSpan urgent = Timed(() => w.Linger(20_000), () => w.Wake(urgent: true));
        TimeSpan routine = Timed(() => w.Linger(1_500), () => w.Wake(urgent: false));
        Assert.Multiple(() =>
        {
            Assert.That(urgent, Is.LessThan(TimeSpan.FromSeconds(10)), "urgent: woken long before the 20 s linger ends");
            Assert.That(routine, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(1_400)), "routine: the linger runs its course");
        });
    }

    [Test]
    public void An_urgent_event_queued_just_before_the_linger_is_not_missed()
    {
        using var w = new ConsumerWakeup();
        w.Wake(urgent: true); // the consumer is awake: no signal, only the flag
        TimeSpan pending = Timed(() => w.Linger(20_000), null);
        TimeSpan next = Timed(() => w.Linger(1_500), null);
        Assert.Multiple(() =>
        {
            Assert.That(pending, Is.LessThan(TimeSpan.FromSeconds(10)), "the pending urgent flag ends the linger at once");
            Assert.That(next, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(1_400)), "and is consumed by it");
        });
    }
}
