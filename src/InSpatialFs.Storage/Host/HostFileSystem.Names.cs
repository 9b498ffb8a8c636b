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

// Creating, removing and renaming names: one *at call beneath the parent's descriptor each; new nodes are
// checked to be the ones just made before they are given to the caller (see the class comment).
public sealed unsafe partial class HostFileSystem
{
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
            Errno e = Create(parent, name, O_WRONLY | O_EXCL, mode & 0xFFF, caller, out attr, out IOpenFile made, out _);
            if (e == Errno.OK) made.Release();
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
        e = BorrowNode(parent, out HostNode p, out FdLease pl);
        if (e != Errno.OK) return e;
        int fd;
        uint parentMode;
        using (pl)
        {
            e = ParentModeFor(pl.Fd, caller, out parentMode);
            if (e != Errno.OK) return e;
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
#pragma warning disable CA2000 // disposed on each failure below; on success the node owns it
        var pathFd = new SafeFd(fd);
#pragma warning restore CA2000
        e = StatFd(fd, out StatX st);
        if (e != Errno.OK || (st.Mode & S_IFMT) != type || st.Uid != _daemonUid)
        {
            pathFd.Dispose();
            HostLog.CreatedNodeSwapped(_logger, Encoding.UTF8.GetString(name));
            return e != Errno.OK ? e : Errno.EACCES;
        }
        if (parentMode == ParentModeNotRead && type == S_IFDIR)
        {
            parentMode = st.Mode & S_ISGID; // a new directory is setgid exactly when its parent is (inode_init_owner)
        }
        e = TakeOwnership(fd, type, perm, caller, parentMode, &st, out StatX owned, out bool ownedCurrent);
        if (e != Errno.OK)
        {
            pathFd.Dispose();
            RemoveUnowned(parent, nameZ, st, type);
            return e;
        }
        return AdoptPathFd(pathFd, ownedCurrent ? &owned : null, out attr);
    }

    /// <summary>
    /// A node made for a caller it could not be given to (an unprivileged server may not chown to another user): its
    /// name goes again, if it still names that node, so a failed call leaves nothing behind.
    /// </summary>
    private void RemoveUnowned(ulong parent, ReadOnlySpan<byte> nameZ, in StatX made, uint type)
    {
        if (BorrowNode(parent, out _, out FdLease pl) != Errno.OK) return;
        using (pl)
        {
            StatX now;
            fixed (byte* n = nameZ)
            {
                if (statx(pl.Fd, n, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &now) != 0 || now.Ino != made.Ino || DevOf(now) != DevOf(made)) return;
                unlinkat(pl.Fd, n, type == S_IFDIR ? AT_REMOVEDIR : 0);
            }
        }
    }

    /// <summary>The ids the kernel gives a node this process creates (the daemon never changes its fsuid/fsgid).</summary>
    private static readonly uint CreatorUid = geteuid(), CreatorGid = getegid();

    /// <summary>Gives a node the daemon just created to the caller and sets its exact permission bits (the
    /// daemon's umask and chown's clearing of set-id bits would otherwise change them).</summary>
    /// <param name="current">The node's attributes after the ownership step, when <paramref name="isCurrent"/>: no chmod
    /// followed the statx, so the caller can answer from it instead of a statx of its own.</param>
    /// <summary>Stands for a parent mode that was not read (<see cref="ParentModeFor"/>): no setgid bit, no other bits.</summary>
    private const uint ParentModeNotRead = 0;

    /// <summary>
    /// The parent directory's mode, which a create needs for one thing: its setgid bit (the new node's group, and a new
    /// directory's own setgid bit). A caller with the daemon's own ids needs neither (no chown follows, and a directory
    /// shows its inherited bit itself), so the statx is skipped and <see cref="ParentModeNotRead"/> returned.
    /// </summary>
    private static Errno ParentModeFor(int parentFd, in Caller caller, out uint parentMode)
    {
        parentMode = ParentModeNotRead;
        if (caller.Uid == CreatorUid && caller.Gid == CreatorGid) return Errno.OK;
        Errno e = StatFd(parentFd, out StatX pst);
        if (e == Errno.OK) parentMode = pst.Mode;
        return e;
    }

