using System.Buffers;
using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Text;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Posix;
using Microsoft.Extensions.Logging;
using static InSpatialFs.Interop.LibC;

namespace InSpatialFs.Storage.Host;

// Descriptor plumbing: name checks, openat2 beneath a directory, reopening through /proc/self/fd, file handles,
// adopting descriptors as nodes, and borrowing a node's descriptor (BorrowNode, TryBorrowFile, Borrow).
public sealed unsafe partial class HostFileSystem
{
    /// <summary>Refuses what <see cref="EntryName.Check"/> refuses (".." and '/' as <see cref="BackendResult.EscapeRefused"/>)
    /// and NUL-terminates the rest.</summary>
    private Errno CheckName(ReadOnlySpan<byte> name, Span<byte> nameZ)
    {
        if (EntryName.IsEscape(name)) return RefuseEscape(name[..Math.Min(name.Length, 4 * NameMax)], Errno.EXDEV);
        Errno e = EntryName.Check(name);
        if (e != Errno.OK) return e;
        name.CopyTo(nameZ);
        nameZ[name.Length] = 0;
        return Errno.OK;
    }

    /// <summary>Logs the refused name (the host side's record) and returns the result the proxy turns into an event.</summary>
    private Errno RefuseEscape(ReadOnlySpan<byte> name, Errno cause)
    {
        if (_escapeLines.Allow(out long notLogged))
        {
            if (notLogged > 0) HostLog.EscapesNotLogged(_logger, notLogged, _escapeLines.Burst);
            HostLog.EscapeRefused(_logger, Encoding.UTF8.GetString(name), cause);
        }
        return BackendResult.EscapeRefused;
    }

