using InSpatialFs.Interop;

namespace InSpatialFs.Storage.Host;

/// <summary>
/// A borrowed descriptor: the SafeFd's reference count is raised so that an eviction (Dispose by the cache)
/// only closes the descriptor once every borrower has finished. Dispose exactly once.
/// </summary>
internal readonly struct FdLease : IDisposable
{
    private readonly SafeFd? _fd;

    public FdLease(SafeFd fd)
    {
        bool added = false;
        fd.DangerousAddRef(ref added);
        _fd = fd;
    }

    public int Fd => _fd!.Fd;

    /// <summary>Borrows unless the descriptor was already closed (a request racing the release of its node or handle).</summary>
    public static bool TryBorrow(SafeFd fd, out FdLease lease)
    {
        try
        {
            lease = new FdLease(fd);
            return true;
        }
        catch (ObjectDisposedException)
        {
            lease = default;
            return false;
        }
    }

    public void Dispose() => _fd?.DangerousRelease();
}

/// <summary>
/// A bounded least-recently-used cache of O_PATH descriptors keyed by node id. The host backend keeps a file
/// handle per node, not a descriptor, and reopens through this cache, so the number of descriptors held stays
/// at most <see cref="Capacity"/> plus those borrowed at that moment, however many nodes the kernel keeps.
/// One short lock: a dictionary probe and a list splice; every syscall happens outside it.
/// </summary>
internal sealed class DescriptorCache : IDisposable
{
    private readonly Dictionary<ulong, LinkedListNode<(ulong Id, SafeFd Fd)>> _map;
    private readonly LinkedList<(ulong Id, SafeFd Fd)> _order = new();
    private readonly Lock _lock = new();

    public DescriptorCache(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Capacity = capacity;
        _map = new Dictionary<ulong, LinkedListNode<(ulong, SafeFd)>>(capacity);
    }

    public int Capacity { get; }

    public int Count
    {
        get { lock (_lock) { return _map.Count; } }
    }

    /// <summary>A descriptor of <paramref name="id"/> is cached now (a moment's answer; its order is not touched).</summary>
    public bool Contains(ulong id)
    {
        lock (_lock) { return _map.ContainsKey(id); }
    }

    /// <summary>Borrows the cached descriptor of <paramref name="id"/>, marking it most recently used.</summary>
    public bool TryBorrow(ulong id, out FdLease lease)
    {
        lock (_lock)
        {
            if (_map.TryGetValue(id, out var entry))
            {
                _order.Remove(entry);
                _order.AddFirst(entry);
                lease = new FdLease(entry.Value.Fd);
                return true;
            }
        }
        lease = default;
        return false;
    }

    /// <summary>
    /// Takes ownership of <paramref name="fd"/> and returns a lease on the cached descriptor for <paramref name="id"/>
    /// (the given one, or the one another thread inserted first, in which case <paramref name="fd"/> is closed).
    /// </summary>
    public FdLease AddAndBorrow(ulong id, SafeFd fd)
    {
        SafeFd? evicted = null;
        FdLease lease;
        lock (_lock)
        {
            if (_map.TryGetValue(id, out var existing))
            {
                lease = new FdLease(existing.Value.Fd);
                evicted = fd;
            }
            else
            {
                var entry = _order.AddFirst((id, fd));
                _map[id] = entry;
                lease = new FdLease(fd);
                if (_map.Count > Capacity)
                {
                    var last = _order.Last!;
                    _order.RemoveLast();
                    _map.Remove(last.Value.Id);
                    evicted = last.Value.Fd;
                }
            }
        }
        evicted?.Dispose(); // deferred by SafeHandle until its borrowers release it
        return lease;
    }

    /// <summary>Adds without borrowing (takes ownership of <paramref name="fd"/>).</summary>
    public void Add(ulong id, SafeFd fd) => AddAndBorrow(id, fd).Dispose();

    /// <summary>Removes the entry of <paramref name="id"/> and hands its descriptor to the caller (who disposes it).</summary>
    public bool TryTake(ulong id, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out SafeFd? fd)
    {
        lock (_lock)
        {
            if (_map.Remove(id, out var entry))
            {
                _order.Remove(entry);
                fd = entry.Value.Fd;
                return true;
            }
        }
        fd = null;
        return false;
    }

    public void Remove(ulong id)
    {
        SafeFd? removed = null;
        lock (_lock)
        {
            if (_map.Remove(id, out var entry))
            {
                _order.Remove(entry);
                removed = entry.Value.Fd;
            }
        }
        removed?.Dispose();
    }

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var (_, fd) in _order) fd.Dispose();
            _order.Clear();
            _map.Clear();
        }
    }
}
