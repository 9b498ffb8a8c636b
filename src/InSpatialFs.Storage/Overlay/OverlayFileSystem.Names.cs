using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Host;
using static InSpatialFs.Interop.LibC;

namespace InSpatialFs.Storage.Overlay;

// Creating, removing, renaming and linking names: always in the upper layer, with whiteouts where a lower layer
// still has the name.
public sealed partial class OverlayFileSystem
{
    /// <summary>
    /// Before a new name is made in <paramref name="dir"/>: the directory is copied up and a whiteout left at the name
    /// (by an earlier removal) is taken away. <paramref name="wasWhiteout"/> tells a new directory to be opaque.
    /// </summary>
    private Errno PrepareNewName(ulong parent, ReadOnlySpan<byte> name, out OverlayNode dir, out bool wasWhiteout)
    {
        wasWhiteout = false;
        if (!TryNode(parent, out dir!)) return Errno.ENOENT;
        if (!dir.IsDirectory) return Errno.ENOTDIR;
        if (OverlayFormat.IsAufsName(name)) return Errno.EINVAL;
        if (Resolve(dir, name, out Resolved existing) == Errno.OK)
        {
            Release(existing.Top, existing.Below);
            return Errno.EEXIST;
        }

        Errno e = EnsureUpper(dir);
        if (e != Errno.OK) return e;
        if (_layers[0].Lookup(dir.Top.Ino, name, out FuseAttr a) == Errno.OK)
        {
            wasWhiteout = OverlayFormat.IsDeviceWhiteout(a) || IsWhiteout(dir.Top, a);
            ReleaseLayer(0, a.Ino);
            if (wasWhiteout && (e = _layers[0].Unlink(dir.Top.Ino, name)) != Errno.OK) return e;
        }

        return Errno.OK;
    }

    /// <summary>A name made in the upper layer becomes a node of the merged tree.</summary>
    private Errno Made(OverlayNode dir, ReadOnlySpan<byte> name, Errno e, ref FuseAttr attr)
    {
        if (e != Errno.OK) return e;
        OverlayNode node = Adopt(dir, name, new Resolved(new LayerObject(0, attr.Ino), attr, []));
        attr.Ino = node.Id;
        return Errno.OK;
    }

    public Errno MkDir(ulong parent, ReadOnlySpan<byte> name, uint mode, in Caller caller, out FuseAttr attr)
    {
        attr = default;
        Errno e = PrepareNewName(parent, name, out OverlayNode dir, out bool wasWhiteout);
        if (e != Errno.OK) return e;
        e = _layers[0].MkDir(dir.Top.Ino, name, mode, caller, out attr);
        if (e == Errno.OK && (wasWhiteout || LowerHas(dir, name)))
        {
            // Where a lower directory of that name was removed, the new one must not show its old entries.
            _layers[0].SetXattr(attr.Ino, OverlayFormat.OpaqueXattr, "y"u8, 0);
        }

        return Made(dir, name, e, ref attr);
    }

    public Errno MkNod(ulong parent, ReadOnlySpan<byte> name, uint mode, uint rdev, in Caller caller, out FuseAttr attr)
    {
        attr = default;
        Errno e = PrepareNewName(parent, name, out OverlayNode dir, out _);
        return e != Errno.OK ? e : Made(dir, name, _layers[0].MkNod(dir.Top.Ino, name, mode, rdev, caller, out attr), ref attr);
    }

    public Errno Symlink(ulong parent, ReadOnlySpan<byte> name, ReadOnlySpan<byte> target, in Caller caller, out FuseAttr attr)
    {
        attr = default;
        Errno e = PrepareNewName(parent, name, out OverlayNode dir, out _);
        return e != Errno.OK ? e : Made(dir, name, _layers[0].Symlink(dir.Top.Ino, name, target, caller, out attr), ref attr);
    }

