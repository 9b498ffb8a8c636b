using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Proxy.Nodes;
using InSpatialFs.Storage;
using InSpatialFs.Storage.Mounts;

namespace InSpatialFs.Proxy;

// Kernel caches: which answers the kernel may keep for long, and dropping them when the policy changes.
//
// The kernel sees every change made through this mount (it updates or drops its own copies on create, unlink, rename,
// link, setattr and write), so what a long timeout risks is a change it does not see: the policy, or the backing store
// changed behind the mount. Long timeouts go only to nodes whose backing the mount cannot change and the operator
// declared fixed — a read-only mount, a node still only in a read-only image layer, a read-only policy path — and a
// policy change (reload, a blocked process) drops every cached answer at once. Changes the host makes under a
// read-only mount are not seen before the timeout (or the next reload); see README, "Kernel caches".
public sealed partial class SecureProxy
{
    private ulong _longEntrySec, _longAttrSec;
    private uint _longEntryNsec, _longAttrNsec;
    private bool _longCaching;
    private KernelCacheInvalidator _invalidator = null!;

    // Bumped when an invalidation is requested, before its pass: a LOOKUP decided before the bump and answered after it
    // gets timeouts of zero, so an answer of the old policy is not cached past the pass that should have dropped it.
    private long _cacheGeneration;

    private long _lookupRequests, _getAttrRequests, _readDirRequests;

    /// <summary>LOOKUP requests served (a warm cache sends none).</summary>
    public long LookupRequests => Interlocked.Read(ref _lookupRequests);

    /// <summary>GETATTR requests served (a warm cache sends none).</summary>
    public long GetAttrRequests => Interlocked.Read(ref _getAttrRequests);

    /// <summary>READDIR and READDIRPLUS requests served (a listing cached with FOPEN_CACHE_DIR sends none).</summary>
    public long ReadDirRequests => Interlocked.Read(ref _readDirRequests);

    /// <summary>What invalidation passes did so far.</summary>
    public InvalidationStats Invalidations => _invalidator.Stats;

    /// <summary>Stops the invalidation thread (after the servers stopped: nothing is invalidated on a gone connection).</summary>
    public void Dispose() => _invalidator.Dispose();

    private void InitCaching(ProxyOptions options)
    {
        TimeSpan entry = options.CacheTimeout > options.EntryTimeout ? options.CacheTimeout : options.EntryTimeout;
        TimeSpan attr = options.CacheTimeout > options.AttrTimeout ? options.CacheTimeout : options.AttrTimeout;
        (_longEntrySec, _longEntryNsec) = Split(entry);
        (_longAttrSec, _longAttrNsec) = Split(attr);
        _longCaching = options.CacheTimeout > options.EntryTimeout || options.CacheTimeout > options.AttrTimeout;
        _invalidator = new KernelCacheInvalidator(() => Connection?.Notifier, _nodes, _logger);
    }

    /// <summary>
    /// Drops everything the kernel may have cached of known nodes (names, attributes, data, listings) because what the
    /// proxy would answer may have changed: a policy reload, a blocked process. With <paramref name="wait"/> &gt; 0, returns
    /// once the pass has run (false on timeout); otherwise queues it and returns at once (safe on a FUSE reader thread).
    /// </summary>
    public bool InvalidateKernelCaches(string why, TimeSpan wait)
    {
        Interlocked.Increment(ref _cacheGeneration);
        long ticket = _invalidator.Request(why);
        return wait <= TimeSpan.Zero || _invalidator.WaitFor(ticket, wait);
    }

    private long CacheGeneration => Interlocked.Read(ref _cacheGeneration);

    /// <summary>
    /// Whether nothing but a policy change can make the proxy answer differently for this node: its mount is read-only,
    /// it lies only in a read-only image layer, or its last lookup found it in a read-only policy class.
    /// </summary>
    private bool LongCached(ProxyNode node)
    {
        if (!_longCaching)
        {
            return false;
        }

        MountEntry m = _mounts[node.Mount];
        return m.ReadOnly || node.ReadOnlyClass || (m.Backend is IReadOnlyLayerNodes layers && layers.InReadOnlyLayer(node.Ino));
    }

    private (ulong Sec, uint Nsec) EntryTimeoutFor(ProxyNode node) =>
        LongCached(node) ? (_longEntrySec, _longEntryNsec) : (_entryValidSec, _entryValidNsec);

    private (ulong Sec, uint Nsec) AttrTimeoutFor(ProxyNode node) =>
        LongCached(node) ? (_longAttrSec, _longAttrNsec) : (_attrValidSec, _attrValidNsec);

    /// <summary>An answer decided before an invalidation was requested must not be cached: it may be the old policy's.</summary>
    private void ExpireIfInvalidatedSince(long generation, ref FuseEntryOut entry)
    {
        if (CacheGeneration != generation)
        {
            entry.EntryValid = entry.AttrValid = 0;
            entry.EntryValidNsec = entry.AttrValidNsec = 0;
        }
    }

    /// <summary>
    /// FOPEN_KEEP_CACHE for read-only opens of long-cached files: their data can only change by a write the kernel
    /// sees, so the page cache survives close and reopen. (Opened drops it again where passthrough serves the file.)
    /// </summary>
    private FopenFlags KeepCacheIfFixed(ProxyNode node, int flags, FopenFlags openFlags)
    {
        if ((flags & LibC.O_ACCMODE) == LibC.O_RDONLY && (flags & LibC.O_TRUNC) == 0 && (openFlags & FopenFlags.DirectIo) == 0 && LongCached(node))
        {
            openFlags |= FopenFlags.KeepCache;
        }

        return openFlags;
    }

    /// <summary>
    /// FOPEN_CACHE_DIR (the kernel keeps the listing this open reads) and KEEP_CACHE (this open does not drop the listing
    /// an earlier one cached). Long-cached directories always get both. Any other directory gets CACHE_DIR, and
    /// KEEP_CACHE only when its change stamp and the cache generation are what they were at its previous OPENDIR: the
    /// kernel's copy then still is the directory, even after a change made on the host behind the mount, and a policy
    /// change that would list it differently bumps the generation. (Changes through the mount the kernel notices
    /// itself: they reset its copy.) So every OPENDIR still reaches the proxy, and a listing is as fresh as its opendir.
    /// </summary>
    private FopenFlags DirectoryCacheFlags(ProxyNode node, IOpenDirectory directory)
    {
        if (LongCached(node))
        {
            return FopenFlags.CacheDir | FopenFlags.KeepCache;
        }

        ulong stamp = directory.ChangeStamp;
        if (stamp == DirectoryStamp.Unknown)
        {
            Volatile.Write(ref node.ListingStamp, DirectoryStamp.Unknown);
            return 0;
        }

        stamp = DirectoryStamp.Known(stamp ^ ((ulong)CacheGeneration * 0x9E3779B97F4A7C15UL));
        ulong previous = Interlocked.Exchange(ref node.ListingStamp, stamp);
        return previous == stamp ? FopenFlags.CacheDir | FopenFlags.KeepCache : FopenFlags.CacheDir;
    }
}
