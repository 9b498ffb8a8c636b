using InSpatialFs.Interop.Diagnostics;

namespace InSpatialFs.Storage.Tests.Host;

/// <summary>The bound on log lines a container can provoke: a burst per window, then one line saying how many were left out.</summary>
[TestFixture]
public sealed class LogThrottleTests
{
    [Test]
    public void A_burst_per_window_then_the_count_of_what_was_left_out()
    {
        var throttle = new LogThrottle(3, TimeSpan.FromMilliseconds(200));
        int allowed = 0;
        for (int i = 0; i < 10; i++)
        {
            if (throttle.Allow(out long notLogged))
            {
                allowed++;
                Assert.That(notLogged, Is.Zero, "nothing was left out yet");
            }
        }

        Assert.That(allowed, Is.EqualTo(3));
        Thread.Sleep(250);
        Assert.That(throttle.Allow(out long left), Is.True, "a new window lets a line through");
        Assert.That(left, Is.EqualTo(7), "and says how many the last one left out");
        Assert.That(throttle.Allow(out left), Is.True);
        Assert.That(left, Is.Zero, "said once");
    }
}