    public Errno Create(ulong parent, ReadOnlySpan<byte> name, int flags, uint mode, in Caller caller, out FuseAttr attr, out IOpenFile file, out bool created)
    {
        attr = default;
        file = null!;
        created = false;
        Errno e = PrepareNewName(parent, name, out OverlayNode dir, out _);
        // Without O_EXCL a name that exists is opened as open(2) would (copied up by Open if written); keep in sync
        // with HostFileSystem.Create and MemoryFileSystem.Create.
        if (e == Errno.EEXIST && (flags & O_EXCL) == 0) return OpenExisting(parent, name, flags, caller, out attr, out file);
        if (e != Errno.OK) return e;
        e = Made(dir, name, _layers[0].Create(dir.Top.Ino, name, flags, mode, caller, out attr, out IOpenFile layerFile, out created), ref attr);
        if (e != Errno.OK)
        {
            created = false;
            return e;
        }
        TryNode(attr.Ino, out OverlayNode? node);
        file = new OverlayOpenFile(this, node!, 0, layerFile);
        return Errno.OK;
    }

    private Errno OpenExisting(ulong parent, ReadOnlySpan<byte> name, int flags, in Caller caller, out FuseAttr attr, out IOpenFile file)
    {
        file = null!;
        Errno e = Lookup(parent, name, out attr);
        if (e != Errno.OK) return e;
        if (!Retain(attr.Ino)) // held through the open: an unheld node may age out between the two calls
        {
            attr = default;
            return Errno.ENOENT;
        }

        e = (attr.Mode & S_IFMT) == S_IFDIR ? Errno.EISDIR : Open(attr.Ino, flags & ~(O_CREAT | O_EXCL), caller, out file);
        Release(attr.Ino); // an open file keeps the node from here; a failed open lets it go
        if (e != Errno.OK) attr = default;
        return e;
    }

    public Errno TmpFile(ulong parent, int flags, uint mode, in Caller caller, out FuseAttr attr, out IOpenFile file)
    {
        attr = default;
        file = null!;
        if (!TryNode(parent, out OverlayNode? dir)) return Errno.ENOENT;
        Errno e = EnsureUpper(dir);
        if (e != Errno.OK) return e;
        e = _layers[0].TmpFile(dir.Top.Ino, flags, mode, caller, out attr, out IOpenFile layerFile);
        if (e != Errno.OK) return e;
        OverlayNode node = Adopt(dir, "#tmpfile"u8, new Resolved(new LayerObject(0, attr.Ino), attr, []));
        attr.Ino = node.Id;
        file = new OverlayOpenFile(this, node, 0, layerFile);
        return Errno.OK;
    }

    public Errno Unlink(ulong parent, ReadOnlySpan<byte> name) => Remove(parent, name, directory: false);

    public Errno RmDir(ulong parent, ReadOnlySpan<byte> name) => Remove(parent, name, directory: true);

    /// <summary>
    /// unlink and rmdir: the upper name goes (a directory's leftover whiteouts first), and a whiteout takes its place
    /// when a lower layer still has the name.
    /// </summary>
    private Errno Remove(ulong parent, ReadOnlySpan<byte> name, bool directory)
    {
        if (!HasUpper) return Errno.EROFS;
        if (!TryNode(parent, out OverlayNode? dir)) return Errno.ENOENT;
        Errno e = Resolve(dir, name, out Resolved found);
        if (e != Errno.OK) return e;
        bool isDir = (found.Attr.Mode & S_IFMT) == S_IFDIR;
        OverlayNode node = Adopt(dir, name, found, hold: true);
        try
        {
            if (isDir != directory) return directory ? Errno.ENOTDIR : Errno.EISDIR;
            if (directory && MergedEntries(node).Count != 0) return Errno.ENOTEMPTY;
            if ((e = EnsureUpper(dir)) != Errno.OK) return e;
            bool lowerHas = LowerHas(dir, name);
            if (node.Top.Layer == 0 && lowerHas && (e = MoveOutLeavingWhiteout(dir, name)) is not (Errno.EINVAL or Errno.EXDEV or Errno.EPERM or Errno.ENOENT))
            {
                // One step: the name became a whiteout as the object left the layer. Where the upper filesystem cannot
                // (or may not) make whiteouts that way, or the name is only below (a hard link copied up through another
                // name meanwhile), the two steps below answer (their own errors stand then).
                return e;
            }

            if (node.Top.Layer == 0)
            {
                if (directory) RemoveWhiteoutsIn(node.Top.Ino);
                e = directory ? _layers[0].RmDir(dir.Top.Ino, name) : _layers[0].Unlink(dir.Top.Ino, name);
                // A hard link copied up through another of its names after this one resolved: this name is only below.
                if (e != Errno.OK && !(e == Errno.ENOENT && lowerHas && !directory)) return e;
            }

            if (lowerHas)
            {
                e = _layers[0].MkNod(dir.Top.Ino, name, S_IFCHR, 0, Server, out FuseAttr whiteout);
                if (e != Errno.OK) return e;
                ReleaseLayer(0, whiteout.Ino);
                lock (_tree) node.Removed = node.Top.Layer != 0; // an upper object's own nlink already went to 0
            }

            return Errno.OK;
        }
        finally
        {
            Release(node.Id);
        }
    }

