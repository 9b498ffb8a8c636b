using System.Buffers;
using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Text;
using InSpatialFs.Fuse;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Direct;
using InSpatialFs.Storage.Posix;
using Microsoft.Extensions.Logging;
using static InSpatialFs.Interop.LibC;

namespace InSpatialFs.Storage.Host;

/// <summary>
/// Serves a host directory with descriptor-only access (§10 of the protocol reference).
///
/// Security structure:
/// - The source root is opened once, O_PATH|O_DIRECTORY. Every name is resolved one component at a time with
///   openat2(parentFd, name, O_PATH|O_NOFOLLOW, RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS); every operation is a
///   single-name *at call on the parent's descriptor or an AT_EMPTY_PATH call on the node's own descriptor.
///   No host path string with more than one component is ever resolved.
/// - Nodes are keyed by (st_dev, st_ino) and keep a file handle, not a descriptor; descriptors come from a
///   bounded LRU cache that reopens with open_by_handle_at(O_PATH). Handles are only ever produced by us from
///   nodes inside the tree; the container never supplies one.
/// - OPEN and the xattr calls use one magic-link step: /proc/self/fd/N of an O_PATH descriptor we hold (borrowed,
///   so N cannot be closed and reused meanwhile). That link jumps to exactly the inode of our descriptor: no
///   name inside the host tree is resolved, so a swapped symlink cannot redirect it. It is the one place
///   RESOLVE_NO_MAGICLINKS is not used (it would refuse the step, ELOOP).
///
/// Lock order: _nodeLock > DescriptorCache's lock. The id-to-node map and the open-handle maps are read lock-free;
/// _nodeLock serializes node creation, reference counts and removal.
/// </summary>
public sealed unsafe class HostFileSystem : IFileSystemBackend, ISplicedReads
{
    public const int DefaultDescriptorCacheCapacity = 2048;
    public const int DefaultMaxOpenHandles = 8192;
    private const ulong Resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    private const int NameMax = EntryName.MaxLength;
    // O_DIRECT is about the FUSE file's page cache, which the kernel already bypasses for such opens; on the host
    // descriptor it would make every pread into the daemon's (unaligned) reply buffer fail with EINVAL.
    private const int OpenFlagsStripped = O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW | FMODE_EXEC | O_DIRECT;

    private readonly ILogger _logger;
    private readonly SafeFd _rootFd;
    private readonly SafeFd _procFdDir;
    private readonly DescriptorCache _cache;
    private readonly Lock _nodeLock = new();
    private readonly ConcurrentDictionary<ulong, HostNode> _nodesById = new(); // reads lock-free; writes under _nodeLock
    private readonly Dictionary<(ulong Dev, ulong Ino), HostNode> _nodesByKey = [];
    private readonly Dictionary<int, SafeFd> _mountFds = [];
    private readonly ConcurrentDictionary<ulong, HostOpenFile> _files = new();
    private readonly ConcurrentDictionary<ulong, HostDirHandle> _dirs = new();
    private readonly uint _daemonUid = geteuid();
    private readonly HostNode _root;
    private ulong _nextNodeId = 1;
    private long _nextFh;
    private int _openHandleCount;
    private bool _handleWarningLogged;

