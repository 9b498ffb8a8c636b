namespace InSpatialFs.Daemon.Runtime;

/// <summary>
/// When a server gives the GC's spare pages back to the kernel after a burst of work.
/// <para>
/// A burst (an image unpacked, a build, a tree walked) leaves the GC with far more memory committed than it holds live:
/// after 100,000 files were created and looked up through a host mount the server's anonymous memory had grown by
/// 150 MiB, and one compacting collection returned 77 MiB of it while every node stayed. The GC decommits only while it
/// collects, and a container that then goes quiet allocates too little for it to collect again, so those pages stayed
/// resident for the container's life: with one server per container, that is the cost that multiplies.
/// </para>
/// <para>
/// Checked every <see cref="CheckInterval"/>. One aggressive, compacting collection runs once the interval just ended
/// saw fewer than <see cref="QuietRequests"/> FUSE requests and either the GC's committed memory has grown at least
/// <see cref="GrowthThreshold"/> past what the last such collection left (the one after start or reload counts), or the
/// kernel has let go of at least <see cref="NodesDropped"/> nodes since then. The second is the other side of a burst:
/// when the kernel reclaims its inodes (memory pressure, drop_caches) the server's nodes become garbage, about 0.5 KiB
/// each, that a quiet server would otherwise keep resident just the same. The collection pauses the readers (about
/// 110 ms with 100,000 live nodes), hence the quiet interval; the bounds keep a container that pauses often from paying
/// it more than once per 16 MiB of new committed memory or 16,384 forgotten nodes.
/// </para>
/// <para>
/// An interval without a single request makes the next look come after <see cref="DormantCheckInterval"/> instead
/// (<see cref="NextCheck"/>): an idle instance would otherwise wake every two seconds, with the thread pool behind the
/// timer, for nothing. The first look that sees requests again only brings the short interval back; the interval after
/// it decides, as before, so a burst that ends while dormant is returned at most this much later.
/// </para>
/// The decision is kept apart from the collection so that it can be tested without one.
/// </summary>
internal sealed class IdleMemoryReturn
{
    public static readonly TimeSpan CheckInterval = TimeSpan.FromSeconds(2);

    /// <summary>The interval between looks after one that saw no request at all.</summary>
    public static readonly TimeSpan DormantCheckInterval = TimeSpan.FromSeconds(10);

    public const long GrowthThreshold = 16L << 20;

    /// <summary>Requests in one <see cref="CheckInterval"/> below which the instance counts as quiet (50 a second).</summary>
    public const long QuietRequests = 100;

    /// <summary>Nodes the kernel may let go of before their memory is worth a collection (about 8 MiB).</summary>
    public const long NodesDropped = 16_384;

    private readonly Lock _lock = new();
    private long _committedAfterReturn;
    private long _nodesAtReturn;
    private long _requestsAtLastCheck = -1;
    private long _idleReturns;

    /// <summary>Collections this class asked for (status <c>memory_returns</c>).</summary>
    public long IdleReturns
    {
        get
        {
            lock (_lock) return _idleReturns;
        }
    }

    private TimeSpan _nextCheck = CheckInterval;

    /// <summary>When the next look should come (<see cref="CheckInterval"/>, or <see cref="DormantCheckInterval"/> after
    /// an interval without requests).</summary>
    public TimeSpan NextCheck
    {
        get
        {
            lock (_lock) return _nextCheck;
        }
    }

    /// <summary>
    /// Called once per <see cref="NextCheck"/> with the GC's committed bytes, the FUSE requests served so far and the
    /// nodes the kernel holds; true when a collection should run now. The first call only learns the request count, as
    /// does the first after a dormant interval that saw requests (its count spans more than one short interval).
    /// </summary>
    public bool ShouldReturn(long committedBytes, long requestsServed, long liveNodes)
    {
        lock (_lock)
        {
            bool first = _requestsAtLastCheck < 0, wasDormant = _nextCheck == DormantCheckInterval;
            long served = requestsServed - _requestsAtLastCheck;
            _requestsAtLastCheck = requestsServed;
            _nextCheck = !first && served == 0 ? DormantCheckInterval : CheckInterval;
            if (first || (wasDormant && served > 0) || served >= QuietRequests) return false;
            if (committedBytes - _committedAfterReturn < GrowthThreshold && _nodesAtReturn - liveNodes < NodesDropped) return false;
            _idleReturns++;
            return true;
        }
    }

    /// <summary>A full collection (this class's, or the one after start or reload) left this much committed, with this
    /// many nodes live.</summary>
    public void Returned(long committedBytes, long liveNodes)
    {
        lock (_lock)
        {
            _committedAfterReturn = committedBytes;
            _nodesAtReturn = liveNodes;
        }
    }
}
