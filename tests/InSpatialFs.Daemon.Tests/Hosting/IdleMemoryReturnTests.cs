using InSpatialFs.Daemon.Runtime;

namespace InSpatialFs.Daemon.Tests.Hosting;

public sealed class IdleMemoryReturnTests
{
    private const long MiB = 1L << 20;

    [Test]
    public void A_grown_heap_is_returned_only_once_an_interval_was_quiet()
    {
        var idle = new IdleMemoryReturn();
        idle.Returned(10 * MiB, 0); // what the collection after start left
        Assert.Multiple(() =>
        {
            Assert.That(idle.ShouldReturn(80 * MiB, 0, 0), Is.False, "the first check only learns the request count");
            Assert.That(idle.ShouldReturn(80 * MiB, 50_000, 0), Is.False, "busy: 50,000 requests in the interval");
            Assert.That(idle.ShouldReturn(80 * MiB, 50_000 + IdleMemoryReturn.QuietRequests, 0), Is.False, "still at the quiet bound");
            Assert.That(idle.ShouldReturn(80 * MiB, 50_000 + (2 * IdleMemoryReturn.QuietRequests) - 1, 0), Is.True, "quiet, and 70 MiB grown");
            Assert.That(idle.IdleReturns, Is.EqualTo(1));
        });
    }

    [Test]
    public void A_quiet_instance_whose_heap_did_not_grow_is_left_alone()
    {
        var idle = new IdleMemoryReturn();
        idle.Returned(10 * MiB, 0);
        idle.ShouldReturn(10 * MiB, 7, 0);
        Assert.Multiple(() =>
        {
            Assert.That(idle.ShouldReturn(10 * MiB + IdleMemoryReturn.GrowthThreshold - 1, 7, 0), Is.False, "grown by less than the threshold");
            Assert.That(idle.ShouldReturn(10 * MiB + IdleMemoryReturn.GrowthThreshold, 7, 0), Is.True, "grown by the threshold");
        });
    }

    [Test]
    public void Each_collection_moves_the_baseline_so_a_quiet_instance_pays_once_per_growth()
    {
        var idle = new IdleMemoryReturn();
        idle.Returned(10 * MiB, 0);
        idle.ShouldReturn(60 * MiB, 0, 0);
        Assert.That(idle.ShouldReturn(60 * MiB, 0, 0), Is.True);
        idle.Returned(30 * MiB, 0); // what the collection left: the live heap
        Assert.Multiple(() =>
        {
            Assert.That(idle.ShouldReturn(40 * MiB, 0, 0), Is.False, "10 MiB past the new baseline");
            Assert.That(idle.ShouldReturn(30 * MiB + IdleMemoryReturn.GrowthThreshold, 0, 0), Is.True, "a new burst's growth");
            Assert.That(idle.IdleReturns, Is.EqualTo(2));
        });
    }

    [Test]
    public void Nodes_the_kernel_let_go_of_are_returned_once_quiet_even_without_growth()
    {
        var idle = new IdleMemoryReturn();
        idle.Returned(60 * MiB, 100_000); // after the burst: 100,000 nodes live
        idle.ShouldReturn(60 * MiB, 0, 100_000);
        Assert.Multiple(() =>
        {
            Assert.That(idle.ShouldReturn(60 * MiB, 0, 100_000 - IdleMemoryReturn.NodesDropped + 1), Is.False, "too few forgotten");
            Assert.That(idle.ShouldReturn(60 * MiB, 10_000, 1), Is.False, "busy");
            Assert.That(idle.ShouldReturn(60 * MiB, 10_000, 1), Is.True, "quiet, and the kernel let go of nearly every node");
        });
        idle.Returned(20 * MiB, 1);
        Assert.That(idle.ShouldReturn(20 * MiB, 10_000, 1), Is.False, "the baseline moved to what is live now");
    }

    [Test]
    public void An_interval_without_requests_spaces_the_looks_out_and_requests_bring_the_short_interval_back()
    {
        var idle = new IdleMemoryReturn();
        idle.Returned(10 * MiB, 0);
        Assert.That(idle.ShouldReturn(10 * MiB, 5, 0), Is.False);
        Assert.That(idle.NextCheck, Is.EqualTo(IdleMemoryReturn.CheckInterval), "the first look only learns the count");
        Assert.That(idle.ShouldReturn(10 * MiB, 5, 0), Is.False, "not grown");
        Assert.That(idle.NextCheck, Is.EqualTo(IdleMemoryReturn.DormantCheckInterval), "no request in the interval");
        Assert.That(idle.ShouldReturn(10 * MiB, 5, 0), Is.False);
        Assert.That(idle.NextCheck, Is.EqualTo(IdleMemoryReturn.DormantCheckInterval), "still none");

        // A burst while dormant: the look that sees it judges nothing (its count spans ten seconds) and shortens the
        // interval; the next, quiet one returns the growth.
        Assert.That(idle.ShouldReturn(80 * MiB, 5 + IdleMemoryReturn.QuietRequests - 1, 0), Is.False, "requests again, fewer than the quiet bound");
        Assert.That(idle.NextCheck, Is.EqualTo(IdleMemoryReturn.CheckInterval));
        Assert.That(idle.ShouldReturn(80 * MiB, 5 + IdleMemoryReturn.QuietRequests - 1, 0), Is.True, "quiet, and 70 MiB grown");
        Assert.That(idle.NextCheck, Is.EqualTo(IdleMemoryReturn.DormantCheckInterval));
    }
}