    /// <param name="sourceDirectory">Host directory to serve (absolute).</param>
    /// <param name="readOnly">Refuse every write-class operation with EROFS.</param>
    /// <param name="descriptorCacheCapacity">Most O_PATH descriptors kept open for nodes at once.</param>
    /// <param name="maxOpenHandles">Most open files at once (each holds a real descriptor); beyond it EMFILE.</param>
    /// <param name="direct">DirectFS: opens of regular files also return a descriptor for kernel passthrough.</param>
    public HostFileSystem(string sourceDirectory, bool readOnly, ILogger logger,
        int descriptorCacheCapacity = DefaultDescriptorCacheCapacity, int maxOpenHandles = DefaultMaxOpenHandles, bool direct = false)
    {
        ArgumentNullException.ThrowIfNull(sourceDirectory);
        ArgumentNullException.ThrowIfNull(logger);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxOpenHandles, 1);
        SourceDirectory = sourceDirectory;
        ReadOnly = readOnly;
        Direct = direct;
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
        _root = new HostNode(_nextNodeId++, DevOf(st), st.Ino, S_IFDIR, handle, mountId) { Lookups = 1, Pinned = _rootFd };
        _nodesById[_root.Id] = _root;
        _nodesByKey[(_root.Dev, _root.HostIno)] = _root;
        if (handle != null && OpenMountFd(_rootFd.Fd, S_IFDIR) is { } rootMountFd) _mountFds[mountId] = rootMountFd;
        HostLog.Serving(logger, sourceDirectory, Kind, readOnly, descriptorCacheCapacity, maxOpenHandles);
    }

    /// <summary>Raised when a host name is refused as an escape (a "..", a '/' in a name, or openat2 EXDEV/ELOOP).
    /// The caller still receives EACCES; the proxy turns this into a security event.</summary>
    public event Action<string, Errno>? EscapeRefused;

    public string SourceDirectory { get; }
    public bool ReadOnly { get; }
    public bool Direct { get; }
    public int MaxOpenHandles { get; }
    public string Kind => Direct ? "direct" : "host";
    public ulong RootIno => _root.Id;

    /// <summary>(st_dev, st_ino) and a hash of the file handle, which carries the inode generation; persistent when the
    /// filesystem gives handles (the same file after a restart), else generation 0.</summary>
    public InodeIdentity IdentityOf(ulong ino) => TryGetNode(ino, out HostNode? node)
        ? new InodeIdentity(node.Dev, node.HostIno, node.Handle is byte[] h ? InodeIdentity.HashHandle(h) : 0, Persistent: node.Handle != null)
        : default;

    /// <summary>Descriptors currently held by the node cache (diagnostics and tests).</summary>
    public int CachedDescriptorCount => _cache.Count;

    /// <summary>Nodes currently known (kernel references or open handles).</summary>
    public int NodeCount => _nodesById.Count;

    public int OpenHandleCount => Volatile.Read(ref _openHandleCount);

    // ---------------------------------------------------------------- lookup and node lifetime

    public Errno Lookup(ulong parent, ReadOnlySpan<byte> name, out FuseAttr attr)
    {
        attr = default;
        Span<byte> nameZ = stackalloc byte[NameMax + 1];
        Errno e = CheckName(name, nameZ);
        if (e != Errno.OK) return e;
        if (!TryGetNode(parent, out HostNode? p)) return Errno.ENOENT;
        e = Borrow(p, out FdLease pl);
        if (e != Errno.OK) return e;
        int fd;
        using (pl)
        {
            // Most lookups re-validate a name the kernel already holds (its entry timeout passed): one statx of the
            // single component beneath the parent's descriptor answers those. It cannot leave the parent (no '/', no
            // "..", AT_SYMLINK_NOFOLLOW), and the attributes and the node key come from the same call. Unknown names
            // take the openat2 path, which yields the descriptor the new node's file handle is read from.
            StatX st;
            int rc;
            fixed (byte* n = nameZ) rc = statx(pl.Fd, n, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &st);
            if (rc != 0)
            {
                e = ErrnoExtensions.LastPInvoke();
                if (e == Errno.ENOENT) return e;
            }
            else if (TryLookupKnown(st, out attr))
            {
                return Errno.OK;
            }
            e = OpenBeneath(pl.Fd, nameZ, O_PATH | O_NOFOLLOW, 0, out fd);
        }
        if (e != Errno.OK) return e;
        return AdoptPathFd(new SafeFd(fd), out attr);
    }

    /// <summary>Counts a lookup of an already known node by the key in <paramref name="st"/>; false if none is known.</summary>
    private bool TryLookupKnown(in StatX st, out FuseAttr attr)
    {
        lock (_nodeLock)
        {
            if (_nodesByKey.TryGetValue((DevOf(st), st.Ino), out HostNode? known))
            {
                known.Lookups++;
                attr = ToAttr(st, known.Id);
                return true;
            }
        }
        attr = default;
        return false;
    }

    public void Forget(ulong ino, ulong count)
    {
        lock (_nodeLock)
        {
            if (!_nodesById.TryGetValue(ino, out HostNode? node)) return;
            node.Lookups -= (long)Math.Min(count, long.MaxValue);
            DropIfUnusedLocked(node);
        }
    }

    public Errno GetAttr(ulong ino, out FuseAttr attr)
    {
        attr = default;
        if (!TryGetNode(ino, out HostNode? node)) return Errno.ENOENT;
        Errno e = Borrow(node, out FdLease l);
        if (e != Errno.OK) return e;
        using (l)
        {
            e = StatFd(l.Fd, out StatX st);
            if (e != Errno.OK) return e;
            attr = ToAttr(st, node.Id);
        }
        return Errno.OK;
    }

    public Errno SetAttr(ulong ino, in FuseSetattrIn change, in Caller caller, out FuseAttr attr)
    {
        attr = default;
        if (ReadOnly) return Errno.EROFS;
        if (!TryGetNode(ino, out HostNode? node)) return Errno.ENOENT;
        var valid = (FattrFlags)change.Valid;
        Errno e = Borrow(node, out FdLease l);
        if (e != Errno.OK) return e;
        using (l)
        {
            byte empty = 0;
            // chown before chmod: the host's chown drops set-id bits, and a mode sent in the same request is the
            // kernel's own computation, which wins (keep in sync with MemoryFileSystem.SetAttr).
            if ((valid & (FattrFlags.Uid | FattrFlags.Gid)) != 0)
            {
                uint uid = (valid & FattrFlags.Uid) != 0 ? change.Uid : uint.MaxValue;
                uint gid = (valid & FattrFlags.Gid) != 0 ? change.Gid : uint.MaxValue;
                if (fchownat(l.Fd, &empty, uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) return ErrnoExtensions.LastPInvoke();
            }
            if ((valid & FattrFlags.Mode) != 0 && node.Type != S_IFLNK)
            {
                if (fchmodat2(l.Fd, &empty, change.Mode & 0xFFF, AT_EMPTY_PATH) != 0) return ErrnoExtensions.LastPInvoke();
            }
            if ((valid & FattrFlags.Size) != 0)
            {
                e = Truncate(node, l.Fd, change, valid);
                if (e != Errno.OK) return e;
            }
            if ((valid & FattrFlags.KillSuidGid) != 0 && (valid & FattrFlags.Mode) == 0 && SetIdBits.ClearedByWrite(node.Type))
            {
                // HANDLE_KILLPRIV_V2: the daemon (root, so exempt on the host) clears set-id bits on a write or truncate
                // by a caller without CAP_FSETID. A chown needs nothing here: the host kernel drops the bits for root
                // by the same rule (SetIdBits.ToClear), and file capabilities on every chown, truncate and write.
                // Keep in sync with MemoryFileSystem.SetAttr.
                e = StatFd(l.Fd, out StatX cur);
                if (e != Errno.OK) return e;
                uint mode = cur.Mode & 0xFFFu;
                uint killed = mode & ~SetIdBits.ToClear(mode);
                if (killed != mode && fchmodat2(l.Fd, &empty, killed, AT_EMPTY_PATH) != 0) return ErrnoExtensions.LastPInvoke();
            }
            if ((valid & (FattrFlags.Atime | FattrFlags.Mtime)) != 0)
            {
                TimeSpec* ts = stackalloc TimeSpec[2];
                ts[0] = TimeOf((valid & FattrFlags.Atime) != 0, (valid & FattrFlags.AtimeNow) != 0, change.Atime, change.AtimeNsec);
                ts[1] = TimeOf((valid & FattrFlags.Mtime) != 0, (valid & FattrFlags.MtimeNow) != 0, change.Mtime, change.MtimeNsec);
                if (utimensat_raw(l.Fd, &empty, ts, AT_EMPTY_PATH) != 0) return ErrnoExtensions.LastPInvoke();
            }
            e = StatFd(l.Fd, out StatX st);
            if (e != Errno.OK) return e;
            attr = ToAttr(st, node.Id);
        }
        return Errno.OK;
    }

    private Errno Truncate(HostNode node, int pathFd, in FuseSetattrIn change, FattrFlags valid)
    {
        if ((valid & FattrFlags.Fh) != 0 && _files.TryGetValue(change.Fh, out HostOpenFile? file) && file.Node == node)
        {
            if (!FdLease.TryBorrow(file.Fd, out FdLease fl)) return Errno.EBADF;
            using (fl) return ftruncate(fl.Fd, (long)change.Size) == 0 ? Errno.OK : ErrnoExtensions.LastPInvoke();
        }
        if (node.Type != S_IFREG) return node.Type == S_IFDIR ? Errno.EISDIR : Errno.EINVAL;
        Errno e = ReopenNode(pathFd, O_WRONLY, out int fd);
        if (e != Errno.OK) return e;
        using var writable = new SafeFd(fd);
        return ftruncate(fd, (long)change.Size) == 0 ? Errno.OK : ErrnoExtensions.LastPInvoke();
    }

    private static TimeSpec TimeOf(bool set, bool now, ulong sec, uint nsec)
    {
        if (!set) return new TimeSpec { Sec = 0, Nsec = UTIME_OMIT };
        if (now) return new TimeSpec { Sec = 0, Nsec = UTIME_NOW };
        return new TimeSpec { Sec = (long)sec, Nsec = nsec };
    }

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

    // ---------------------------------------------------------------- creating names

    public Errno Symlink(ulong parent, ReadOnlySpan<byte> name, ReadOnlySpan<byte> target, in Caller caller, out FuseAttr attr)
    {
        attr = default;
        Errno bad = NodeKinds.CheckSymlinkTarget(target);
        if (bad != Errno.OK) return bad;
        if (ReadOnly) return Errno.EROFS;
        Span<byte> targetZ = stackalloc byte[target.Length + 1];
        target.CopyTo(targetZ);
        targetZ[^1] = 0;
        return CreateByName(parent, name, S_IFLNK, 0, 0, caller, targetZ, out attr);
    }

    public Errno MkNod(ulong parent, ReadOnlySpan<byte> name, uint mode, uint rdev, in Caller caller, out FuseAttr attr)
    {
        attr = default;
        uint type = mode & S_IFMT;
        Errno bad = NodeKinds.CheckMknodType(type);
        if (bad != Errno.OK) return bad;
        if (ReadOnly) return Errno.EROFS;
        if (type == S_IFREG || type == 0)
        {
            // A regular file is created with O_EXCL so the descriptor we chown is the file we made.
            Errno e = Create(parent, name, O_WRONLY | O_EXCL, mode & 0xFFF, caller, out attr, out OpenResult r);
            if (e == Errno.OK) Release(attr.Ino, r.Fh);
            return e;
        }
        return CreateByName(parent, name, type, mode & 0xFFF, rdev, caller, default, out attr);
    }

    public Errno MkDir(ulong parent, ReadOnlySpan<byte> name, uint mode, in Caller caller, out FuseAttr attr)
    {
        attr = default;
        if (ReadOnly) return Errno.EROFS;
        return CreateByName(parent, name, S_IFDIR, mode & 0xFFF, 0, caller, default, out attr);
    }

    /// <summary>
    /// mkdirat/mknodat/symlinkat, then the new name is opened O_PATH|O_NOFOLLOW beneath the parent and chowned through
    /// that descriptor. The object is checked to be of the type just made and still owned by the daemon, so a
    /// name swapped in between is never handed to the caller.
    /// </summary>
    private Errno CreateByName(ulong parent, ReadOnlySpan<byte> name, uint type, uint perm, uint rdev, in Caller caller,
        ReadOnlySpan<byte> targetZ, out FuseAttr attr)
    {
        attr = default;
        LibC.EnsureThreadUmaskZero(); // exact modes without a chmod; TakeOwnership still fixes them if it was refused
        Span<byte> nameZ = stackalloc byte[NameMax + 1];
        Errno e = CheckName(name, nameZ);
        if (e != Errno.OK) return e;
        if (!TryGetNode(parent, out HostNode? p)) return Errno.ENOENT;
        e = Borrow(p, out FdLease pl);
        if (e != Errno.OK) return e;
        int fd;
        uint parentMode;
        using (pl)
        {
            e = StatFd(pl.Fd, out StatX pst);
            if (e != Errno.OK) return e;
            parentMode = pst.Mode;
            int rc;
            fixed (byte* n = nameZ)
            fixed (byte* t = targetZ)
            {
                rc = type switch
                {
                    S_IFDIR => mkdirat(pl.Fd, n, perm),
                    S_IFLNK => symlinkat(t, pl.Fd, n),
                    _ => mknodat(pl.Fd, n, type | perm, rdev),
                };
            }
            if (rc != 0) return ErrnoExtensions.LastPInvoke();
            e = OpenBeneath(pl.Fd, nameZ, O_PATH | O_NOFOLLOW, 0, out fd);
            if (e != Errno.OK) return e;
        }
        var pathFd = new SafeFd(fd);
        e = StatFd(fd, out StatX st);
        if (e != Errno.OK || (st.Mode & S_IFMT) != type || st.Uid != _daemonUid)
        {
            pathFd.Dispose();
            HostLog.CreatedNodeSwapped(_logger, Encoding.UTF8.GetString(name));
            return e != Errno.OK ? e : Errno.EACCES;
        }
        e = TakeOwnership(fd, type, perm, caller, parentMode);
        if (e != Errno.OK)
        {
            pathFd.Dispose();
            return e;
        }
        return AdoptPathFd(pathFd, out attr);
    }

    /// <summary>Gives a node the daemon just created to the caller and sets its exact permission bits (the
    /// daemon's umask and chown's clearing of set-id bits would otherwise change them).</summary>
    private static Errno TakeOwnership(int fd, uint type, uint perm, in Caller caller, uint parentMode)
    {
        byte empty = 0;
        // SetIdBits.NewNodeGid: in a setgid directory the host kernel already gave the node the directory's group
        // (inode_init_owner, atomically with the create), which is left as it is.
        uint gid = (parentMode & S_ISGID) != 0 ? uint.MaxValue : caller.Gid;
        if (fchownat(fd, &empty, caller.Uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) return ErrnoExtensions.LastPInvoke();
        if (type == S_IFLNK) return Errno.OK;
        Errno e = StatFd(fd, out StatX st);
        if (e != Errno.OK) return e;
        uint want = SetIdBits.NewNodePermissions(type, perm, parentMode);
        if ((st.Mode & 0xFFFu) != want && fchmodat2(fd, &empty, want, AT_EMPTY_PATH) != 0) return ErrnoExtensions.LastPInvoke();
        return Errno.OK;
    }

    public Errno Unlink(ulong parent, ReadOnlySpan<byte> name) => RemoveName(parent, name, 0);

    public Errno RmDir(ulong parent, ReadOnlySpan<byte> name) => RemoveName(parent, name, AT_REMOVEDIR);

    private Errno RemoveName(ulong parent, ReadOnlySpan<byte> name, int flags)
    {
        if (ReadOnly) return Errno.EROFS;
        Span<byte> nameZ = stackalloc byte[NameMax + 1];
        Errno e = CheckName(name, nameZ);
        if (e != Errno.OK) return e;
        if (!TryGetNode(parent, out HostNode? p)) return Errno.ENOENT;
        e = Borrow(p, out FdLease pl);
        if (e != Errno.OK) return e;
        using (pl)
        {
            PinIfLastName(pl.Fd, nameZ);
            fixed (byte* n = nameZ)
            {
                if (unlinkat(pl.Fd, n, flags) != 0) return ErrnoExtensions.LastPInvoke();
            }
        }
        return Errno.OK;
    }

    /// <summary>
    /// Before a name that may be the last link of a node the kernel still uses is removed, pin that node's descriptor:
    /// an unlinked inode cannot be reopened from its handle (ESTALE), yet GETATTR and READ must keep working.
    /// </summary>
    private void PinIfLastName(int parentFd, ReadOnlySpan<byte> nameZ)
    {
        StatX st;
        fixed (byte* n = nameZ)
        {
            if (statx(parentFd, n, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &st) != 0) return;
        }
        if ((st.Mode & S_IFMT) != S_IFDIR && st.Nlink > 1) return;
        HostNode? node;
        lock (_nodeLock)
        {
            if (!_nodesByKey.TryGetValue((DevOf(st), st.Ino), out node) || node.Pinned != null) return;
        }
        if (OpenBeneath(parentFd, nameZ, O_PATH | O_NOFOLLOW, 0, out int fd) != Errno.OK) return;
        var pinned = new SafeFd(fd);
        if (StatFd(fd, out StatX again) != Errno.OK || again.Ino != node.HostIno || DevOf(again) != node.Dev)
        {
            pinned.Dispose();
            return;
        }
        lock (_nodeLock)
        {
            if (node.Pinned == null && _nodesById.ContainsKey(node.Id))
            {
                node.Pinned = pinned;
                pinned = null!;
            }
        }
        pinned?.Dispose();
    }

    public Errno Rename(ulong parent, ReadOnlySpan<byte> name, ulong newParent, ReadOnlySpan<byte> newName, uint flags)
    {
        Errno bad = RenameFlags.Check(flags); // before names and EROFS, as do_renameat2
        if (bad != Errno.OK) return bad;
        if (ReadOnly) return Errno.EROFS;
        Span<byte> oldZ = stackalloc byte[NameMax + 1];
        Span<byte> newZ = stackalloc byte[NameMax + 1];
        Errno e = CheckName(name, oldZ);
        if (e != Errno.OK) return e;
        e = CheckName(newName, newZ);
        if (e != Errno.OK) return e;
        if (!TryGetNode(parent, out HostNode? p) || !TryGetNode(newParent, out HostNode? np)) return Errno.ENOENT;
        e = Borrow(p, out FdLease pl);
        if (e != Errno.OK) return e;
        using (pl)
        {
            e = Borrow(np, out FdLease npl);
            if (e != Errno.OK) return e;
            using (npl)
            {
                if ((flags & RENAME_EXCHANGE) == 0) PinIfLastName(npl.Fd, newZ);
                fixed (byte* o = oldZ)
                fixed (byte* n = newZ)
                {
                    if (renameat2(pl.Fd, o, npl.Fd, n, flags) != 0) return ErrnoExtensions.LastPInvoke();
                }
            }
        }
        return Errno.OK;
    }

    public Errno Link(ulong ino, ulong newParent, ReadOnlySpan<byte> newName, out FuseAttr attr)
    {
        attr = default;
        if (ReadOnly) return Errno.EROFS;
        Span<byte> nameZ = stackalloc byte[NameMax + 1];
        Errno e = CheckName(newName, nameZ);
        if (e != Errno.OK) return e;
        if (!TryGetNode(ino, out HostNode? node) || !TryGetNode(newParent, out HostNode? np)) return Errno.ENOENT;
        if (node.Type == S_IFDIR) return Errno.EPERM;
        e = Borrow(node, out FdLease l);
        if (e != Errno.OK) return e;
        using (l)
        {
            e = Borrow(np, out FdLease npl);
            if (e != Errno.OK) return e;
            using (npl)
            {
                byte empty = 0;
                fixed (byte* n = nameZ)
                {
                    if (linkat(l.Fd, &empty, npl.Fd, n, AT_EMPTY_PATH) != 0) return ErrnoExtensions.LastPInvoke();
                }
            }
            e = StatFd(l.Fd, out StatX st);
            if (e != Errno.OK) return e;
            attr = ToAttr(st, node.Id);
        }
        lock (_nodeLock) node.Lookups++;
        return Errno.OK;
    }

    // ---------------------------------------------------------------- open files

    public Errno Open(ulong ino, int flags, in Caller caller, out OpenResult result)
    {
        result = default;
        if (ReadOnly && ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC) != 0)) return Errno.EROFS;
        if (!TryGetNode(ino, out HostNode? node)) return Errno.ENOENT;
        // FUSE never sends OPEN for fifos and devices; refusing them here means a confused or hostile request
        // cannot make the daemon block on a fifo or poke a device.
        if (node.Type == S_IFDIR) return Errno.EISDIR;
        if (node.Type != S_IFREG) return Errno.EACCES;
        if (!ReserveHandle()) return Errno.EMFILE;
        Errno e = Borrow(node, out FdLease l);
        if (e != Errno.OK)
        {
            ReleaseHandleSlot();
            return e;
        }
        int fd;
        using (l) e = ReopenNode(l.Fd, flags & ~OpenFlagsStripped, out fd);
        if (e != Errno.OK)
        {
            ReleaseHandleSlot();
            return e;
        }
        return RegisterOpenFile(node, new SafeFd(fd), out result);
    }

    public Errno Create(ulong parent, ReadOnlySpan<byte> name, int flags, uint mode, in Caller caller, out FuseAttr attr, out OpenResult result)
    {
        attr = default;
        result = default;
        if (ReadOnly) return Errno.EROFS;
        Span<byte> nameZ = stackalloc byte[NameMax + 1];
        Errno e = CheckName(name, nameZ);
        if (e != Errno.OK) return e;
        if (!TryGetNode(parent, out HostNode? p)) return Errno.ENOENT;
        if (!ReserveHandle()) return Errno.EMFILE;
        LibC.EnsureThreadUmaskZero();
        e = Borrow(p, out FdLease pl);
        if (e != Errno.OK)
        {
            ReleaseHandleSlot();
            return e;
        }
        int fd;
        uint parentMode;
        using (pl)
        {
            e = StatFd(pl.Fd, out StatX pst);
            parentMode = pst.Mode;
            // Always O_EXCL: the kernel sends CREATE only for a negative entry, and O_EXCL guarantees the file we
            // chown to the caller is the one we just made, never an existing host file.
            if (e == Errno.OK) e = OpenBeneath(pl.Fd, nameZ, (flags & ~OpenFlagsStripped) | O_CREAT | O_EXCL | O_NOFOLLOW, mode & 0xFFF, out fd);
            else fd = -1;
        }
        if (e != Errno.OK)
        {
            ReleaseHandleSlot();
            // Without O_EXCL a name that exists (a racing creator was first) is opened as open(2) would, and never
            // chowned: it is not ours. Keep in sync with MemoryFileSystem.Create.
            return e == Errno.EEXIST && (flags & O_EXCL) == 0 ? OpenExisting(parent, name, flags, caller, out attr, out result) : e;
        }
        var file = new SafeFd(fd);
        e = TakeOwnership(fd, S_IFREG, mode & 0xFFF, caller, parentMode);
        if (e == Errno.OK) e = AdoptOpenFd(fd, pin: false, out attr, out HostNode? node);
        else attr = default;
        if (e != Errno.OK)
        {
            file.Dispose();
            ReleaseHandleSlot();
            return e;
        }
        HostNode created = NodeOf(attr.Ino)!;
        return RegisterOpenFile(created, file, out result);
    }

    private Errno OpenExisting(ulong parent, ReadOnlySpan<byte> name, int flags, in Caller caller, out FuseAttr attr, out OpenResult result)
    {
        result = default;
        Errno e = Lookup(parent, name, out attr);
        if (e != Errno.OK) return e;
        e = (attr.Mode & S_IFMT) == S_IFDIR ? Errno.EISDIR : Open(attr.Ino, flags & ~(O_CREAT | O_EXCL), caller, out result);
        if (e != Errno.OK)
        {
            Forget(attr.Ino, 1);
            attr = default;
        }
        return e;
    }

    public Errno TmpFile(ulong parent, int flags, uint mode, in Caller caller, out FuseAttr attr, out OpenResult result)
    {
        attr = default;
        result = default;
        if (ReadOnly) return Errno.EROFS;
        if (!TryGetNode(parent, out HostNode? p)) return Errno.ENOENT;
        if (!ReserveHandle()) return Errno.EMFILE;
        LibC.EnsureThreadUmaskZero();
        Errno e = Borrow(p, out FdLease pl);
        int fd = -1;
        uint parentMode = 0;
        if (e == Errno.OK)
        {
            using (pl)
            {
                e = StatFd(pl.Fd, out StatX pst);
                parentMode = pst.Mode;
                ReadOnlySpan<byte> dot = "."u8;
                Span<byte> dotZ = stackalloc byte[2];
                dot.CopyTo(dotZ);
                dotZ[1] = 0;
                int acc = (flags & O_ACCMODE) == O_RDONLY ? O_RDWR : flags & O_ACCMODE;
                if (e == Errno.OK) e = OpenBeneath(pl.Fd, dotZ, (flags & ~(OpenFlagsStripped | O_ACCMODE)) | acc | O_TMPFILE, mode & 0xFFF, out fd);
            }
        }
        if (e != Errno.OK)
        {
            ReleaseHandleSlot();
            return e;
        }
        var file = new SafeFd(fd);
        e = TakeOwnership(fd, S_IFREG, mode & 0xFFF, caller, parentMode);
        // An unnamed file cannot be reopened from a handle, so its node pins a descriptor.
        if (e == Errno.OK) e = AdoptOpenFd(fd, pin: true, out attr, out _);
        if (e != Errno.OK)
        {
            file.Dispose();
            ReleaseHandleSlot();
            return e;
        }
        return RegisterOpenFile(NodeOf(attr.Ino)!, file, out result);
    }

    private Errno RegisterOpenFile(HostNode node, SafeFd fd, out OpenResult result)
    {
        result = default;
        if (Direct)
        {
            int dup = fcntl(fd.Fd, F_DUPFD_CLOEXEC, 0);
            if (dup >= 0) result.PassthroughFd = new SafeFd(dup);
        }
        ulong fh = (ulong)Interlocked.Increment(ref _nextFh);
        lock (_nodeLock) node.OpenHandles++;
        _files[fh] = new HostOpenFile(node, fd);
        result.Fh = fh;
        // Every WRITE reaches the host file before it is answered and the descriptor is closed at RELEASE, so a
        // FLUSH at close() has nothing to do: the kernel is told not to send it (one round trip less per close).
        result.Flags = FopenFlags.NoFlush;
        return Errno.OK;
    }

    private bool ReserveHandle()
    {
        if (Interlocked.Increment(ref _openHandleCount) <= MaxOpenHandles) return true;
        Interlocked.Decrement(ref _openHandleCount);
        if (!_handleWarningLogged)
        {
            _handleWarningLogged = true;
            HostLog.HandleCapReached(_logger, MaxOpenHandles);
        }
        return false;
    }

    private void ReleaseHandleSlot() => Interlocked.Decrement(ref _openHandleCount);

    public Errno Read(ulong ino, ulong fh, long offset, Span<byte> buffer, out int bytesRead)
    {
        bytesRead = 0;
        if (!_files.TryGetValue(fh, out HostOpenFile? file) || !FdLease.TryBorrow(file.Fd, out FdLease lease)) return Errno.EBADF;
        using var l = lease;
        fixed (byte* b = buffer)
        {
            nint n = pread(l.Fd, b, buffer.Length, offset);
            if (n < 0) return ErrnoExtensions.LastPInvoke();
            bytesRead = (int)n;
        }
        return Errno.OK;
    }

    public Errno ReadSpliced(ulong ino, ulong fh, long offset, int length, ISpliceReadSink sink, out int bytesRead)
    {
        ArgumentNullException.ThrowIfNull(sink);
        bytesRead = 0;
        if (!_files.TryGetValue(fh, out HostOpenFile? file) || !FdLease.TryBorrow(file.Fd, out FdLease lease)) return Errno.EBADF;
        using var l = lease;
        return sink.SpliceFrom(l.Fd, offset, length, out bytesRead);
    }

    public Errno Write(ulong ino, ulong fh, long offset, ReadOnlySpan<byte> data, out int bytesWritten)
    {
        bytesWritten = 0;
        if (ReadOnly) return Errno.EROFS;
        if (!_files.TryGetValue(fh, out HostOpenFile? file) || !FdLease.TryBorrow(file.Fd, out FdLease lease)) return Errno.EBADF;
        using var l = lease;
        fixed (byte* b = data)
        {
            nint n = pwrite(l.Fd, b, data.Length, offset);
            if (n < 0) return ErrnoExtensions.LastPInvoke();
            bytesWritten = (int)n;
        }
        return Errno.OK;
    }

    public Errno Flush(ulong ino, ulong fh) => _files.ContainsKey(fh) ? Errno.OK : Errno.EBADF;

    public Errno Fsync(ulong ino, ulong fh, bool dataOnly)
    {
        if (!_files.TryGetValue(fh, out HostOpenFile? file) || !FdLease.TryBorrow(file.Fd, out FdLease lease)) return Errno.EBADF;
        using var l = lease;
        int rc = dataOnly ? fdatasync(l.Fd) : fsync(l.Fd);
        return rc == 0 ? Errno.OK : ErrnoExtensions.LastPInvoke();
    }

    public Errno Release(ulong ino, ulong fh)
    {
        if (!_files.TryRemove(fh, out HostOpenFile? file)) return Errno.EBADF;
        file.Fd.Dispose();
        ReleaseHandleSlot();
        lock (_nodeLock)
        {
            file.Node.OpenHandles--;
            DropIfUnusedLocked(file.Node);
        }
        return Errno.OK;
    }

    public Errno Fallocate(ulong ino, ulong fh, int mode, long offset, long length)
    {
        if (ReadOnly) return Errno.EROFS;
        // Every mode FUSE forwards goes to the host filesystem, which answers for what it lacks (tmpfs: ZERO_RANGE).
        Errno bad = FallocateMode.Check(mode, offset, length);
        if (bad != Errno.OK) return bad;
        if (!_files.TryGetValue(fh, out HostOpenFile? file) || !FdLease.TryBorrow(file.Fd, out FdLease lease)) return Errno.EBADF;
        using var l = lease;
        return fallocate(l.Fd, mode, offset, length) == 0 ? Errno.OK : ErrnoExtensions.LastPInvoke();
    }

    public Errno Lseek(ulong ino, ulong fh, long offset, int whence, out long result)
    {
        result = 0;
        if (!_files.TryGetValue(fh, out HostOpenFile? file) || !FdLease.TryBorrow(file.Fd, out FdLease lease)) return Errno.EBADF;
        using var l = lease;
        long r = lseek(l.Fd, offset, whence);
        if (r < 0) return ErrnoExtensions.LastPInvoke();
        result = r;
        return Errno.OK;
    }

    public Errno CopyFileRange(ulong inoIn, ulong fhIn, long offsetIn, ulong inoOut, ulong fhOut, long offsetOut, long length, out long copied)
    {
        copied = 0;
        if (ReadOnly) return Errno.EROFS;
        if (!_files.TryGetValue(fhIn, out HostOpenFile? fin) || !_files.TryGetValue(fhOut, out HostOpenFile? fout)) return Errno.EBADF;
        if (!FdLease.TryBorrow(fin.Fd, out FdLease li)) return Errno.EBADF;
        using var inLease = li;
        if (!FdLease.TryBorrow(fout.Fd, out FdLease lo)) return Errno.EBADF;
        using var outLease = lo;
        long oi = offsetIn, oo = offsetOut;
        nint n = copy_file_range(li.Fd, &oi, lo.Fd, &oo, (nint)Math.Min(length, int.MaxValue), 0);
        if (n < 0) return ErrnoExtensions.LastPInvoke();
        copied = n;
        return Errno.OK;
    }

    public Errno StatFs(out FuseKstatfs stat)
    {
        stat = default;
        StatFsBuf buf;
        if (fstatfs(_rootFd.Fd, &buf) != 0) return ErrnoExtensions.LastPInvoke();
        stat.Blocks = buf.Blocks;
        stat.Bfree = buf.Bfree;
        stat.Bavail = buf.Bavail;
        stat.Files = buf.Files;
        stat.Ffree = buf.Ffree;
        stat.Bsize = (uint)buf.Bsize;
        stat.NameLen = (uint)buf.NameLen;
        stat.Frsize = (uint)buf.Frsize;
        return Errno.OK;
    }

    // ---------------------------------------------------------------- xattrs
    // The *xattrat calls refuse O_PATH descriptors (EBADF), so they name the node as "N" inside /proc/self/fd:
    // the one magic-link step described in the class comment, which lands on exactly our node's inode.

    public Errno SetXattr(ulong ino, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, int flags)
    {
        Span<byte> attrZ = stackalloc byte[NameMax + 1];
        XattrNamespace ns = default;
        Errno e = Posix.XattrName.CheckSetFlags(flags); // setxattr's order: flags, name, size
        if (e == Errno.OK) e = CheckXattrName(name, attrZ, out ns);
        if (e != Errno.OK) return e;
        if (value.Length > Posix.XattrName.MaxValueLength) return Errno.E2BIG;
        if (ReadOnly) return Errno.EROFS;
        if (!TryGetNode(ino, out HostNode? node)) return Errno.ENOENT;
        if ((e = Posix.XattrName.CheckNode(ns, node.Type, write: true)) != Errno.OK) return e;
        e = Borrow(node, out FdLease l);
        if (e != Errno.OK) return e;
        using (l)
        {
            Span<byte> fdName = stackalloc byte[16];
            FdName(l.Fd, fdName);
            fixed (byte* n = fdName)
            fixed (byte* a = attrZ)
            fixed (byte* v = value)
            {
                var args = new XattrArgs { Value = (ulong)v, Size = (uint)value.Length, Flags = (uint)flags };
                if (setxattrat(_procFdDir.Fd, n, 0, a, &args) != 0) return ErrnoExtensions.LastPInvoke();
            }
        }
        return Errno.OK;
    }

    public Errno GetXattr(ulong ino, ReadOnlySpan<byte> name, Span<byte> buffer, out int size)
    {
        size = 0;
        Span<byte> attrZ = stackalloc byte[NameMax + 1];
        Errno e = CheckXattrName(name, attrZ, out XattrNamespace ns);
        if (e != Errno.OK) return e;
        if (!TryGetNode(ino, out HostNode? node)) return Errno.ENOENT;
        if ((e = Posix.XattrName.CheckNode(ns, node.Type, write: false)) != Errno.OK) return e;
        e = Borrow(node, out FdLease l);
        if (e != Errno.OK) return e;
        using (l)
        {
            Span<byte> fdName = stackalloc byte[16];
            FdName(l.Fd, fdName);
            fixed (byte* n = fdName)
            fixed (byte* a = attrZ)
            fixed (byte* v = buffer)
            {
                var args = new XattrArgs { Value = (ulong)v, Size = (uint)buffer.Length };
                long r = getxattrat(_procFdDir.Fd, n, 0, a, &args);
                if (r < 0) return ErrnoExtensions.LastPInvoke();
                size = (int)r;
            }
        }
        return Errno.OK;
    }

    /// <summary>The host's list with the system.* names dropped (see <see cref="CheckXattrName"/>), so a size query
    /// and ERANGE describe exactly what is served.</summary>
    public Errno ListXattr(ulong ino, Span<byte> buffer, out int size)
    {
        size = 0;
        if (!TryGetNode(ino, out HostNode? node)) return Errno.ENOENT;
        Errno e = Borrow(node, out FdLease l);
        if (e != Errno.OK) return e;
        byte[]? all = null;
        try
        {
            using (l)
            {
                Span<byte> fdName = stackalloc byte[16];
                FdName(l.Fd, fdName);
                while (true)
                {
                    long r;
                    fixed (byte* n = fdName) r = listxattrat(_procFdDir.Fd, n, 0, null, 0);
                    if (r < 0) return ErrnoExtensions.LastPInvoke();
                    if (r == 0) return Errno.OK;
                    all = ArrayPool<byte>.Shared.Rent((int)r);
                    fixed (byte* n = fdName)
                    fixed (byte* v = all)
                    {
                        r = listxattrat(_procFdDir.Fd, n, 0, v, all.Length);
                    }
                    if (r >= 0)
                    {
                        size = RemoveUnservedNames(all.AsSpan(0, (int)r));
                        break;
                    }
                    e = ErrnoExtensions.LastPInvoke();
                    ArrayPool<byte>.Shared.Return(all);
                    all = null;
                    if (e != Errno.ERANGE) return e; // ERANGE: the list grew between the calls; ask again
                }
            }
            if (buffer.IsEmpty) return Errno.OK;
            if (buffer.Length < size) return Errno.ERANGE;
            all.AsSpan(0, size).CopyTo(buffer);
            return Errno.OK;
        }
        finally
        {
            if (all != null) ArrayPool<byte>.Shared.Return(all);
        }
    }

    public Errno RemoveXattr(ulong ino, ReadOnlySpan<byte> name)
    {
        Span<byte> attrZ = stackalloc byte[NameMax + 1];
        Errno e = CheckXattrName(name, attrZ, out XattrNamespace ns);
        if (e != Errno.OK) return e;
        if (ReadOnly) return Errno.EROFS;
        if (!TryGetNode(ino, out HostNode? node)) return Errno.ENOENT;
        if ((e = Posix.XattrName.CheckNode(ns, node.Type, write: true)) != Errno.OK) return e;
        e = Borrow(node, out FdLease l);
        if (e != Errno.OK) return e;
        using (l)
        {
            Span<byte> fdName = stackalloc byte[16];
            FdName(l.Fd, fdName);
            fixed (byte* n = fdName)
            fixed (byte* a = attrZ)
            {
                if (removexattrat(_procFdDir.Fd, n, 0, a) != 0) return ErrnoExtensions.LastPInvoke();
            }
        }
        return Errno.OK;
    }

    /// <summary>
    /// The core's name rules, NUL-terminated into <paramref name="z"/>; system.* is EOPNOTSUPP (no POSIX ACLs are served:
    /// FUSE_POSIX_ACL is not negotiated, so the kernel would not enforce one the host stored). Keep in sync with
    /// MemoryFileSystem.CheckXattrName and <see cref="RemoveUnservedNames"/>.
    /// </summary>
    private static Errno CheckXattrName(ReadOnlySpan<byte> name, Span<byte> z, out XattrNamespace ns)
    {
        Errno e = Posix.XattrName.Check(name, out ns);
        if (e == Errno.OK && ns == XattrNamespace.System) e = Errno.EOPNOTSUPP;
        if (e != Errno.OK) return e;
        name.CopyTo(z);
        z[name.Length] = 0;
        return Errno.OK;
    }

    /// <summary>Drops system.* names from a NUL-separated list in place; returns the new length.</summary>
    private static int RemoveUnservedNames(Span<byte> list)
    {
        int write = 0;
        for (int read = 0; read < list.Length;)
        {
            int end = list[read..].IndexOf((byte)0);
            int next = end < 0 ? list.Length : read + end + 1;
            Span<byte> entry = list[read..next];
            if (!entry.StartsWith("system."u8))
            {
                entry.CopyTo(list[write..]);
                write += entry.Length;
            }
            read = next;
        }
        return write;
    }

    private static void FdName(int fd, Span<byte> dest)
    {
        Utf8Formatter.TryFormat(fd, dest, out int written);
        dest[written] = 0;
    }

    // ---------------------------------------------------------------- directories

    public Errno OpenDir(ulong ino, out ulong fh)
    {
        fh = 0;
        if (!TryGetNode(ino, out HostNode? node)) return Errno.ENOENT;
        if (node.Type != S_IFDIR) return Errno.ENOTDIR;
        if (!ReserveHandle()) return Errno.EMFILE;
        Errno e = Borrow(node, out FdLease l);
        int fd = -1;
        if (e == Errno.OK)
        {
            using (l)
            {
                Span<byte> dotZ = [(byte)'.', 0];
                e = OpenBeneath(l.Fd, dotZ, O_RDONLY | O_DIRECTORY, 0, out fd);
            }
        }
        if (e != Errno.OK)
        {
            ReleaseHandleSlot();
            return e;
        }
        fh = (ulong)Interlocked.Increment(ref _nextFh);
        lock (_nodeLock) node.OpenHandles++;
        _dirs[fh] = new HostDirHandle(node, new SafeFd(fd));
        return Errno.OK;
    }

    [ThreadStatic]
    private static byte[]? t_dirents;

    /// <summary>
    /// Streams the directory: getdents64 on the handle's own descriptor, from the kernel's cookie (d_off) the last
    /// READDIR ended at, so an open directory costs one descriptor, not a copy of its listing (a 100,000-entry
    /// directory open 40 times used to hold 40 copies). Cookies are the host filesystem's d_off values, which stay
    /// valid across creates and deletes as telldir/seekdir require; offset 0 rewinds, so rewinddir sees a fresh listing.
    /// </summary>
    public Errno ReadDir(ulong ino, ulong fh, long offset, IDirectoryEntrySink sink)
    {
        ArgumentNullException.ThrowIfNull(sink);
        if (!_dirs.TryGetValue(fh, out HostDirHandle? dir) || !FdLease.TryBorrow(dir.Fd, out FdLease lease)) return Errno.EBADF;
        byte[] buf = t_dirents ??= new byte[32768];
        using (lease)
        lock (dir.Gate)
        {
            int fd = lease.Fd;
            if (offset != dir.Position)
            {
                if (lseek(fd, offset, SEEK_SET) < 0) return ErrnoExtensions.LastPInvoke();
                dir.Position = offset;
            }
            fixed (byte* b = buf)
            {
                while (true)
                {
                    nint n = getdents64(fd, b, buf.Length);
                    if (n < 0) return ErrnoExtensions.LastPInvoke();
                    if (n == 0) return Errno.OK;
                    for (int pos = 0; pos + 19 < n;)
                    {
                        ulong dIno = *(ulong*)(b + pos);
                        long dOff = *(long*)(b + pos + 8);
                        ushort recLen = *(ushort*)(b + pos + 16);
                        byte dType = b[pos + 18];
                        if (recLen < 20 || pos + recLen > n) return Errno.EIO;
                        var name = new ReadOnlySpan<byte>(b + pos + 19, recLen - 19);
                        int z = name.IndexOf((byte)0);
                        if (z >= 0) name = name[..z];
                        pos += recLen;
                        bool dot = name.SequenceEqual("."u8), dotDot = name.SequenceEqual(".."u8);
                        uint type = (uint)dType << 12;
                        // DT_UNKNOWN (some filesystems): one statx of that single name beneath the directory.
                        if (type == 0 && StatName(fd, name, out StatX est) == Errno.OK) type = est.Mode & S_IFMT;
                        ulong id = dot ? dir.Node.Id : dotDot ? 0 : KnownId(dir.Node.Dev, dIno);
                        if (!sink.TryAdd(name, id, dot || dotDot ? S_IFDIR : type, dOff))
                        {
                            // The reply is full; getdents read ahead: the next READDIR seeks back to this entry's start.
                            dir.Position = -1;
                            return Errno.OK;
                        }
                        dir.Position = dOff;
                    }
                }
            }
        }
    }

    private ulong KnownId(ulong dev, ulong hostIno)
    {
        lock (_nodeLock) return _nodesByKey.TryGetValue((dev, hostIno), out HostNode? n) ? n.Id : 0;
    }

    public Errno ReleaseDir(ulong ino, ulong fh)
    {
        if (!_dirs.TryRemove(fh, out HostDirHandle? dir)) return Errno.EBADF;
        dir.Fd.Dispose();
        ReleaseHandleSlot();
        lock (_nodeLock)
        {
            dir.Node.OpenHandles--;
            DropIfUnusedLocked(dir.Node);
        }
        return Errno.OK;
    }

    public Errno FsyncDir(ulong ino, ulong fh, bool dataOnly)
    {
        if (!_dirs.TryGetValue(fh, out HostDirHandle? dir)) return Errno.EBADF;
        Errno e = Borrow(dir.Node, out FdLease l);
        if (e != Errno.OK) return e;
        int fd;
        using (l)
        {
            Span<byte> dotZ = [(byte)'.', 0];
            e = OpenBeneath(l.Fd, dotZ, O_RDONLY | O_DIRECTORY, 0, out fd);
        }
        if (e != Errno.OK) return e;
        using var d = new SafeFd(fd);
        int rc = dataOnly ? fdatasync(fd) : fsync(fd);
        return rc == 0 ? Errno.OK : ErrnoExtensions.LastPInvoke();
    }

    // ---------------------------------------------------------------- plumbing

    /// <summary>Refuses what <see cref="EntryName.Check"/> refuses (reporting ".." and '/' or NUL as escapes) and
    /// NUL-terminates the rest.</summary>
    private Errno CheckName(ReadOnlySpan<byte> name, Span<byte> nameZ)
    {
        if (EntryName.IsEscape(name)) ReportEscape(name[..Math.Min(name.Length, 4 * NameMax)], Errno.EXDEV);
        Errno e = EntryName.Check(name);
        if (e != Errno.OK) return e;
        name.CopyTo(nameZ);
        nameZ[name.Length] = 0;
        return Errno.OK;
    }

    private void ReportEscape(ReadOnlySpan<byte> name, Errno errno)
    {
        string text = Encoding.UTF8.GetString(name);
        HostLog.EscapeRefused(_logger, text, errno);
        EscapeRefused?.Invoke(text, errno);
    }

    /// <summary>openat2 beneath <paramref name="dirFd"/>; EXDEV and ELOOP from the resolver are reported as escapes.</summary>
    private Errno OpenBeneath(int dirFd, ReadOnlySpan<byte> nameZ, int flags, uint mode, out int fd)
    {
        var how = new OpenHow { Flags = (ulong)(uint)(flags | O_CLOEXEC), Mode = mode, Resolve = Resolve };
        fixed (byte* n = nameZ)
        {
            fd = openat2(dirFd, n, &how);
        }
        if (fd >= 0) return Errno.OK;
        Errno e = ErrnoExtensions.LastPInvoke();
        if (e == Errno.EXDEV || (e == Errno.ELOOP && (flags & O_PATH) != 0))
        {
            ReportEscape(nameZ[..nameZ.IndexOf((byte)0)], e);
            return Errno.EACCES;
        }
        return e;
    }

    /// <summary>Reopens exactly the inode of an O_PATH descriptor with real access flags (see the class comment).</summary>
    private Errno ReopenNode(int pathFd, int flags, out int fd)
    {
        Span<byte> fdName = stackalloc byte[16];
        FdName(pathFd, fdName);
        fixed (byte* n = fdName)
        {
            fd = openat(_procFdDir.Fd, n, flags | O_CLOEXEC, 0);
        }
        return fd >= 0 ? Errno.OK : ErrnoExtensions.LastPInvoke();
    }

    private static Errno StatFd(int fd, out StatX st)
    {
        byte empty = 0;
        fixed (StatX* p = &st)
        {
            return statx(fd, &empty, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, p) == 0
                ? Errno.OK : ErrnoExtensions.LastPInvoke();
        }
    }

    private static Errno StatName(int dirFd, ReadOnlySpan<byte> name, out StatX st)
    {
        st = default;
        if (name.Length > NameMax) return Errno.ENAMETOOLONG;
        Span<byte> nameZ = stackalloc byte[NameMax + 1];
        name.CopyTo(nameZ);
        nameZ[name.Length] = 0;
        fixed (byte* n = nameZ)
        fixed (StatX* p = &st)
        {
            return statx(dirFd, n, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, p) == 0 ? Errno.OK : ErrnoExtensions.LastPInvoke();
        }
    }

    private static ulong DevOf(in StatX st) => ((ulong)st.DevMajor << 32) | st.DevMinor;

    private static FuseAttr ToAttr(in StatX st, ulong id) => new()
    {
        Ino = id,
        Size = st.Size,
        Blocks = st.Blocks,
        Atime = (ulong)st.Atime.Sec,
        AtimeNsec = st.Atime.Nsec,
        Mtime = (ulong)st.Mtime.Sec,
        MtimeNsec = st.Mtime.Nsec,
        Ctime = (ulong)st.Ctime.Sec,
        CtimeNsec = st.Ctime.Nsec,
        Mode = st.Mode,
        Nlink = st.Nlink,
        Uid = st.Uid,
        Gid = st.Gid,
        Rdev = (st.RdevMinor & 0xff) | (st.RdevMajor << 8) | ((st.RdevMinor & ~0xffu) << 12),
        BlkSize = st.BlkSize,
    };

    private byte[]? TryGetHandle(int fd, out int mountId)
    {
        byte* buf = stackalloc byte[8 + MAX_HANDLE_SZ];
        *(uint*)buf = MAX_HANDLE_SZ;
        byte empty = 0;
        int mid;
        if (name_to_handle_at(fd, &empty, buf, &mid, AT_EMPTY_PATH) != 0)
        {
            Errno e = ErrnoExtensions.LastPInvoke();
            if (!_handleWarningLogged)
            {
                _handleWarningLogged = true;
                HostLog.HandlesUnsupported(_logger, e);
            }
            mountId = -1;
            return null;
        }
        mountId = mid;
        uint len = *(uint*)buf;
        return new ReadOnlySpan<byte>(buf, 8 + (int)len).ToArray();
    }

    /// <summary>Finds or makes the node for a fresh O_PATH descriptor, adds one kernel reference, and takes the descriptor.</summary>
    private Errno AdoptPathFd(SafeFd pathFd, out FuseAttr attr)
    {
        attr = default;
        Errno e = StatFd(pathFd.Fd, out StatX st);
        if (e != Errno.OK)
        {
            pathFd.Dispose();
            return e;
        }
        (ulong, ulong) key = (DevOf(st), st.Ino);
        lock (_nodeLock)
        {
            if (_nodesByKey.TryGetValue(key, out HostNode? known))
            {
                known.Lookups++;
                attr = ToAttr(st, known.Id);
                if (known.Pinned == null) _cache.Add(known.Id, pathFd);
                else pathFd.Dispose();
                return Errno.OK;
            }
        }
        byte[]? handle = TryGetHandle(pathFd.Fd, out int mountId);
        SafeFd? newMountFd = null;
        if (handle != null)
        {
            bool knownMount;
            lock (_nodeLock) knownMount = _mountFds.ContainsKey(mountId);
            if (!knownMount)
            {
                // First node seen on another mount inside the tree (normally that mount's root directory).
                newMountFd = OpenMountFd(pathFd.Fd, st.Mode & S_IFMT);
                if (newMountFd == null) handle = null; // no usable mount descriptor: this node pins its own
            }
        }
        HostNode node;
        SafeFd? surplus = null;
        lock (_nodeLock)
        {
            if (newMountFd != null && _mountFds.TryAdd(mountId, newMountFd)) newMountFd = null;
            if (_nodesByKey.TryGetValue(key, out HostNode? raced))
            {
                node = raced;
                surplus = pathFd;
            }
            else
            {
                node = new HostNode(_nextNodeId++, key.Item1, key.Item2, st.Mode & S_IFMT, handle, mountId);
                _nodesById[node.Id] = node;
                _nodesByKey[key] = node;
            }
            node.Lookups++;
            if (surplus == null)
            {
                if (handle == null) node.Pinned = pathFd;
                else _cache.Add(node.Id, pathFd);
            }
        }
        surplus?.Dispose();
        newMountFd?.Dispose();
        attr = ToAttr(st, node.Id);
        return Errno.OK;
    }

    /// <summary>
    /// A descriptor on the mount of <paramref name="pathFd"/> for open_by_handle_at, which refuses O_PATH mount
    /// descriptors (EBADF): the directory itself reopened O_RDONLY, or a regular file reopened O_RDONLY. Other types
    /// (a bind-mounted device or fifo) get none; their nodes pin a descriptor instead.
    /// </summary>
    private SafeFd? OpenMountFd(int pathFd, uint type)
    {
        int fd;
        if (type == S_IFDIR)
        {
            Span<byte> dotZ = [(byte)'.', 0];
            if (OpenBeneath(pathFd, dotZ, O_RDONLY | O_DIRECTORY, 0, out fd) != Errno.OK) return null;
        }
        else if (type == S_IFREG)
        {
            if (ReopenNode(pathFd, O_RDONLY | O_NONBLOCK | O_NOCTTY, out fd) != Errno.OK) return null;
        }
        else
        {
            return null;
        }
        return new SafeFd(fd);
    }

    /// <summary>As <see cref="AdoptPathFd"/> for a descriptor we keep as an open file (it is not taken).</summary>
    private Errno AdoptOpenFd(int openFd, bool pin, out FuseAttr attr, out HostNode? node)
    {
        node = null;
        attr = default;
        Span<byte> fdName = stackalloc byte[16];
        FdName(openFd, fdName);
        int pathFd;
        fixed (byte* n = fdName)
        {
            pathFd = openat(_procFdDir.Fd, n, O_PATH | O_CLOEXEC, 0);
        }
        if (pathFd < 0) return ErrnoExtensions.LastPInvoke();
        var fd = new SafeFd(pathFd);
        if (pin)
        {
            Errno e = StatFd(pathFd, out StatX st);
            if (e != Errno.OK)
            {
                fd.Dispose();
                return e;
            }
            lock (_nodeLock)
            {
                node = new HostNode(_nextNodeId++, DevOf(st), st.Ino, S_IFREG, null, -1) { Lookups = 1, Pinned = fd };
                _nodesById[node.Id] = node;
                _nodesByKey[(node.Dev, node.HostIno)] = node;
            }
            attr = ToAttr(st, node.Id);
            return Errno.OK;
        }
        Errno r = AdoptPathFd(fd, out attr);
        if (r == Errno.OK) node = NodeOf(attr.Ino);
        return r;
    }

    private HostNode? NodeOf(ulong id)
    {
        return _nodesById.GetValueOrDefault(id);
    }

    /// <summary>
    /// Overlay copy-up: the node reopened with real flags (no name resolved; the same magic-link step OPEN takes).
    /// The caller owns the descriptor.
    /// </summary>
    internal Errno ReopenForCopy(ulong ino, int flags, out SafeFd fd)
    {
        fd = new SafeFd(-1);
        if (!TryGetNode(ino, out HostNode? node)) return Errno.ENOENT;
        Errno e = Borrow(node, out FdLease l);
        if (e != Errno.OK) return e;
        using (l)
        {
            e = ReopenNode(l.Fd, flags, out int raw);
            if (e == Errno.OK) fd = new SafeFd(raw);
        }
        return e;
    }

    /// <summary>Overlay copy-up: borrows a directory node's O_PATH descriptor (the new name is renamed in beneath it).</summary>
    internal Errno BorrowForCopy(ulong ino, out FdLease lease)
    {
        lease = default;
        return TryGetNode(ino, out HostNode? node) ? Borrow(node, out lease) : Errno.ENOENT;
    }

    /// <summary>Lock-free: the per-request node lookup.</summary>
    private bool TryGetNode(ulong id, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out HostNode? node)
        => _nodesById.TryGetValue(id, out node);

    /// <summary>Borrows an O_PATH descriptor for a node: pinned, cached, or reopened from its file handle.</summary>
    private Errno Borrow(HostNode node, out FdLease lease)
    {
        SafeFd? pinned = node.Pinned;
        if (pinned != null) return FdLease.TryBorrow(pinned, out lease) ? Errno.OK : Errno.ESTALE;
        if (_cache.TryBorrow(node.Id, out lease)) return Errno.OK;
        if (node.Handle == null)
        {
            lease = default;
            return Errno.ESTALE;
        }
        SafeFd? mountFd;
        lock (_nodeLock) mountFd = _mountFds.GetValueOrDefault(node.MountId);
        if (mountFd == null)
        {
            lease = default;
            return Errno.ESTALE;
        }
        int fd;
        using (var ml = new FdLease(mountFd))
        {
            fixed (byte* h = node.Handle)
            {
                fd = open_by_handle_at(ml.Fd, h, O_PATH | O_CLOEXEC);
            }
        }
        if (fd < 0)
        {
            Errno e = ErrnoExtensions.LastPInvoke();
            lease = default;
            return e;
        }
        lease = _cache.AddAndBorrow(node.Id, new SafeFd(fd));
        return Errno.OK;
    }

    /// <summary>Precondition: _nodeLock held.</summary>
    private void DropIfUnusedLocked(HostNode node)
    {
        if (node == _root || node.Lookups > 0 || node.OpenHandles > 0) return;
        _nodesById.TryRemove(node.Id, out _);
        if (_nodesByKey.TryGetValue((node.Dev, node.HostIno), out HostNode? current) && current == node)
            _nodesByKey.Remove((node.Dev, node.HostIno));
        _cache.Remove(node.Id);
        node.Pinned?.Dispose();
        node.Pinned = null;
    }

    public void Dispose()
    {
        foreach (var f in _files.Values) f.Fd.Dispose();
        _files.Clear();
        foreach (var d in _dirs.Values) d.Fd.Dispose();
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