    /// <summary>openat2 beneath <paramref name="dirFd"/>; EXDEV and ELOOP from the resolver are <see cref="BackendResult.EscapeRefused"/>.</summary>
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
            return RefuseEscape(nameZ[..nameZ.IndexOf((byte)0)], e);
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
        byte empty = 0;
        byte[]? handle = HandleAt(fd, &empty, AT_EMPTY_PATH, out mountId);
        if (handle == null && !_handlesRefused)
        {
            Errno e = ErrnoExtensions.LastPInvoke();
            _handlesRefused = true;
            HostLog.HandlesUnsupported(_logger, e);
        }
        return handle;
    }

    /// <summary>name_to_handle_at(dirFd, nameZ, flags): the struct file_handle bytes (header included), or null with errno set.</summary>
    private static byte[]? HandleAt(int dirFd, byte* nameZ, int flags, out int mountId)
    {
        byte* buf = stackalloc byte[8 + MAX_HANDLE_SZ];
        *(uint*)buf = MAX_HANDLE_SZ;
        int mid;
        if (name_to_handle_at(dirFd, nameZ, buf, &mid, flags) != 0)
        {
            mountId = -1;
            return null;
        }
        mountId = mid;
        return new ReadOnlySpan<byte>(buf, 8 + (int)*(uint*)buf).ToArray();
    }

    /// <summary>
    /// Precondition: _nodeLock held. The node of <paramref name="key"/>, made and indexed from these facts if there is
    /// none (a racing lookup or create may have made it first), with one kernel reference added.
    /// </summary>
    private HostNode FindOrAddNodeLocked((ulong Dev, ulong Ino) key, uint type, byte[] handle, int mountId, int handleCheck = HostNode.HandleProven)
    {
        if (!_nodesByKey.TryGetValue(key, out HostNode? node))
        {
            node = new HostNode(_nextNodeId++, key.Dev, key.Ino, type, handle, mountId) { HandleCheck = handleCheck };
            _nodesById[node.Id] = node;
            _nodesByKey[key] = node;
        }
        EntryReturnedLocked(node);
        return node;
    }

    /// <summary>Finds or makes the node for a fresh O_PATH descriptor, adds one kernel reference, and takes the descriptor.</summary>
    private Errno AdoptPathFd(SafeFd pathFd, out FuseAttr attr) => AdoptPathFd(pathFd, null, out attr, out _);

    private Errno AdoptPathFd(SafeFd pathFd, StatX* current, out FuseAttr attr) => AdoptPathFd(pathFd, current, out attr, out _);

    /// <summary>As above; <paramref name="current"/>, when not null, is a statx of this very inode taken after its last
    /// change by us (a create's ownership step), which saves the statx here. <paramref name="wasKnown"/>: the inode
    /// already had a node.</summary>
    private Errno AdoptPathFd(SafeFd pathFd, StatX* current, out FuseAttr attr, out bool wasKnown)
    {
        attr = default;
        wasKnown = false;
        StatX st;
        if (current != null)
        {
            st = *current;
        }
        else
        {
            Errno e = StatFd(pathFd.Fd, out st);
            if (e != Errno.OK)
            {
                pathFd.Dispose();
                return e;
            }
        }
        (ulong, ulong) key = (DevOf(st), st.Ino);
        lock (_nodeLock)
        {
            if (_nodesByKey.TryGetValue(key, out HostNode? known))
            {
                wasKnown = true;
                EntryReturnedLocked(known);
                attr = ToAttr(st, known.Id);
                if (known.Pinned == null) _cache.Add(known.Id, pathFd);
                else pathFd.Dispose();
                return Errno.OK;
            }
        }
        byte[]? handle = TryGetHandle(pathFd.Fd, out int mountId);
        SafeFd? newMountFd = null;
        (ulong, long)? newLayout = null;
        if (handle != null)
        {
            bool knownMount;
            lock (_nodeLock) knownMount = _mountFds.ContainsKey(mountId);
            if (!knownMount)
            {
                // First node seen on another mount inside the tree (normally that mount's root directory).
                newMountFd = OpenMountFd(pathFd.Fd, st.Mode & S_IFMT);
                if (newMountFd == null) handle = null; // no usable mount descriptor: this node pins its own
                else newLayout = HandleLayoutOf(newMountFd.Fd, handle, st);
            }
        }
        HostNode node;
        SafeFd? surplus = null;
        lock (_nodeLock)
        {
            if (newMountFd != null && _mountFds.TryAdd(mountId, newMountFd))
            {
                if (newLayout is { } layout) _decodedMounts[mountId] = layout;
                newMountFd = null;
            }
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
            EntryReturnedLocked(node);
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
    private Errno AdoptOpenFd(int openFd, bool pin, StatX* known, out FuseAttr attr, out HostNode? node)
    {
        if (!pin && !_handlesRefused)
        {
            Errno byHandle = TryAdoptByHandle(openFd, known, out attr, out node);
            if (byHandle != Errno.EAGAIN) return byHandle;
        }
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
#pragma warning disable CA2000 // disposed on each failure below; on success the node or the caller owns it
        var fd = new SafeFd(pathFd);
#pragma warning restore CA2000
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
                node = new HostNode(_nextNodeId++, DevOf(st), st.Ino, S_IFREG, null, -1) { Pinned = fd };
                _nodesById[node.Id] = node;
                _nodesByKey[(node.Dev, node.HostIno)] = node;
                EntryReturnedLocked(node);
            }
            attr = ToAttr(st, node.Id);
            return Errno.OK;
        }
        Errno r = AdoptPathFd(fd, known, out attr);
        if (r == Errno.OK) node = NodeOf(attr.Ino);
        return r;
    }

    /// <summary>
    /// A created file's node straight from its open descriptor: the file handle names exactly this inode, so no O_PATH
    /// descriptor is reopened through /proc/self/fd now (one openat per create, one close when the node goes). A later
    /// request that needs the node's descriptor reopens it from the handle (<see cref="Borrow"/>), as for any node the
    /// descriptor cache evicted. EAGAIN: no handle, or a mount not seen yet (its descriptor comes from an O_PATH
    /// descriptor); the caller adopts through one.
    /// </summary>
    private Errno TryAdoptByHandle(int openFd, StatX* known, out FuseAttr attr, out HostNode? node)
    {
        attr = default;
        node = null;
        StatX st;
        if (known != null)
        {
            st = *known;
        }
        else
        {
            Errno e = StatFd(openFd, out st);
            if (e != Errno.OK) return e;
        }
        byte[]? handle = TryGetHandle(openFd, out int mountId);
        if (handle == null) return Errno.EAGAIN;
        (ulong, ulong) key = (DevOf(st), st.Ino);
        lock (_nodeLock)
        {
            if (!_mountFds.ContainsKey(mountId)) return Errno.EAGAIN;
            // Known already only when a racing LOOKUP of the new name adopted it first.
            node = FindOrAddNodeLocked(key, st.Mode & S_IFMT, handle, mountId);
        }
        attr = ToAttr(st, node.Id);
        return Errno.OK;
    }

    /// <summary>
    /// A node for a name <see cref="Lookup"/> found unknown, from a file handle taken by that name beneath the parent's
    /// descriptor (name_to_handle_at without AT_SYMLINK_FOLLOW: the single checked component, never a symlink's
    /// target) instead of an O_PATH descriptor. The handle and <paramref name="st"/> come from two calls, between which
    /// the name may have been replaced. Where the handle gives its inode number (<see cref="HandleInodes"/>: ext4,
    /// tmpfs) the two are compared at once; elsewhere the handle is unproven (<see cref="HostNode.HandleCheck"/>) until
    /// the first descriptor opened from it shows the inode <paramref name="st"/> named (<see cref="ProveHandle"/>).
    /// False: take the openat2 path (no handles here, another mount whose descriptor that path opens, or a name
    /// replaced between the two calls).
    /// </summary>
    private bool TryAdoptByName(int parentFd, ReadOnlySpan<byte> nameZ, in StatX st, out FuseAttr attr)
    {
        attr = default;
        if (_handlesRefused) return false;
        BetweenStatAndHandle?.Invoke();
        byte[]? handle;
        int mountId;
        fixed (byte* n = nameZ) handle = HandleAt(parentFd, n, 0, out mountId);
        if (handle == null) return false; // the openat2 path reports why
        (ulong, ulong) key = (DevOf(st), st.Ino);
        HostNode? node;
        lock (_nodeLock)
        {
            if (!_mountFds.ContainsKey(mountId)) return false;
            int check = HostNode.HandleUnproven;
            if (_decodedMounts.TryGetValue(mountId, out (ulong Dev, long FsMagic) layout))
            {
                // Replaced in between: the openat2 path resolves the name afresh.
                if (layout.Dev != key.Item1 || !HandleInodes.TryInodeOf(layout.FsMagic, handle, out ulong handleIno) || handleIno != st.Ino) return false;
                check = HostNode.HandleProven;
            }
            // Known already only when a racing lookup of the same inode adopted it first.
            node = FindOrAddNodeLocked(key, st.Mode & S_IFMT, handle, mountId, check);
        }
        attr = ToAttr(st, node.Id);
        return true;
    }

    /// <summary>
    /// The layout by which handles of a mount give their inode number, if its filesystem's is known
    /// (<see cref="HandleInodes"/>) and the first node seen on it (normally its root) bears it out: that node's
    /// <paramref name="handle"/> decodes to its own inode number in <paramref name="st"/>.
    /// </summary>
    private static (ulong Dev, long FsMagic)? HandleLayoutOf(int mountFd, byte[] handle, in StatX st)
    {
        StatFsBuf fs;
        if (fstatfs(mountFd, &fs) != 0) return null;
        return HandleInodes.TryInodeOf(fs.Type, handle, out ulong ino) && ino == st.Ino ? (DevOf(st), fs.Type) : null;
    }

    /// <summary>Whether the handles of the source's own mount are decoded (tests).</summary>
    internal bool DecodesRootMountHandles
    {
        get
        {
            lock (_nodeLock) return _decodedMounts.ContainsKey(_root.MountId);
        }
    }

    /// <summary>Tests: serves the source's own mount as a filesystem whose handle layout is not known.</summary>
    internal void StopDecodingRootMountHandles()
    {
        lock (_nodeLock) _decodedMounts.Remove(_root.MountId);
    }

    /// <summary>Tests: runs between the statx and the name_to_handle_at of <see cref="TryAdoptByName"/> (to replace the name there).</summary>
    internal Action? BetweenStatAndHandle { get; set; }

    /// <summary>
    /// Proves an unproven handle with <paramref name="fd"/>, just opened from it: the inode must be the node's (device,
    /// inode number, type). If it is not, the name was replaced while the lookup took the handle: the node answers ESTALE
    /// from now on and leaves the key index, so the next lookup of either inode makes a node of its own.
    /// </summary>
    private Errno ProveHandle(HostNode node, int fd)
    {
        Errno e = StatFd(fd, out StatX st);
        if (e != Errno.OK) return e;
        if (DevOf(st) == node.Dev && st.Ino == node.HostIno && (st.Mode & S_IFMT) == node.Type)
        {
            Volatile.Write(ref node.HandleCheck, HostNode.HandleProven);
            return Errno.OK;
        }
        Volatile.Write(ref node.HandleCheck, HostNode.HandleWrong);
        lock (_nodeLock)
        {
            if (_nodesByKey.TryGetValue((node.Dev, node.HostIno), out HostNode? current) && current == node)
                _nodesByKey.Remove((node.Dev, node.HostIno));
        }
        HostLog.HandleReplaced(_logger, node.Id);
        return Errno.ESTALE;
    }

    /// <summary>True once the node's handle is proven to name its inode (opening and proving it now if need be).</summary>
    private bool HandleProvenNow(HostNode node)
    {
        int check = Volatile.Read(ref node.HandleCheck);
        if (check != HostNode.HandleUnproven) return check == HostNode.HandleProven;
        if (OpenByHandle(node, O_PATH, out int fd) != Errno.OK) return false;
#pragma warning disable CA2000 // the descriptor cache owns it from here
        _cache.Add(node.Id, new SafeFd(fd));
#pragma warning restore CA2000
        return true;
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
        Errno e = BorrowNode(ino, out HostNode node, out FdLease l);
        if (e != Errno.OK) return e;
        using (l)
        {
            e = ReopenNode(l.Fd, flags, out int raw);
            if (e == Errno.OK) fd = new SafeFd(raw);
        }
        return e;
    }

    /// <summary>Overlay copy-up: borrows a directory node's O_PATH descriptor (the new name is renamed in beneath it).</summary>
    internal Errno BorrowForCopy(ulong ino, out FdLease lease) => BorrowNode(ino, out _, out lease);

    /// <summary>Lock-free: the per-request node lookup.</summary>
    private bool TryGetNode(ulong id, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out HostNode? node)
        => _nodesById.TryGetValue(id, out node);

    /// <summary>
    /// The descriptor ritual of a per-node operation in one place: ENOENT for an id we do not know, else the node and a
    /// borrowed O_PATH descriptor for it (pinned, cached, or reopened from its file handle), which the caller disposes.
    /// </summary>
    private Errno BorrowNode(ulong ino, out HostNode node, out FdLease lease)
    {
        if (!TryGetNode(ino, out HostNode? found))
        {
            node = null!;
            lease = default;
            return Errno.ENOENT;
        }
        node = found;
        return Borrow(found, out lease);
    }

    /// <summary>
    /// Borrows a descriptor of exactly the node's inode for a metadata request: pinned, an open file's own (see
    /// <see cref="HostNode.OpenFd"/>), cached, or reopened from its file handle. Callers use it only with *at calls and
    /// AT_EMPTY_PATH, or reopen it through /proc/self/fd, which act on any descriptor as on an O_PATH one.
    /// </summary>
    private Errno Borrow(HostNode node, out FdLease lease)
    {
        if (TryBorrowHeld(node, out lease, out Errno held)) return held;
        Errno e = OpenByHandle(node, out int fd);
        if (e != Errno.OK)
        {
            lease = default;
            return e;
        }
#pragma warning disable CA2000 // the descriptor cache owns it from here
        lease = _cache.AddAndBorrow(node.Id, new SafeFd(fd));
#pragma warning restore CA2000
        return Errno.OK;
    }

    /// <summary>
    /// A descriptor the node holds already (pinned, an open file's own, or cached): true with <paramref name="result"/> set
    /// (ESTALE for a pin already closed), false when it holds none and one must come from its handle.
    /// </summary>
    private bool TryBorrowHeld(HostNode node, out FdLease lease, out Errno result)
    {
        result = Errno.OK;
        SafeFd? pinned = node.Pinned;
        if (pinned != null)
        {
            if (!FdLease.TryBorrow(pinned, out lease)) result = Errno.ESTALE;
            return true;
        }
        SafeFd? open = Volatile.Read(ref node.OpenFd);
        if (open != null && FdLease.TryBorrow(open, out lease)) return true; // else released meanwhile: go on
        return _cache.TryBorrow(node.Id, out lease);
    }

    /// <summary>A new O_PATH descriptor of exactly the node's inode, from its file handle (ESTALE without one, or once
    /// the inode is gone); the caller owns it.</summary>
    private Errno OpenByHandle(HostNode node, out int fd) => OpenByHandle(node, O_PATH, out fd);

    /// <summary>As above, opened with <paramref name="flags"/> (an open file's own descriptor, straight from the handle).</summary>
    private Errno OpenByHandle(HostNode node, int flags, out int fd)
    {
        fd = -1;
        if (node.Handle == null) return Errno.ESTALE;
        int check = Volatile.Read(ref node.HandleCheck);
        if (check == HostNode.HandleWrong) return Errno.ESTALE;
        // An unproven handle is proven with an O_PATH descriptor first, which opens nothing: real flags on another inode
        // could truncate it, or block this thread on a fifo.
        if (check == HostNode.HandleUnproven && flags != O_PATH && !HandleProvenNow(node)) return Errno.ESTALE;
        SafeFd? mountFd;
        lock (_nodeLock) mountFd = _mountFds.GetValueOrDefault(node.MountId);
        if (mountFd == null) return Errno.ESTALE;
        using (var ml = new FdLease(mountFd))
        {
            fixed (byte* h = node.Handle)
            {
                fd = open_by_handle_at(ml.Fd, h, flags | O_CLOEXEC);
            }
        }
        if (fd < 0) return ErrnoExtensions.LastPInvoke();
        if (check == HostNode.HandleUnproven && flags == O_PATH)
        {
            Errno proof = ProveHandle(node, fd);
            if (proof != Errno.OK)
            {
                close(fd);
                fd = -1;
                return proof;
            }
        }
        return Errno.OK;
    }

    /// <summary>Precondition: _nodeLock held.</summary>
    private void DropIfUnusedLocked(HostNode node)
    {
        if (node == _root || node.Holds > 0 || node.OpenHandles > 0) return;
        _nodesById.TryRemove(node.Id, out _);
        if (_nodesByKey.TryGetValue((node.Dev, node.HostIno), out HostNode? current) && current == node)
            _nodesByKey.Remove((node.Dev, node.HostIno));
        _cache.Remove(node.Id);
        node.Pinned?.Dispose();
        node.Pinned = null;
    }
}
