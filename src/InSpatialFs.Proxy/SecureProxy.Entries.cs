using System.Diagnostics;
using InSpatialFs.Fuse;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Proxy.Nodes;
using InSpatialFs.Security;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Policy;
using InSpatialFs.Storage;
using InSpatialFs.Storage.Posix;

namespace InSpatialFs.Proxy;

// Name-space operations: lookup and everything that creates, links, moves or removes a name.
public sealed partial class SecureProxy
{
    public Errno Lookup(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, out FuseEntryOut entry)
    {
        entry = default;
        Interlocked.Increment(ref _lookupRequests);
        long generation = CacheGeneration; // before the decision: see ExpireIfInvalidatedSince
        Errno err = ResolveChild(parent, name, out ProxyNode dir, out string childName, out string path);
        if (err != Errno.OK)
        {
            return err;
        }

        FsEvent e = NewEvent(request, FsOp.Lookup, path);
        Verdict verdict = _gate.Decide(e);
        if (verdict.IsDenied)
        {
            if (e.PolicyClass == PathClass.Forbidden)
            {
                NoteIfLinked(dir, name, path); // its other names (hard links) are forbidden too from now on
            }

            return Deny(e, verdict);
        }

        FuseAttr attr;
        int mount = MountAt(path);
        if (mount >= 0)
        {
            IFileSystemBackend backend = _mounts[mount].Backend;
            err = backend.GetAttr(backend.RootIno, out attr);
            if (err == Errno.OK)
            {
                ProxyNode root = _nodes.AddLookup(mount, backend.RootIno, dir, childName, isMountRoot: true)!;
                root.ReadOnlyClass = e.PolicyClass == PathClass.ReadOnly;
                FillEntry(root, ref attr, out entry);
                ExpireIfInvalidatedSince(generation, ref entry);
            }

            return err;
        }

        ProxyNode? node = null;
        for (int attempt = 1; ; attempt++)
        {
            err = BackendOf(dir).Lookup(dir.Ino, name, out attr);
            if (err == Errno.OK && IsLinkedFile(attr))
            {
                // A file with other names: this name's class marks the object, and a class another name gave it applies here.
                InodeIdentity obj = BackendOf(dir).IdentityOf(attr.Ino);
                _gate.NoteLinkedObject(obj, path);
                e.Object = obj;
                verdict = _gate.Decide(e);
                if (verdict.IsDenied)
                {
                    return Deny(e, verdict);
                }
            }

            // The backend may drop a node nobody holds between its lookup and our retain (an unlink, or its aging
            // queue): then the name is asked again, and answers ENOENT or the node now there.
            if (err != Errno.OK || (node = _nodes.AddLookup(dir.Mount, attr.Ino, dir, childName)) != null)
            {
                break;
            }

            if (attempt == MaxLookupAttempts)
            {
                err = Errno.ESTALE; // the VFS retries the walk once with revalidation
                break;
            }
        }

        if (err == BackendResult.EscapeRefused)
        {
            return RecordEscape(e);
        }

        if (node != null)
        {
            node.ReadOnlyClass = e.PolicyClass == PathClass.ReadOnly; // before the reply's timeouts are chosen
            FillEntry(node, ref attr, out entry);
            ExpireIfInvalidatedSince(generation, ref entry);
        }
        else if (err == Errno.ENOENT)
        {
            // A negative entry: the kernel caches "no such name" for the entry timeout (nodeid 0), for long where the
            // directory can only change through this mount (a create here replaces the negative entry).
            (ulong sec, uint nsec) = EntryTimeoutFor(dir);
            entry = new FuseEntryOut { EntryValid = sec, EntryValidNsec = nsec };
            ExpireIfInvalidatedSince(generation, ref entry);
            return Errno.OK;
        }

        return err;
    }

    /// <summary>
    /// The end of MKNOD, MKDIR and SYMLINK once the backend answered: a create a restarted server finds already made
    /// counts as made, the new entry is registered and charged to the quota (or the inode reserved for it refunded), and
    /// the event completes.
    /// </summary>
    private Errno NewEntryMade(FsEvent e, Errno err, bool resumed, ProxyNode dir, ReadOnlySpan<byte> name, string childName, ref FuseAttr attr,
        long started, out FuseEntryOut entry)
    {
        entry = default;
        err = ResumedCreate(resumed, err, dir, name, ref attr);
        if (err == Errno.OK)
        {
            Register(dir, dir.Mount, childName, ref attr, out entry);
            e.Object = IdentityOfEntry(entry);
            ChargedNewObject(dir.Mount, entry);
        }
        else
        {
            RefundInode(dir.Mount);
        }

        return Complete(e, err, started);
    }

