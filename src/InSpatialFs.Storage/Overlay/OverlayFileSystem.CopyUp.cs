using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Host;
using static InSpatialFs.Interop.LibC;

namespace InSpatialFs.Storage.Overlay;

// Copy-up: bringing a lower object (and the directories above it) into the upper layer before it changes.
public sealed partial class OverlayFileSystem
{
    /// <summary>
    /// A copy-up made a lower object an upper one: (overlay node id, the lower object's identity, the copy's). For the
    /// container it is the same file, so whatever follows a file by identity (policy classes of hard-linked files,
    /// runtime-written marks, the proxy's node) has to follow it to the copy: the lower identity no longer answers for
    /// any name once the copy exists (its other names find the copy through the index). Raised on the thread that made
    /// the copy, before the operation that needed it returns, and never under the overlay's locks.
    /// </summary>
    public event Action<ulong, InodeIdentity, InodeIdentity>? CopiedUp;

    /// <summary>
    /// Makes <paramref name="node"/> an upper object under the name it was last resolved by, copying up its missing
    /// ancestors first. For an operation that knows the node only by id (a write, a setattr): every name of a file is
    /// one of its names. EROFS for a read-only view.
    /// </summary>
    private Errno EnsureUpper(OverlayNode node)
    {
        if (!HasUpper) return Errno.EROFS;
        if (node.Top.Layer == 0) return Errno.OK;
        OverlayNode? parent;
        byte[] name;
        lock (_tree)
        {
            (parent, name) = (node.Parent, node.Name);
        }

        return parent is null ? Errno.EIO : EnsureUpperAt(node, parent, name); // the root is always in the upper layer
    }

    /// <summary>
    /// Makes <paramref name="node"/> an upper object as <paramref name="name"/> in <paramref name="parent"/>, copying up
    /// the missing ancestors first (top-down, iteratively: the depth is the container's choice). For an operation that
    /// goes on to use that very name (a rename, a directory's tree): a lower file with several names has one node, and
    /// another caller resolving another of its names moves the node's last-seen name meanwhile. When the file was
    /// already copied up through another name, the copy is linked in under this one too. EROFS for a read-only view.
    /// </summary>
    private Errno EnsureUpperAt(OverlayNode node, OverlayNode parent, ReadOnlySpan<byte> name)
    {
        if (!HasUpper) return Errno.EROFS;
        if (node.Top.Layer == 0)
        {
            lock (_tree)
            {
                // An upper node last seen under this very name has it in the upper layer (the common case: no lookup).
                if (node.Parent == parent && node.Name.AsSpan().SequenceEqual(name)) return Errno.OK; // no allocation either
            }
        }

        List<(ulong Node, InodeIdentity Before, InodeIdentity After)>? copied = null;
        try
        {
            return EnsureUpperLocked(node, parent, name.ToArray(), ref copied);
        }
        finally
        {
            // Raised outside the copy-up lock: the handlers take the proxy's locks, which are taken before ours.
            if (copied != null && CopiedUp is { } handler)
            {
                foreach ((ulong id, InodeIdentity before, InodeIdentity after) in copied) handler(id, before, after);
            }
        }
    }