    /// <param name="known">The node's statx taken since it was made, or null: reused when no chown changes it.</param>
    private static Errno TakeOwnership(int fd, uint type, uint perm, in Caller caller, uint parentMode, StatX* known, out StatX current, out bool isCurrent)
    {
        current = default;
        isCurrent = false;
        byte empty = 0;
        // SetIdBits.NewNodeGid: in a setgid directory the host kernel already gave the node the directory's group
        // (inode_init_owner, atomically with the create), which is left as it is.
        uint gid = (parentMode & S_ISGID) != 0 ? uint.MaxValue : caller.Gid;
        // The kernel made the node with the daemon's own ids: a caller with the same ones (a container's root, usually)
        // owns it already, and the syscall is saved (the permission bits are checked below either way).
        bool owned = caller.Uid == CreatorUid && (gid == uint.MaxValue || gid == CreatorGid);
        if (!owned && fchownat(fd, &empty, caller.Uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) return ErrnoExtensions.LastPInvoke();
        if (type == S_IFLNK) return Errno.OK;
        Errno e = Errno.OK;
        if (owned && known != null) current = *known;
        else e = StatFd(fd, out current);
        if (e != Errno.OK) return e;
        uint want = SetIdBits.NewNodePermissions(type, perm, parentMode);
        if ((current.Mode & 0xFFFu) != want)
        {
            return fchmodat2(fd, &empty, want, AT_EMPTY_PATH) != 0 ? ErrnoExtensions.LastPInvoke() : Errno.OK;
        }
        isCurrent = true;
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
        e = BorrowNode(parent, out HostNode p, out FdLease pl);
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
        // A cached descriptor of the node is already this inode (checked when it was adopted or reopened from the
        // handle): pinning it saves reopening the name and checking the result.
        if (_cache.TryTake(node.Id, out SafeFd? cached))
        {
            lock (_nodeLock)
            {
                if (node.Pinned == null && _nodesById.ContainsKey(node.Id))
                {
                    node.Pinned = cached;
                    cached = null;
                }
            }
            cached?.Dispose();
            return;
        }
        // Not cached (a created file's node has none until it is needed): its handle names exactly this inode, so
        // there is no name to reopen and recheck. A node without a handle is always pinned, and returned above.
        if (OpenByHandle(node, out int fd) != Errno.OK) return;
        var pinned = new SafeFd(fd);
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
        return bad != Errno.OK ? bad : RenameChecked(parent, name, newParent, newName, flags);
    }

    /// <summary>
    /// A rename that leaves a whiteout (a 0/0 character device) at the old name in the same step (RENAME_WHITEOUT): for
    /// the overlay, whose lower layers still have that name, so that no instant shows both names (a kill between a
    /// rename and a separate mknod would bring the lower object back under the old name). Never for the container: the
    /// public <see cref="Rename"/> refuses the flag. EINVAL where the filesystem cannot make whiteouts.
    /// </summary>
    internal Errno RenameLeavingWhiteout(ulong parent, ReadOnlySpan<byte> name, ulong newParent, ReadOnlySpan<byte> newName, uint flags) =>
        (flags & RenameFlags.Exchange) != 0 ? Errno.EINVAL : RenameChecked(parent, name, newParent, newName, flags | RenameFlags.Whiteout);

    /// <summary>
    /// Moves <paramref name="name"/> out of the layer into <paramref name="work"/> (a directory on the same filesystem,
    /// outside the layer) as <paramref name="temporaryZ"/>, leaving a whiteout at the name in the same step
    /// (RENAME_WHITEOUT): the overlay's removal of an upper object a lower layer also has, which must never show the
    /// lower object again, not even to a successor of a server killed mid-removal. The caller removes what it moved
    /// out. EINVAL where the filesystem cannot make whiteouts.
    /// </summary>
    internal Errno MoveOutLeavingWhiteout(ulong parent, ReadOnlySpan<byte> name, SafeFd work, ReadOnlySpan<byte> temporaryZ)
    {
        if (ReadOnly) return Errno.EROFS;
        Span<byte> nameZ = stackalloc byte[NameMax + 1];
        Errno e = CheckName(name, nameZ);
        if (e != Errno.OK) return e;
        e = BorrowNode(parent, out _, out FdLease pl);
        if (e != Errno.OK) return e;
        using (pl)
        {
            PinIfLastName(pl.Fd, nameZ);
            fixed (byte* n = nameZ)
            fixed (byte* t = temporaryZ)
            {
                return renameat2(pl.Fd, n, work.Fd, t, RenameFlags.Whiteout) == 0 ? Errno.OK : ErrnoExtensions.LastPInvoke();
            }
        }
    }

    private Errno RenameChecked(ulong parent, ReadOnlySpan<byte> name, ulong newParent, ReadOnlySpan<byte> newName, uint flags)
    {
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
        lock (_nodeLock) EntryReturnedLocked(node);
        return Errno.OK;
    }
}