    /// <summary>
    /// The removal of an upper object that a lower layer also names, in one step, as the kernel's overlayfs makes it: the
    /// object moves to the work directory and a whiteout takes its name at once (RENAME_WHITEOUT), then the object is
    /// removed there. In two steps (unlink or rmdir, then mknod) a kill between them left the lower object showing again,
    /// and a directory's lower entries with it, so the kernel's resent rmdir then failed with ENOTEMPTY. EINVAL: no work
    /// directory, or an upper filesystem without whiteouts.
    /// </summary>
    private Errno MoveOutLeavingWhiteout(OverlayNode dir, ReadOnlySpan<byte> name)
    {
        if (_work is null) return Errno.EINVAL;
        Span<byte> temporary = stackalloc byte[CopyUp.TemporaryNameLength];
        CopyUp.TemporaryName(temporary);
        Errno e = _layers[0].MoveOutLeavingWhiteout(dir.Top.Ino, name, _work, temporary);
        if (e == Errno.OK) CopyUp.RemoveFromWork(_work, temporary); // a leftover goes at the next mount
        return e;
    }

    /// <summary>Before an upper directory is removed: the whiteouts it holds (it is empty in the merged view).</summary>
    private void RemoveWhiteoutsIn(ulong upperDir)
    {
        if (_layers[0].OpenDir(upperDir, out IOpenDirectory listing) != Errno.OK) return;
        var sink = new NameSink(int.MaxValue);
        listing.ReadDir(0, sink);
        listing.Release();
        foreach ((byte[] n, _, _) in sink.Entries)
        {
            _layers[0].Unlink(upperDir, n);
        }
    }

