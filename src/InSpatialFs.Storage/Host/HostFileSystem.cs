using System.Buffers;
using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Text;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Interop.Diagnostics;
using InSpatialFs.Storage.Posix;
using Microsoft.Extensions.Logging;
using static InSpatialFs.Interop.LibC;

namespace InSpatialFs.Storage.Host;

/// <summary>
/// Serves a host directory with descriptor-only access (§10 of the protocol reference).
///
/// Security structure:
/// - The source root is opened once, O_PATH|O_DIRECTORY. Every name is resolved one component at a time with
///   openat2(parentFd, name, O_PATH|O_NOFOLLOW, RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS), or, for a lookup, with
///   statx and name_to_handle_at of that single checked component (no '/', no "..", no symlink followed); every
///   operation is a single-name *at call on the parent's descriptor or an AT_EMPTY_PATH call on the node's own
///   descriptor. No host path string with more than one component is ever resolved.
/// - Nodes are keyed by (st_dev, st_ino) and keep a file handle, not a descriptor; descriptors come from a
///   bounded LRU cache that reopens with open_by_handle_at(O_PATH), or, while a regular file is open, from that
///   open file (HostNode.OpenFd). Handles are only ever produced by us from nodes inside the tree (a create takes
///   its node's from the descriptor it created, a lookup by the name it just statx'd); the container never supplies
///   one. A handle a lookup took by name is checked against that statx (HostNode.HandleCheck) before any descriptor
///   opened from it is used.
/// - OPEN and the xattr calls use one magic-link step: /proc/self/fd/N of a descriptor we hold (borrowed,
///   so N cannot be closed and reused meanwhile). That link jumps to exactly the inode of our descriptor: no
///   name inside the host tree is resolved, so a swapped symlink cannot redirect it. It is the one place
///   RESOLVE_NO_MAGICLINKS is not used (it would refuse the step, ELOOP).
///
/// Node lifetime: a node lives while it is held (Retain) or open. Lookups and the other calls that return an entry
/// take no hold, so a node nobody retains (a name the proxy only peeked at, an entry it refused) waits in an aging
/// queue and is dropped once <see cref="UnheldNodeLimit"/> newer unheld nodes are queued behind it. An overlay's layers
/// are built with holdEntries: each entry returned comes with one hold, given back with <see cref="Release"/>.
///
/// Lock order: _nodeLock > DescriptorCache's lock. The id-to-node map and the open-handle maps are read lock-free;
/// _nodeLock serializes node creation, holds and removal.
/// </summary>
public sealed unsafe partial class HostFileSystem : IFileSystemBackend
{
    public const int DefaultDescriptorCacheCapacity = 2048;
    public const int DefaultMaxOpenHandles = 8192;

    /// <summary>Unheld, closed nodes kept before the oldest is dropped (each costs a node and maybe a cached descriptor).</summary>
    public const int UnheldNodeLimit = 1024;
    private const ulong Resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    private const int NameMax = EntryName.MaxLength;
    // O_DIRECT is about the FUSE file's page cache, which the kernel already bypasses for such opens; on the host
    // descriptor it would make every pread into the daemon's (unaligned) reply buffer fail with EINVAL.
    private const int OpenFlagsStripped = O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW | FMODE_EXEC | O_DIRECT;

    private readonly ILogger _logger;
    // A container can try an escape in a loop: the log says so a bounded number of times (the events record each try).
    private readonly LogThrottle _escapeLines = new(20, TimeSpan.FromMinutes(1));
    private readonly SafeFd _rootFd;
    private readonly SafeFd _procFdDir;
    private readonly DescriptorCache _cache;
    private readonly Lock _nodeLock = new();
    private readonly ConcurrentDictionary<ulong, HostNode> _nodesById = new(); // reads lock-free; writes under _nodeLock
    private readonly Dictionary<(ulong Dev, ulong Ino), HostNode> _nodesByKey = [];
    private readonly Dictionary<int, SafeFd> _mountFds = [];
    // Mounts whose handles give their inode number (HandleInodes): the device and statfs type; under _nodeLock.
    private readonly Dictionary<int, (ulong Dev, long FsMagic)> _decodedMounts = [];
    // Open files and directories, closed at Dispose if the kernel never released them (an aborted mount).
    private readonly ConcurrentDictionary<HostOpenFile, byte> _files = new();
    private readonly ConcurrentDictionary<HostOpenDirectory, byte> _dirs = new();
    private readonly uint _daemonUid = geteuid();
    private readonly HostNode _root;
    private readonly bool _holdEntries;
    private readonly Queue<HostNode> _aging = new(); // under _nodeLock
    private ulong _nextNodeId = 1;
    private int _openHandleCount;
    /// <summary>Set once name_to_handle_at has failed: the create path then adopts through an O_PATH descriptor
    /// at once, instead of asking for a handle twice per create (logged once).</summary>
    private volatile bool _handlesRefused;
    private bool _handleCapLogged;

