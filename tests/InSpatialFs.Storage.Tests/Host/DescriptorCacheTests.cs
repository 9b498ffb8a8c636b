using InSpatialFs.Interop;
using InSpatialFs.Storage.Host;

namespace InSpatialFs.Storage.Tests.Host;

[TestFixture]
public sealed class DescriptorCacheTests
{
    private static SafeFd OpenPath()
    {
        Assert.That(LibC.OpenFd("/", LibC.O_PATH | LibC.O_DIRECTORY, 0, out SafeFd fd), Is.EqualTo(Errno.OK));
        return fd;
    }

    private static bool IsOpen(int fd) => LibC.fcntl(fd, 1 /* F_GETFD */, 0) >= 0;

    [Test]
    public void Least_recently_used_descriptor_is_closed_when_capacity_is_exceeded()
    {
        using var cache = new DescriptorCache(2);
        var a = OpenPath();
        var b = OpenPath();
        var c = OpenPath();
        int rawA = a.Fd;
        cache.Add(1, a);
        cache.Add(2, b);
        Assert.That(cache.TryBorrow(1, out FdLease touch), Is.True); // 1 becomes most recent
        touch.Dispose();
        cache.Add(3, c);
        Assert.That(cache.Count, Is.EqualTo(2));
        Assert.That(cache.TryBorrow(2, out _), Is.False, "2 was least recently used");
        Assert.That(cache.TryBorrow(1, out FdLease l1), Is.True);
        Assert.That(l1.Fd, Is.EqualTo(rawA));
        l1.Dispose();
    }

    [Test]
    public void Evicted_descriptor_stays_open_until_its_borrower_releases_it()
    {
        using var cache = new DescriptorCache(1);
        var a = OpenPath();
        int raw = a.Fd;
        FdLease lease = cache.AddAndBorrow(1, a);
        cache.Add(2, OpenPath()); // evicts 1 while borrowed
        Assert.That(IsOpen(raw), Is.True, "a borrower still uses it");
        lease.Dispose();
        Assert.That(IsOpen(raw), Is.False, "closed once the last borrower is done");
    }

    [Test]
    public void Second_insert_for_the_same_id_keeps_the_first_and_closes_the_newcomer()
    {
        using var cache = new DescriptorCache(4);
        var first = OpenPath();
        var second = OpenPath();
        int rawSecond = second.Fd;
        cache.Add(1, first);
        using (FdLease l = cache.AddAndBorrow(1, second)) Assert.That(l.Fd, Is.EqualTo(first.Fd));
        Assert.That(IsOpen(rawSecond), Is.False);
        cache.Remove(1);
        Assert.That(cache.Count, Is.Zero);
        Assert.That(first.IsClosed, Is.True);
    }

    [Test]
    public void Take_hands_the_descriptor_over_open_and_leaves_the_cache_without_it()
    {
        using var cache = new DescriptorCache(4);
        var a = OpenPath();
        int raw = a.Fd;
        cache.Add(1, a);
        cache.Add(2, OpenPath());
        Assert.That(cache.TryTake(1, out SafeFd? taken), Is.True);
        Assert.Multiple(() =>
        {
            Assert.That(taken!.Fd, Is.EqualTo(raw));
            Assert.That(IsOpen(raw), Is.True, "the taker owns it now, open");
            Assert.That(cache.Count, Is.EqualTo(1));
            Assert.That(cache.TryBorrow(1, out _), Is.False);
            Assert.That(cache.TryTake(1, out _), Is.False, "taken once");
            Assert.That(cache.TryBorrow(2, out FdLease other), Is.True, "the other entry stays");
            other.Dispose();
        });
        cache.Dispose();
        Assert.That(IsOpen(raw), Is.True, "disposing the cache does not close a taken descriptor");
        taken!.Dispose();
        Assert.That(IsOpen(raw), Is.False);
    }
}