    /// <summary>Lookups of one name before ESTALE when its node is dropped each time before it is retained.</summary>
    private const int MaxLookupAttempts = 4;

    public Errno MkNod(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, uint mode, uint rdev, uint umask, out FuseEntryOut entry)
    {
        entry = default;

        Errno err = BeginCreate(request, parent, name, FsOp.MkNod, mode, out ProxyNode dir, out string childName, out FsEvent e);
        if (err != Errno.OK)
        {
            return err;
        }

        long started = Stopwatch.GetTimestamp();
        bool resumed = NoteIntent(request);
        err = BackendOf(dir).MkNod(dir.Ino, name, mode, rdev, CallerOf(request), out FuseAttr attr);
        return NewEntryMade(e, err, resumed, dir, name, childName, ref attr, started, out entry);
    }

    public Errno MkDir(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, uint mode, uint umask, out FuseEntryOut entry)
    {
        entry = default;

        Errno err = BeginCreate(request, parent, name, FsOp.MkDir, mode | LibC.S_IFDIR, out ProxyNode dir, out string childName, out FsEvent e);
        if (err != Errno.OK)
        {
            return err;
        }

        long started = Stopwatch.GetTimestamp();
        bool resumed = NoteIntent(request);
        err = BackendOf(dir).MkDir(dir.Ino, name, mode, CallerOf(request), out FuseAttr attr);
        return NewEntryMade(e, err, resumed, dir, name, childName, ref attr, started, out entry);
    }

    public Errno Symlink(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, ReadOnlySpan<byte> target, out FuseEntryOut entry)
    {
        entry = default;

        Errno bad = NodeKinds.CheckSymlinkTarget(target);
        if (bad != Errno.OK)
        {
            return bad;
        }

        Errno err = ResolveChild(parent, name, out ProxyNode dir, out string childName, out string path);
        if (err != Errno.OK)
        {
            return err;
        }

        FsEvent e = NewEvent(request, FsOp.Symlink, path);
        e.Mode = LibC.S_IFLNK | 0x1FF;
        e.IsNew = true;
        e.LinkTarget = Decode(target);
        e.LinkResolved = ResolveSymlinkTarget(_nodes.PathOf(dir), e.LinkTarget) ?? "/..";
        if ((err = AdmitNewName(request, e, dir, path)) != Errno.OK)
        {
            return err;
        }

        long started = Stopwatch.GetTimestamp();
        bool resumed = NoteIntent(request);
        err = BackendOf(dir).Symlink(dir.Ino, name, target, CallerOf(request), out FuseAttr attr);
        return NewEntryMade(e, err, resumed, dir, name, childName, ref attr, started, out entry);
    }

    public Errno Link(FuseRequest request, ulong nodeId, ulong newParent, ReadOnlySpan<byte> newName, out FuseEntryOut entry)
    {
        entry = default;

        if (!_nodes.TryGet(nodeId, out ProxyNode node))
        {
            return UnknownNode;
        }

        Errno err = ResolveChild(newParent, newName, out ProxyNode dir, out string childName, out string newPath);
        if (err != Errno.OK)
        {
            return err;
        }

        FsEvent e = NewEvent(request, FsOp.Link, node);
        e.Target = newPath;
        e.IsNew = true;
        if (BackendOf(node).GetAttr(node.Ino, out FuseAttr existing) == Errno.OK)
        {
            e.NodeUid = existing.Uid; // hard links to files the caller does not own are a policy question
            e.Mode = existing.Mode;
        }
        if (node.Mount != dir.Mount || node.IsMountRoot)
        {
            return Errno.EXDEV;
        }

        if ((err = AdmitNewName(request, e, dir, newPath)) != Errno.OK)
        {
            return err;
        }

        long started = Stopwatch.GetTimestamp();
        bool resumed = NoteIntent(request);
        err = BackendOf(dir).Link(node.Ino, dir.Ino, newName, out FuseAttr attr);
        err = ResumedCreate(resumed, err, dir, newName, ref attr);
        if (err == Errno.OK)
        {
            Register(dir, dir.Mount, childName, ref attr, out entry);
        }

        return Complete(e, err, started);
    }

    public Errno Unlink(FuseRequest request, ulong parent, ReadOnlySpan<byte> name) => Remove(request, parent, name, FsOp.Unlink);

    public Errno RmDir(FuseRequest request, ulong parent, ReadOnlySpan<byte> name) => Remove(request, parent, name, FsOp.RmDir);