    /// <param name="sourceDirectory">Host directory to serve (absolute).</param>
    /// <param name="readOnly">Refuse every write-class operation with EROFS.</param>
    /// <param name="descriptorCacheCapacity">Most O_PATH descriptors kept open for nodes at once.</param>
    /// <param name="maxOpenHandles">Most open files at once (each holds a real descriptor); beyond it EMFILE.</param>
    /// <param name="direct">DirectFS: opens of regular files also return a descriptor for kernel passthrough.</param>
    /// <param name="holdEntries">An overlay layer: every entry returned comes with one hold (see the class comment).</param>
    public HostFileSystem(string sourceDirectory, bool readOnly, ILogger logger,
        int descriptorCacheCapacity = DefaultDescriptorCacheCapacity, int maxOpenHandles = DefaultMaxOpenHandles, bool direct = false,
        bool holdEntries = false)
    {
        ArgumentNullException.ThrowIfNull(sourceDirectory);
        ArgumentNullException.ThrowIfNull(logger);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxOpenHandles, 1);
        SourceDirectory = sourceDirectory;
        ReadOnly = readOnly;
        Direct = direct;
        _holdEntries = holdEntries;
        MaxOpenHandles = maxOpenHandles;
        _logger = logger;
        _cache = new DescriptorCache(descriptorCacheCapacity);