    public Errno Rename(ulong parent, ReadOnlySpan<byte> name, ulong newParent, ReadOnlySpan<byte> newName, uint flags)
    {
        Errno bad = Posix.RenameFlags.Check(flags); // before EROFS and the names, as do_renameat2
        if (bad != Errno.OK) return bad;
        if (!HasUpper) return Errno.EROFS;
        if (OverlayFormat.IsAufsName(newName)) return Errno.EINVAL;
        if (!TryNode(parent, out OverlayNode? from) || !TryNode(newParent, out OverlayNode? to)) return Errno.ENOENT;
        Errno e = Resolve(from, name, out Resolved found);
        if (e != Errno.OK) return e;
        OverlayNode moving = Adopt(from, name, found, hold: true);
        OverlayNode? replaced = null;
        try
        {
            if (Resolve(to, newName, out Resolved target) == Errno.OK)
            {
                replaced = Adopt(to, newName, target, hold: true);
                if ((flags & RENAME_NOREPLACE) != 0) return Errno.EEXIST;
                if (replaced == moving) return Errno.OK; // two names of one file: nothing to do
                // The type check first (the VFS's may_delete), then emptiness (the filesystem's), as on ext4.
                if (replaced.IsDirectory != moving.IsDirectory && (flags & RENAME_EXCHANGE) == 0) return moving.IsDirectory ? Errno.ENOTDIR : Errno.EISDIR;
                if (replaced.IsDirectory && (flags & RENAME_EXCHANGE) == 0 && MergedEntries(replaced).Count != 0) return Errno.ENOTEMPTY;
            }
            else if ((flags & RENAME_EXCHANGE) != 0)
            {
                return Errno.ENOENT;
            }

            // Everything that moves goes up first: a directory with lower parts with its whole tree.
            e = moving.IsDirectory && (moving.Top.Layer != 0 || moving.Below.Length > 0) ? EnsureUpperTree(moving) : EnsureUpperAt(moving, from, name);
            if (e != Errno.OK) return e;
            if (replaced != null && (flags & RENAME_EXCHANGE) != 0)
            {
                e = replaced.IsDirectory && (replaced.Top.Layer != 0 || replaced.Below.Length > 0) ? EnsureUpperTree(replaced) : EnsureUpperAt(replaced, to, newName);
                if (e != Errno.OK) return e;
            }

            if ((e = EnsureUpper(to)) != Errno.OK) return e;
            bool sourceLowerHas = (flags & RENAME_EXCHANGE) == 0 && LowerHas(from, name);
            if (replaced != null && replaced.Top.Layer != 0)
            {
                // The name to replace exists only below: the upper layer takes the new entry directly.
                replaced = ReleaseAndNull(replaced);
            }
            else if (replaced == null)
            {
                RemoveUpperWhiteout(to, newName);
            }

            if (replaced is { IsDirectory: true } && (flags & RENAME_EXCHANGE) == 0) RemoveWhiteoutsIn(replaced.Top.Ino);
            // Where a lower layer still has the old name, the whiteout that hides it comes with the rename itself, as the
            // kernel's overlayfs makes it: a kill between a rename and a separate mknod would show the lower object under
            // the old name again, and the kernel's resent rename would then move that one over the renamed file.
            e = sourceLowerHas ? _layers[0].RenameLeavingWhiteout(from.Top.Ino, name, to.Top.Ino, newName, flags) : Errno.EINVAL;
            if (e is Errno.EINVAL or Errno.EPERM) // not asked for, or an upper filesystem without (permitted) whiteouts: two steps
            {
                e = _layers[0].Rename(from.Top.Ino, name, to.Top.Ino, newName, flags);
                if (e != Errno.OK) return e;
                if (sourceLowerHas)
                {
                    e = _layers[0].MkNod(from.Top.Ino, name, S_IFCHR, 0, Server, out FuseAttr whiteout);
                    if (e == Errno.OK) ReleaseLayer(0, whiteout.Ino);
                }
            }
            else if (e != Errno.OK)
            {
                return e;
            }

            // A directory that now sits where a lower layer has one of the same name must not merge it (its entries were
            // never this directory's): with an exchange, that holds for both sides.
            if (moving.IsDirectory && LowerHas(to, newName))
            {
                _layers[0].SetXattr(moving.Top.Ino, OverlayFormat.OpaqueXattr, "y"u8, 0);
            }

            bool exchanged = replaced != null && (flags & RENAME_EXCHANGE) != 0;
            if (exchanged && replaced!.IsDirectory && LowerHas(from, name))
            {
                _layers[0].SetXattr(replaced.Top.Ino, OverlayFormat.OpaqueXattr, "y"u8, 0);
            }

            lock (_tree)
            {
                moving.Parent = to;
                moving.Name = newName.ToArray();
                if (exchanged)
                {
                    replaced!.Parent = from;
                    replaced.Name = name.ToArray();
                }
            }

            return e;
        }
        finally
        {
            Release(moving.Id);
            if (replaced != null) Release(replaced.Id);
        }
    }

    private OverlayNode? ReleaseAndNull(OverlayNode node)
    {
        Release(node.Id);
        return null;
    }

    private void RemoveUpperWhiteout(OverlayNode dir, ReadOnlySpan<byte> name)
    {
        if (_layers[0].Lookup(dir.Top.Ino, name, out FuseAttr a) != Errno.OK) return;
        bool whiteout = IsWhiteout(dir.Top, a);
        ReleaseLayer(0, a.Ino);
        if (whiteout) _layers[0].Unlink(dir.Top.Ino, name);
    }

    public Errno Link(ulong ino, ulong newParent, ReadOnlySpan<byte> newName, out FuseAttr attr)
    {
        attr = default;
        if (!TryNode(ino, out OverlayNode? node)) return Errno.ENOENT;
        Errno e = EnsureUpper(node);
        if (e != Errno.OK) return e;
        e = PrepareNewName(newParent, newName, out OverlayNode dir, out _);
        if (e != Errno.OK) return e;
        e = _layers[0].Link(node.Top.Ino, dir.Top.Ino, newName, out attr);
        if (e != Errno.OK) return e;
        // The node already holds its layer object: the link's hold goes back.
        ReleaseLayer(0, attr.Ino);
        attr.Ino = node.Id;
        return Errno.OK;
    }
}