    private Errno Remove(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, FsOp op)
    {
        Errno err = ResolveChild(parent, name, out ProxyNode dir, out _, out string path);
        if (err != Errno.OK)
        {
            return err;
        }

        if (MountAt(path) >= 0)
        {
            return Errno.EBUSY;
        }

        FsEvent e = NewEvent(request, op, path);
        if ((err = Admit(request, e, _mounts[dir.Mount], out _)) != Errno.OK)
        {
            return err;
        }

        long started = Stopwatch.GetTimestamp();
        IFileSystemBackend backend = BackendOf(dir);
        InodeIdentity freed = ObjectFreedByRemoving(dir, name);
        bool resumed = NoteIntent(request);
        err = op == FsOp.Unlink ? backend.Unlink(dir.Ino, name) : backend.RmDir(dir.Ino, name);
        err = ResumedRemoval(resumed, err);
        if (err == Errno.OK)
        {
            FreedObject(dir.Mount, freed);
        }

        return Complete(e, err, started);
    }

    public Errno Rename(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, ulong newParent, ReadOnlySpan<byte> newName, uint flags)
    {
        Errno err = RenameFlags.Check(flags); // before the names, as do_renameat2; the backends apply the same rule
        if (err != Errno.OK)
        {
            return err;
        }

        err = ResolveChild(parent, name, out ProxyNode fromDir, out string fromName, out string fromPath);
        if (err != Errno.OK)
        {
            return err;
        }

        if ((err = ResolveChild(newParent, newName, out ProxyNode toDir, out string toName, out string toPath)) != Errno.OK)
        {
            return err;
        }

        if (MountAt(fromPath) >= 0 || MountAt(toPath) >= 0)
        {
            return Errno.EBUSY;
        }

        if (fromDir.Mount != toDir.Mount)
        {
            return Errno.EXDEV;
        }

        FsEvent e = NewEvent(request, FsOp.Rename, fromPath);
        e.Target = toPath;
        e.Flags = (int)flags;
        if ((err = Admit(request, e, _mounts[fromDir.Mount], out _)) != Errno.OK)
        {
            return err;
        }

        long started = Stopwatch.GetTimestamp();
        IFileSystemBackend backend = BackendOf(fromDir);
        bool exchange = (flags & LibC.RENAME_EXCHANGE) != 0;
        InodeIdentity replaced = exchange ? default : ObjectFreedByRemoving(toDir, newName);
        bool resumed = NoteRename(request, fromDir, fromName, toDir, toName, flags, exchange ? IdentityAt(fromDir, name) : default);
        err = resumed && exchange && ExchangeCarriedOut(request, toDir, newName) ? Errno.OK : backend.Rename(fromDir.Ino, name, toDir.Ino, newName, flags);
        err = ResumedRemoval(resumed, err);
        if (err == Errno.OK)
        {
            FreedObject(fromDir.Mount, replaced); // the file renamed over is gone with its charge (two names of one file: none)

            FollowMove(fromDir.Mount, toDir, toName, newName);
            if (exchange)
            {
                FollowMove(fromDir.Mount, fromDir, fromName, name);
            }
        }

        return Complete(e, err, started);
    }

    /// <summary>After a rename, points the moved node (if the kernel knows it) at its new name.</summary>
    private void FollowMove(int mount, ProxyNode newDir, string newName, ReadOnlySpan<byte> newNameBytes)
    {
        IFileSystemBackend backend = _mounts[mount].Backend;
        if (backend.Lookup(newDir.Ino, newNameBytes, out FuseAttr attr) != Errno.OK)
        {
            return;
        }

        if (_nodes.TryFind(mount, attr.Ino, out ProxyNode moved))
        {
            _nodes.Moved(moved, newDir, newName);
        }
    }

    public Errno Create(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, int flags, uint mode, uint umask, out FuseEntryOut entry, out FuseOpenOut open)
    {
        entry = default;
        open = default;
        long generation = CacheGeneration; // before the decision (see ProxyHandle.ReadsDecidedAt)
        Errno err = BeginCreate(request, parent, name, FsOp.Create, mode | LibC.S_IFREG, out ProxyNode dir, out string childName, out FsEvent e);
        if (err != Errno.OK)
        {
            return err;
        }

        e.Flags = flags;
        if (!TryCountOpen(request, out bool counted))
        {
            RefundInode(dir.Mount);
            return Complete(e, Errno.EMFILE, Stopwatch.GetTimestamp());
        }

        long started = Stopwatch.GetTimestamp();
        err = BackendOf(dir).Create(dir.Ino, name, flags, mode, CallerOf(request), out FuseAttr attr, out IOpenFile file, out bool created);
        if (err == Errno.OK)
        {
            e.IsNew = created; // an existing file opened (and maybe truncated) by a CREATE is not a new one
            Register(dir, dir.Mount, childName, ref attr, out entry);
            e.Object = IdentityOfEntry(entry);
            ChargedNewObject(dir.Mount, entry);
            _nodes.TryGet(entry.NodeId, out ProxyNode node);
            err = Opened(node, file, file.OpenFlags, flags, DirectForWrite(node, e), counted, generation, out open);
        }

        if (err != Errno.OK)
        {
            UncountOpen(counted);
        }

        return Complete(e, err, started);
    }