    private Errno EnsureUpperLocked(OverlayNode node, OverlayNode parent, byte[] name, ref List<(ulong Node, InodeIdentity Before, InodeIdentity After)>? copied)
    {
        lock (_copyUp)
        {
            // The ancestors are directories, whose one name is their last-seen one; taken together under the tree lock so
            // a step never pairs one name's parent with another name.
            var chain = new Stack<(OverlayNode Node, OverlayNode? Parent, byte[] Name)>();
            lock (_tree)
            {
                chain.Push((node, parent, name));
                for (OverlayNode? n = parent; n != null && n.Top.Layer != 0; n = n.Parent)
                {
                    chain.Push((n, n.Parent, n.Name));
                }
            }

            while (chain.TryPop(out (OverlayNode Node, OverlayNode? Parent, byte[] Name) step))
            {
                (OverlayNode n, OverlayNode? above, byte[] at) = step;
                if (above is null || above.Top.Layer != 0) return Errno.EIO; // the root is always in the upper layer
                Errno e;
                if (n.Top.Layer == 0)
                {
                    // Copied up meanwhile through another name (a hard link): this name needs the copy too.
                    if (n == node && (e = LinkCopyAs(n, above, at)) != Errno.OK) return e;
                    continue;
                }

                InodeIdentity before = LayerOf(n.Top).IdentityOf(n.Top.Ino);
                e = CopyUpOne(n, above.Top.Ino, at, before);
                if (e == Errno.OK) (copied ??= []).Add((n.Id, before, _layers[0].IdentityOf(n.Top.Ino)));
                if (e != Errno.OK)
                {
                    // A full upper layer fails every write that needs a copy-up: the log says so a bounded number of times.
                    if (_copyUpFailureLines.Allow(out long notLogged))
                    {
                        if (notLogged > 0) OverlayLog.CopyUpFailuresNotLogged(_logger, notLogged, _copyUpFailureLines.Burst);
                        OverlayLog.CopyUpFailed(_logger, OverlayFormat.Show(at), e);
                    }

                    return e;
                }
            }
        }

        return Errno.OK;
    }

    /// <summary>
    /// The upper copy of <paramref name="node"/> (a file copied up through another of its names) gets
    /// <paramref name="name"/> in <paramref name="parent"/>'s upper directory, unless that name is there already.
    /// </summary>
    private unsafe Errno LinkCopyAs(OverlayNode node, OverlayNode parent, byte[] name)
    {
        if (_layers[0].Lookup(parent.Top.Ino, name, out FuseAttr there) == Errno.OK)
        {
            ReleaseLayer(0, there.Ino);
            return Errno.OK;
        }

        if (node.IsDirectory) return Errno.EIO; // a directory has one name, and it is in the upper layer
        Errno e = _layers[0].BorrowForCopy(node.Top.Ino, out FdLease copy);
        if (e != Errno.OK) return e;
        using (copy)
        {
            e = _layers[0].BorrowForCopy(parent.Top.Ino, out FdLease dir);
            if (e != Errno.OK) return e;
            using (dir)
            {
                Span<byte> nameZ = stackalloc byte[name.Length + 1];
                name.CopyTo(nameZ);
                byte empty = 0;
                fixed (byte* target = nameZ)
                {
                    return linkat(copy.Fd, &empty, dir.Fd, target, AT_EMPTY_PATH) == 0 ? Errno.OK : ErrnoExtensions.LastPInvoke();
                }
            }
        }
    }

    private Errno CopyUpOne(OverlayNode node, ulong upperParent, byte[] name, in InodeIdentity lowerIdentity)
    {
        byte[] origin = OverlayFormat.OriginValue(lowerIdentity);
        HostFileSystem upper = _layers[0], lower = LayerOf(node.Top);
        Errno e = lower.GetAttr(node.Top.Ino, out FuseAttr a);
        if (e != Errno.OK) return e;
        var owner = new Caller(a.Uid, a.Gid, 0);
        FuseAttr made;
        switch (a.Mode & S_IFMT)
        {
            case S_IFDIR:
                e = upper.MkDir(upperParent, name, a.Mode & 0xFFF, owner, out made);
                if (e == Errno.OK) upper.SetXattr(made.Ino, OverlayFormat.OriginXattr, origin, 0); // best effort, as for files
                break;
            case S_IFREG:
                e = CopyUp.File(lower, node.Top.Ino, upper, upperParent, name, _work!, origin);
                if (e == Errno.OK) e = upper.Lookup(upperParent, name, out made);
                else made = default;
                if (e == Errno.OK && a.Nlink > 1) IndexCopy(lower.IdentityOf(node.Top.Ino), made.Ino); // its other names find it
                break;
            case S_IFLNK:
            {
                Span<byte> target = stackalloc byte[4096];
                e = lower.ReadLink(node.Top.Ino, target, out int length);
                made = default;
                if (e == Errno.OK) e = upper.Symlink(upperParent, name, target[..length], owner, out made);
                break;
            }

            default:
                e = upper.MkNod(upperParent, name, a.Mode, a.Rdev, owner, out made);
                break;
        }

        if (e != Errno.OK) return e;
        CopyXattrs(lower, node.Top.Ino, upper, made.Ino);
        if ((a.Mode & S_IFMT) is not (S_IFREG or S_IFLNK))
        {
            // Regular files got their times on the copy before it was published; directories and nodes get them here,
            // and their exact mode: mkdir keeps no set-id bits (SetIdBits.NewNodePermissions), a copy must.
            var times = new AttrChange
            {
                Atime = new TimeChange((long)a.Atime, a.AtimeNsec), Mtime = new TimeChange((long)a.Mtime, a.MtimeNsec), Mode = a.Mode,
            };
            upper.SetAttr(made.Ino, times, owner, out _);
        }

        // A copied-up directory still merges the lower one it came from, and what that merged (the node's references
        // on them carry over).
        LayerObject[] below = (a.Mode & S_IFMT) == S_IFDIR ? [node.Top, .. node.Below] : [];
        Retarget(node, new LayerObject(0, made.Ino), below);
        return Errno.OK;
    }

