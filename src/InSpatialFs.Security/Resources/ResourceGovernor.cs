using System.Collections.Concurrent;
using InSpatialFs.Interop;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Policy;

namespace InSpatialFs.Security.Resources;

/// <summary>
/// Resource controls of one container: op and byte rates (delays), the open-file cap (EMFILE) and per-mount
/// quota accounts the storage side charges (ENOSPC for the memory cap, EDQUOT for disk bytes and inodes).
/// All counters are lock-free.
/// </summary>
public sealed class ResourceGovernor
{
    private readonly RateLimiter? _ops;
    private readonly RateLimiter? _bytes;
    private readonly ConcurrentDictionary<string, QuotaAccount> _accounts = new(StringComparer.Ordinal);
    private long _openFiles;
    private long _throttledOps;

    public ResourceGovernor(ResourceLimits limits)
    {
        Limits = limits;
        if (limits.OpsPerSecond is double ops) _ops = new RateLimiter(ops);
        if (limits.BytesPerSecond is double bytes) _bytes = new RateLimiter(bytes);
    }

    public ResourceLimits Limits { get; }
    public long OpenFiles => Volatile.Read(ref _openFiles);
    public long ThrottledOps => Volatile.Read(ref _throttledOps);

    /// <summary>The delay owed by an op: one op token, plus its bytes for read and write.</summary>
    /// <summary>Whether an ops/s or bytes/s limit is configured at all (the data path skips everything when not).</summary>
    public bool LimitsRates => _ops != null || _bytes != null;

    public TimeSpan Throttle(FsOp op, long bytes, long nowTimestamp)
    {
        TimeSpan d = TimeSpan.Zero;
        if (_ops != null) d = _ops.Take(1, nowTimestamp);
        if (_bytes != null && bytes > 0 && op is FsOp.Read or FsOp.Write or FsOp.CopyFileRange)
        {
            TimeSpan b = _bytes.Take(bytes, nowTimestamp);
            if (b > d) d = b;
        }

        if (d > TimeSpan.Zero) Interlocked.Increment(ref _throttledOps);
        return d;
    }

    /// <summary>Counts an open file; EMFILE past the cap (the count is not taken then).</summary>
    public Errno TryOpenFile()
    {
        long n = Interlocked.Increment(ref _openFiles);
        if (Limits.OpenFiles is int cap && n > cap)
        {
            Interlocked.Decrement(ref _openFiles);
            return Errno.EMFILE;
        }

        return Errno.OK;
    }

    public void FileClosed()
    {
        if (Interlocked.Decrement(ref _openFiles) < 0) Interlocked.Exchange(ref _openFiles, 0);
    }

    /// <summary>The quota account of a mount (by its namespace path); memory mounts are capped by resources.memory.</summary>
    public QuotaAccount Account(string mount, bool inMemory = false) =>
        _accounts.GetOrAdd(mount, m => new QuotaAccount(m, inMemory ? Limits.MemoryBytes : Limits.DiskBytes, Limits.Inodes, inMemory));

    public IReadOnlyCollection<QuotaAccount> Accounts => _accounts.Values.ToList();
}

/// <summary>Bytes and inodes used by one mount. The storage side reports deltas; growth past a limit is refused whole.</summary>
public sealed class QuotaAccount
{
    private long _bytes;
    private long _inodes;

    internal QuotaAccount(string mount, long? byteLimit, long? inodeLimit, bool inMemory)
    {
        Mount = mount;
        ByteLimit = byteLimit;
        InodeLimit = inodeLimit;
        InMemory = inMemory;
    }

    public string Mount { get; }
    public long? ByteLimit { get; }
    public long? InodeLimit { get; }
    public bool InMemory { get; }
    public long Bytes => Volatile.Read(ref _bytes);
    public long Inodes => Volatile.Read(ref _inodes);

    /// <summary>Charges a delta (negative frees). Growth past a limit returns ENOSPC (memory) or EDQUOT (disk, inodes) and charges nothing.</summary>
    public Errno TryCharge(long bytesDelta, long inodesDelta)
    {
        if (bytesDelta != 0)
        {
            long b = Interlocked.Add(ref _bytes, bytesDelta);
            if (bytesDelta > 0 && ByteLimit is long bl && b > bl)
            {
                Interlocked.Add(ref _bytes, -bytesDelta);
                return InMemory ? Errno.ENOSPC : Errno.EDQUOT;
            }
        }

        if (inodesDelta != 0)
        {
            long i = Interlocked.Add(ref _inodes, inodesDelta);
            if (inodesDelta > 0 && InodeLimit is long il && i > il)
            {
                Interlocked.Add(ref _inodes, -inodesDelta);
                if (bytesDelta != 0) Interlocked.Add(ref _bytes, -bytesDelta);
                return InMemory ? Errno.ENOSPC : Errno.EDQUOT;
            }
        }

        return Errno.OK;
    }

    /// <summary>Sets the usage found at start (e.g. after scanning a host directory).</summary>
    public void Reset(long bytes, long inodes)
    {
        Interlocked.Exchange(ref _bytes, bytes);
        Interlocked.Exchange(ref _inodes, inodes);
    }
}