        Errno e = OpenFd(sourceDirectory, O_PATH | O_DIRECTORY, 0, out _rootFd);
        if (e != Errno.OK) throw new IOException($"cannot open host source {sourceDirectory}: {e}");
        e = OpenFd("/proc/self/fd", O_PATH | O_DIRECTORY, 0, out _procFdDir);
        if (e != Errno.OK)
        {
            _rootFd.Dispose();
            throw new IOException($"cannot open /proc/self/fd: {e}");
        }
        e = StatFd(_rootFd.Fd, out StatX st);
        if (e != Errno.OK) throw new IOException($"cannot stat host source {sourceDirectory}: {e}");
        byte[]? handle = TryGetHandle(_rootFd.Fd, out int mountId);
        _root = new HostNode(_nextNodeId++, DevOf(st), st.Ino, S_IFDIR, handle, mountId) { Holds = 1, Pinned = _rootFd };
        _nodesById[_root.Id] = _root;
        _nodesByKey[(_root.Dev, _root.HostIno)] = _root;
#pragma warning disable CA2000 // kept in the mount table (disposed with the file system)
        if (handle != null && OpenMountFd(_rootFd.Fd, S_IFDIR) is { } rootMountFd)
        {
            _mountFds[mountId] = rootMountFd;
            if (HandleLayoutOf(rootMountFd.Fd, handle, st) is { } layout) _decodedMounts[mountId] = layout;
        }
#pragma warning restore CA2000
        HostLog.Serving(logger, sourceDirectory, Kind, readOnly, descriptorCacheCapacity, maxOpenHandles);
    }


    public string SourceDirectory { get; }
    public bool ReadOnly { get; }
    public bool Direct { get; }
    public int MaxOpenHandles { get; }
    public string Kind => Direct ? "direct" : "host";
    public ulong RootIno => _root.Id;

    /// <summary>(st_dev, st_ino) and a hash of the file handle, which carries the inode generation; persistent when the
    /// filesystem gives handles (the same file after a restart), else generation 0. A node whose handle is not proven yet
    /// is proven first (one open_by_handle_at and statx), so the identity names exactly one inode, or none.</summary>
    public InodeIdentity IdentityOf(ulong ino) => TryGetNode(ino, out HostNode? node) && (node.Handle == null || HandleProvenNow(node))
        ? IdentityOf(node)
        : default;

    public InodeIdentity JournaledIdentityOf(ulong ino) => TryGetNode(ino, out HostNode? node) ? IdentityOf(node) : default;

    private static InodeIdentity IdentityOf(HostNode node) =>
        new(node.Dev, node.HostIno, node.Handle is byte[] h ? InodeIdentity.HashHandle(h) : 0, Persistent: node.Handle != null);

    /// <summary>Descriptors currently held by the node cache (diagnostics and tests).</summary>
    public int CachedDescriptorCount => _cache.Count;

    /// <summary>The node's O_PATH descriptor is in the cache now (tests).</summary>
    internal bool HasCachedDescriptor(ulong ino) => _cache.Contains(ino);

    /// <summary>Nodes currently known (held, open, or unheld and waiting in the aging queue).</summary>
    public int NodeCount => _nodesById.Count;

    public int OpenHandleCount => Volatile.Read(ref _openHandleCount);

    // ---------------------------------------------------------------- lookup and node lifetime

    /// <summary>
    /// One statx of the single component beneath the parent's descriptor answers a lookup of a known node (the kernel
    /// re-validating a name whose entry timeout passed): it cannot leave the parent (no '/', no "..",
    /// AT_SYMLINK_NOFOLLOW), and the attributes and the node key come from the same call. An unknown name (a cold cache:
    /// a walk after drop_caches, a fresh mount, a listing) then takes its file handle by name beneath the same
    /// descriptor (<see cref="TryAdoptByName"/>): 2 system calls, and no descriptor opened, kept or closed for it. The
    /// openat2 path is left for what that cannot do (another mount, a filesystem without handles).
    /// </summary>
    public Errno Lookup(ulong parent, ReadOnlySpan<byte> name, out FuseAttr attr)
    {
        attr = default;
        Span<byte> nameZ = stackalloc byte[NameMax + 1];
        Errno e = CheckName(name, nameZ);
        if (e != Errno.OK) return e;
        e = BorrowNode(parent, out HostNode p, out FdLease pl);
        if (e != Errno.OK) return e;
        int fd;
        using (pl)
        {
            StatX st;
            int rc;
            fixed (byte* n = nameZ) rc = statx(pl.Fd, n, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &st);
            if (rc != 0)
            {
                e = ErrnoExtensions.LastPInvoke();
                if (e == Errno.ENOENT) return e;
            }
            else if (TryLookupKnown(st, out attr) || TryAdoptByName(pl.Fd, nameZ, st, out attr))
            {
                return Errno.OK;
            }
            e = OpenBeneath(pl.Fd, nameZ, O_PATH | O_NOFOLLOW, 0, out fd);
        }
        if (e != Errno.OK) return e;
#pragma warning disable CA2000 // AdoptPathFd takes ownership (the node keeps it or it is disposed there)
        return AdoptPathFd(new SafeFd(fd), out attr);
#pragma warning restore CA2000
    }

    /// <summary>Answers a lookup of an already known node by the key in <paramref name="st"/>; false if none is known.</summary>
    private bool TryLookupKnown(in StatX st, out FuseAttr attr)
    {
        lock (_nodeLock)
        {
            if (_nodesByKey.TryGetValue((DevOf(st), st.Ino), out HostNode? known))
            {
                EntryReturnedLocked(known);
                attr = ToAttr(st, known.Id);
                return true;
            }
        }
        attr = default;
        return false;
    }

    public bool Retain(ulong ino)
    {
        lock (_nodeLock)
        {
            if (!_nodesById.TryGetValue(ino, out HostNode? node)) return false;
            node.Holds++;
            return true;
        }
    }

    public void Release(ulong ino)
    {
        lock (_nodeLock)
        {
            if (!_nodesById.TryGetValue(ino, out HostNode? node) || node.Holds == 0) return;
            node.Holds--;
            DropIfUnusedLocked(node);
        }
    }

    /// <summary>Precondition: _nodeLock held. An entry of <paramref name="node"/> goes back to the caller: with holdEntries
    /// it carries a hold, else an unheld closed node joins the aging queue.</summary>
    private void EntryReturnedLocked(HostNode node)
    {
        if (_holdEntries)
        {
            node.Holds++;
            return;
        }

        if (node.Holds > 0 || node.OpenHandles > 0 || node.Aging || node == _root) return;
        node.Aging = true;
        _aging.Enqueue(node);
        while (_aging.Count > UnheldNodeLimit)
        {
            HostNode oldest = _aging.Dequeue();
            oldest.Aging = false;
            DropIfUnusedLocked(oldest);
        }
    }

    /// <summary>As <see cref="Release"/> for an entry this backend returned to itself and no longer keeps.</summary>
    private void GiveBackEntry(ulong ino)
    {
        if (_holdEntries) Release(ino);
    }

    public Errno GetAttr(ulong ino, out FuseAttr attr)
    {
        attr = default;
        Errno e = BorrowNode(ino, out HostNode node, out FdLease l);
        if (e != Errno.OK) return e;
        using (l)
        {
            e = StatFd(l.Fd, out StatX st);
            if (e != Errno.OK) return e;
            attr = ToAttr(st, node.Id);
        }
        return Errno.OK;
    }

    public Errno SetAttr(ulong ino, in AttrChange change, in Caller caller, out FuseAttr attr)
    {
        attr = default;
        if (ReadOnly) return Errno.EROFS;
        Errno e = BorrowNode(ino, out HostNode node, out FdLease l);
        if (e != Errno.OK) return e;
        using (l)
        {
            byte empty = 0;
            // chown before chmod: the host's chown drops set-id bits, and a mode sent in the same request is the
            // kernel's own computation, which wins (keep in sync with MemoryFileSystem.SetAttr).
            if (change.ChangesOwner)
            {
                uint uid = change.Uid ?? uint.MaxValue;
                uint gid = change.Gid ?? uint.MaxValue;
                if (fchownat(l.Fd, &empty, uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) return ErrnoExtensions.LastPInvoke();
            }
            if (change.Mode is uint mode && node.Type != S_IFLNK)
            {
                if (fchmodat2(l.Fd, &empty, mode & 0xFFF, AT_EMPTY_PATH) != 0) return ErrnoExtensions.LastPInvoke();
            }
            if (change.Size is ulong size)
            {
                e = Truncate(node, l.Fd, (long)size, change.File);
                if (e != Errno.OK) return e;
            }
            if (change.KillSetId && change.Mode is null && SetIdBits.ClearedByWrite(node.Type))
            {
                // HANDLE_KILLPRIV_V2: the daemon (root, so exempt on the host) clears set-id bits on a write or truncate
                // by a caller without CAP_FSETID. A chown needs nothing here: the host kernel drops the bits for root
                // by the same rule (SetIdBits.ToClear), and file capabilities on every chown, truncate and write.
                // Keep in sync with MemoryFileSystem.SetAttr.
                e = StatFd(l.Fd, out StatX cur);
                if (e != Errno.OK) return e;
                uint current = cur.Mode & 0xFFFu;
                uint killed = current & ~SetIdBits.ToClear(current);
                if (killed != current && fchmodat2(l.Fd, &empty, killed, AT_EMPTY_PATH) != 0) return ErrnoExtensions.LastPInvoke();
            }
            if (change.Atime.HasValue || change.Mtime.HasValue)
            {
                TimeSpec* ts = stackalloc TimeSpec[2];
                ts[0] = TimeOf(change.Atime);
                ts[1] = TimeOf(change.Mtime);
                if (utimensat_raw(l.Fd, &empty, ts, AT_EMPTY_PATH) != 0) return ErrnoExtensions.LastPInvoke();
            }
            e = StatFd(l.Fd, out StatX st);
            if (e != Errno.OK) return e;
            attr = ToAttr(st, node.Id);
        }
        return Errno.OK;
    }

    /// <summary>Through the open file the kernel named when it is one of this node's, else through a fresh writable descriptor.</summary>
    private Errno Truncate(HostNode node, int pathFd, long size, IOpenFile? through)
    {
        if (through is HostOpenFile file && file.Node == node)
        {
            if (!FdLease.TryBorrow(file.Fd, out FdLease fl)) return Errno.EBADF;
            using (fl) return ftruncate(fl.Fd, size) == 0 ? Errno.OK : ErrnoExtensions.LastPInvoke();
        }
        if (node.Type != S_IFREG) return node.Type == S_IFDIR ? Errno.EISDIR : Errno.EINVAL;
        Errno e = ReopenNode(pathFd, O_WRONLY, out int fd);
        if (e != Errno.OK) return e;
        using var writable = new SafeFd(fd);
        return ftruncate(fd, size) == 0 ? Errno.OK : ErrnoExtensions.LastPInvoke();
    }

    private static TimeSpec TimeOf(TimeChange? change) => change switch
    {
        null => new TimeSpec { Sec = 0, Nsec = UTIME_OMIT },
        { Now: true } => new TimeSpec { Sec = 0, Nsec = UTIME_NOW },
        { } t => new TimeSpec { Sec = t.Seconds, Nsec = t.Nanoseconds },
    };

    public Errno ReadLink(ulong ino, Span<byte> buffer, out int length)
    {
        length = 0;
        if (!TryGetNode(ino, out HostNode? node)) return Errno.ENOENT;
        if (node.Type != S_IFLNK) return Errno.EINVAL;
        Errno e = Borrow(node, out FdLease l);
        if (e != Errno.OK) return e;
        using (l)
        {
            byte empty = 0;
            fixed (byte* b = buffer)
            {
                nint n = readlinkat(l.Fd, &empty, b, buffer.Length);
                if (n < 0) return ErrnoExtensions.LastPInvoke();
                length = (int)n;
            }
        }
        return Errno.OK;
    }

    public void Dispose()
    {
        foreach (var f in _files.Keys) f.Fd.Dispose();
        _files.Clear();
        foreach (var d in _dirs.Keys) d.Fd.Dispose();
        _dirs.Clear();
        _cache.Dispose();
        lock (_nodeLock)
        {
            foreach (var n in _nodesById.Values)
            {
                if (n != _root) n.Pinned?.Dispose();
            }
            foreach (var fd in _mountFds.Values) fd.Dispose();
            _nodesById.Clear();
            _nodesByKey.Clear();
            _mountFds.Clear();
        }
        _rootFd.Dispose();
        _procFdDir.Dispose();
    }
}