    /// <summary>
    /// True when node <paramref name="ino"/> answers from an upper object the overlay copied from
    /// <paramref name="original"/> (<see cref="OverlayFormat.OriginXattr"/>): for a server that takes over, the node its
    /// predecessor journaled under the lower object's identity.
    /// </summary>
    public bool IsCopyOf(ulong ino, in InodeIdentity original)
    {
        if (original.IsNone || !TryNode(ino, out OverlayNode? node) || node.Top.Layer != 0) return false;
        Span<byte> value = stackalloc byte[32];
        return _layers[0].GetXattr(node.Top.Ino, OverlayFormat.OriginXattr, value, out int length) == Errno.OK
            && value[..length].SequenceEqual(OverlayFormat.OriginValue(original));
    }

    /// <summary>User-visible extended attributes go with a copy (the overlay's own never do).</summary>
    private static void CopyXattrs(HostFileSystem from, ulong fromIno, HostFileSystem to, ulong toIno)
    {
        if (from.ListXattr(fromIno, [], out int size) != Errno.OK || size == 0) return;
        byte[] names = new byte[size];
        if (from.ListXattr(fromIno, names, out size) != Errno.OK) return;
        byte[] value = new byte[65536];
        foreach (Range r in names.AsSpan(0, size).Split((byte)0))
        {
            ReadOnlySpan<byte> name = names.AsSpan(0, size)[r];
            if (name.IsEmpty || OverlayFormat.IsPrivateXattr(name)) continue;
            if (from.GetXattr(fromIno, name, value, out int length) == Errno.OK)
            {
                to.SetXattr(toIno, name, value.AsSpan(0, length), 0);
            }
        }
    }

    /// <summary>
    /// Copies up a directory and everything below it (a rename of a directory with lower parts); EXDEV past
    /// <see cref="MaxTreeCopyUp"/> entries. Breadth first through the merged tree, without recursion.
    /// </summary>
    private Errno EnsureUpperTree(OverlayNode dir)
    {
        Errno e = EnsureUpper(dir);
        if (e != Errno.OK) return e;
        var pending = new Queue<OverlayNode>();
        pending.Enqueue(dir);
        int budget = MaxTreeCopyUp;
        var visited = new List<OverlayNode>();
        try
        {
            while (pending.TryDequeue(out OverlayNode? d))
            {
                foreach ((byte[] name, uint type, _) in MergedEntries(d))
                {
                    if (--budget < 0) return Errno.EXDEV;
                    if (Resolve(d, name, out Resolved found) != Errno.OK) continue;
                    OverlayNode child = Adopt(d, name, found, hold: true);
                    visited.Add(child);
                    if ((e = EnsureUpperAt(child, d, name)) != Errno.OK) return e;
                    if (type == S_IFDIR) pending.Enqueue(child);
                }

                // Every child now lives in the upper directory: the lower ones may not merge in again.
                if (d.Below.Length > 0)
                {
                    _layers[0].SetXattr(d.Top.Ino, OverlayFormat.OpaqueXattr, "y"u8, 0);
                }
            }

            return Errno.OK;
        }
        finally
        {
            foreach (OverlayNode child in visited) Release(child.Id);
        }
    }
}