    public Errno TmpFile(FuseRequest request, ulong parent, int flags, uint mode, uint umask, out FuseEntryOut entry, out FuseOpenOut open)
    {
        entry = default;
        open = default;
        if (!_nodes.TryGet(parent, out ProxyNode dir))
        {
            return UnknownNode;
        }

        long generation = CacheGeneration; // before the decision (see ProxyHandle.ReadsDecidedAt)
        FsEvent e = NewEvent(request, FsOp.TmpFile, dir);
        e.Flags = flags;
        e.Mode = mode | LibC.S_IFREG;
        e.IsNew = true;
        Errno err = Admit(request, e, _mounts[dir.Mount], out _);
        if (err != Errno.OK)
        {
            return err;
        }

        if ((err = ChargeInode(dir.Mount)) != Errno.OK)
        {
            return Complete(e, err, Stopwatch.GetTimestamp());
        }

        if (!TryCountOpen(request, out bool counted))
        {
            RefundInode(dir.Mount);
            return Complete(e, Errno.EMFILE, Stopwatch.GetTimestamp());
        }

        long started = Stopwatch.GetTimestamp();
        err = BackendOf(dir).TmpFile(dir.Ino, flags, mode, CallerOf(request), out FuseAttr attr, out IOpenFile file);
        if (err == Errno.OK)
        {
            // An unnamed file: it hangs under its directory with a name nobody can look up.
            Register(dir, dir.Mount, "#tmpfile-" + attr.Ino, ref attr, out entry);
            e.Object = IdentityOfEntry(entry);
            ChargedNewObject(dir.Mount, entry);
            _nodes.TryGet(entry.NodeId, out ProxyNode node);
            err = Opened(node, file, file.OpenFlags, flags, DirectForWrite(node, e), counted, generation, out open);
        }

        if (err != Errno.OK)
        {
            UncountOpen(counted);
        }

        return Complete(e, err, started);
    }

    /// <summary>Validates parent and name and builds the child's namespace path.</summary>
    private Errno ResolveChild(ulong parent, ReadOnlySpan<byte> name, out ProxyNode dir, out string childName, out string path)
    {
        childName = path = "";
        if (!_nodes.TryGet(parent, out dir))
        {
            return UnknownNode;
        }

        Errno err = CheckName(name);
        if (err != Errno.OK)
        {
            return err;
        }

        childName = Decode(name);
        string dirPath = _nodes.PathOf(dir);
        if (dirPath.Length + 1 + childName.Length > ProxyNode.MaxPathLength)
        {
            return Errno.ENAMETOOLONG; // bounds what a container can make the daemon build per request
        }

        path = ProxyNode.Join(dirPath, childName);
        return Errno.OK;
    }

    private Errno BeginCreate(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, FsOp op, uint mode, out ProxyNode dir, out string childName, out FsEvent e)
    {
        e = null!;
        Errno err = ResolveChild(parent, name, out dir, out childName, out string path);
        if (err != Errno.OK)
        {
            return err;
        }

        e = NewEvent(request, op, path);
        e.Mode = mode;
        e.IsNew = true;
        return AdmitNewName(request, e, dir, path);
    }

    /// <summary>
    /// A new name may not shadow a mount point; then the usual admission; then, for a new inode, the mount's inode
    /// quota (the caller refunds it when the backend fails).
    /// </summary>
    private Errno AdmitNewName(FuseRequest request, FsEvent e, ProxyNode dir, string path)
    {
        if (MountAt(path) >= 0)
        {
            return Errno.EEXIST;
        }

        Errno err = Admit(request, e, _mounts[dir.Mount], out _);
        if (err == Errno.OK && e.Op != FsOp.Link && (err = ChargeInode(dir.Mount)) != Errno.OK)
        {
            return Complete(e, err, Stopwatch.GetTimestamp());
        }

        return err;
    }
}
