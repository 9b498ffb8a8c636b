using InSpatialFs.Daemon.Runtime;

namespace InSpatialFs.Daemon.Tests.Hosting;

public sealed class IdleMemoryReturnTests
{
    private const long MiB = 1L << 20;

    [Test]
    public void A_grown_heap_is_returned_only_once_an_interval_was_quiet()
    {
        var idle = new IdleMemoryReturn();
        idle.Returned(10 * MiB); // what the collection after start left
        Assert.Multiple(() =>
        {
            Assert.That(idle.ShouldReturn(80 * MiB, 0), Is.False, "the first check only learns the request count");
            Assert.That(idle.ShouldReturn(80 * MiB, 50_000), Is.False, "busy: 50,000 requests in the interval");
            Assert.That(idle.ShouldReturn(80 * MiB, 50_000 + IdleMemoryReturn.QuietRequests), Is.False, "still at the quiet bound");
            Assert.That(idle.ShouldReturn(80 * MiB, 50_000 + (2 * IdleMemoryReturn.QuietRequests) - 1), Is.True, "quiet, and 70 MiB grown");
            Assert.That(idle.IdleReturns, Is.EqualTo(1));
        });
    }

    [Test]
    public void A_quiet_instance_whose_heap_did_not_grow_is_left_alone()
    {
        var idle = new IdleMemoryReturn();
        idle.Returned(10 * MiB);
        idle.ShouldReturn(10 * MiB, 7);
        Assert.Multiple(() =>
        {
            Assert.That(idle.ShouldReturn(10 * MiB + IdleMemoryReturn.GrowthThreshold - 1, 7), Is.False, "grown by less than the threshold");
            Assert.That(idle.ShouldReturn(10 * MiB + IdleMemoryReturn.GrowthThreshold, 7), Is.True, "grown by the threshold");
        });
    }

    [Test]
    public void Each_collection_moves_the_baseline_so_a_quiet_instance_pays_once_per_growth()
    {
        var idle = new IdleMemoryReturn();
        idle.Returned(10 * MiB);
        idle.ShouldReturn(60 * MiB, 0);
        Assert.That(idle.ShouldReturn(60 * MiB, 0), Is.True);
        idle.Returned(30 * MiB); // what the collection left: the live heap
        Assert.Multiple(() =>
        {
            Assert.That(idle.ShouldReturn(40 * MiB, 0), Is.False, "10 MiB past the new baseline");
            Assert.That(idle.ShouldReturn(30 * MiB + IdleMemoryReturn.GrowthThreshold, 0), Is.True, "a new burst's growth");
            Assert.That(idle.IdleReturns, Is.EqualTo(2));
        });
    }
}
