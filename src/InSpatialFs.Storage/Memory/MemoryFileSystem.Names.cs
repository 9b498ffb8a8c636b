using System.Buffers;
using System.Collections.Concurrent;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Posix;

namespace InSpatialFs.Storage.Memory;

// Creating, removing and renaming names (namespace write lock), with the POSIX rules of Storage/Posix.
// Locks: the order and what each guards are in the header of MemoryFileSystem.cs; preconditions are on each method.
public sealed partial class MemoryFileSystem
{
    public Errno Symlink(ulong parent, ReadOnlySpan<byte> name, ReadOnlySpan<byte> target, in Caller caller, out FuseAttr attr)
    {
        attr = default;
        var bad = NodeKinds.CheckSymlinkTarget(target);
        if (bad != Errno.OK)
        {
            return bad;
        }
        _namespace.EnterWriteLock();
        try
        {
            var error = CreateNodeLocked(parent, name, LibC.S_IFLNK | 0x1FF, 0, caller, target.Length, out var node);
            if (error != Errno.OK)
            {
                return error;
            }
            node.SymlinkTarget = target.ToArray();
            FillAttr(node, out attr);
            return Errno.OK;
        }
        finally
        {
            EndWrite();
        }
    }

    public Errno MkNod(ulong parent, ReadOnlySpan<byte> name, uint mode, uint rdev, in Caller caller, out FuseAttr attr)
    {
        attr = default;
        uint type = mode & LibC.S_IFMT;
        var bad = NodeKinds.CheckMknodType(type);
        if (bad != Errno.OK)
        {
            return bad;
        }
        if (type == 0)
        {
            mode |= LibC.S_IFREG;
        }
        _namespace.EnterWriteLock();
        try
        {
            var error = CreateNodeLocked(parent, name, mode, rdev, caller, 0, out var node);
            if (error != Errno.OK)
            {
                return error;
            }
            FillAttr(node, out attr);
            return Errno.OK;
        }
        finally
        {
            EndWrite();
        }
    }

    public Errno MkDir(ulong parent, ReadOnlySpan<byte> name, uint mode, in Caller caller, out FuseAttr attr)
    {
        attr = default;
        _namespace.EnterWriteLock();
        try
        {
            var error = CreateNodeLocked(parent, name, LibC.S_IFDIR | (mode & 0xFFF), 0, caller, 0, out var node);
            if (error != Errno.OK)
            {
                return error;
            }
            FillAttr(node, out attr);
            return Errno.OK;
        }
        finally
        {
            EndWrite();
        }
    }

    public Errno Unlink(ulong parent, ReadOnlySpan<byte> name) => RemoveName(parent, name, directory: false);

    public Errno RmDir(ulong parent, ReadOnlySpan<byte> name) => RemoveName(parent, name, directory: true);

    /// <summary>unlink and rmdir: the same lookup and checks, then the type-specific unhooking of the node.</summary>
    private Errno RemoveName(ulong parent, ReadOnlySpan<byte> name, bool directory)
    {
        var bad = EntryName.Check(name);
        if (bad != Errno.OK)
        {
            return bad;
        }
        _namespace.EnterWriteLock();
        try
        {
            var refused = RefusedWhileUnjournaled();
            if (refused != Errno.OK)
            {
                return refused;
            }
            var error = GetDirectory(parent, out var dir);
            if (error != Errno.OK)
            {
                return error;
            }
            var entry = dir.Directory!.Find(name);
            if (entry is null)
            {
                return Errno.ENOENT;
            }
            if (entry.Node.IsDirectory != directory)
            {
                return directory ? Errno.ENOTDIR : Errno.EISDIR;
            }
            if (directory && entry.Node.Directory!.Count != 0)
            {
                return Errno.ENOTEMPTY;
            }
            var now = Timestamp.Now();
            dir.Directory.Remove(entry);
            JournalEntryGone(dir, entry.Name);
            Release(EntryBytes(entry.Name));
            TouchDirectory(dir, now);
            if (directory)
            {
                dir.Nlink--;
                RemoveDirectoryNode(entry.Node, now);
            }
            else
            {
                entry.Node.Nlink--;
                entry.Node.Ctime = now;
                Dirty(entry.Node);
                FreeIfUnused(entry.Node);
            }
            return Errno.OK;
        }
        finally
        {
            EndWrite();
        }
    }

    public Errno Rename(ulong parent, ReadOnlySpan<byte> name, ulong newParent, ReadOnlySpan<byte> newName, uint flags)
    {
        var bad = RenameFlags.Check(flags); // before any name, as do_renameat2
        if (bad == Errno.OK)
        {
            bad = EntryName.Check(name);
        }
        if (bad == Errno.OK)
        {
            bad = EntryName.Check(newName);
        }
        if (bad != Errno.OK)
        {
            return bad;
        }
        _namespace.EnterWriteLock();
        try
        {
            var refused = RefusedWhileUnjournaled();
            if (refused != Errno.OK)
            {
                return refused;
            }
            var error = GetLiveDirectory(parent, out var oldDir);
            if (error == Errno.OK)
            {
                error = GetLiveDirectory(newParent, out var newDir);
                if (error == Errno.OK)
                {
                    error = RenameLocked(oldDir, name, newDir, newName, flags);
                }
            }
            return error;
        }
        finally
        {
            EndWrite();
        }
    }

    public Errno Link(ulong ino, ulong newParent, ReadOnlySpan<byte> newName, out FuseAttr attr)
    {
        attr = default;
        var bad = EntryName.Check(newName);
        if (bad != Errno.OK)
        {
            return bad;
        }
        _namespace.EnterWriteLock();
        try
        {
            var refused = RefusedWhileUnjournaled();
            if (refused != Errno.OK)
            {
                return refused;
            }
            if (!_nodes.TryGetValue(ino, out var node))
            {
                return Errno.ENOENT;
            }
            if (node.IsDirectory)
            {
                return Errno.EPERM;
            }
            if (node.Nlink == 0 && !node.Linkable)
            {
                return Errno.ENOENT;
            }
            var error = GetLiveDirectory(newParent, out var dir);
            if (error != Errno.OK)
            {
                return error;
            }
            if (dir.Directory!.Find(newName) is not null)
            {
                return Errno.EEXIST;
            }
            if (!TryReserve(EntryBytes(newName)))
            {
                return Errno.ENOSPC;
            }
            var now = Timestamp.Now();
            JournalEntry(dir, dir.Directory.Add(newName, node));
            TouchDirectory(dir, now);
            node.Nlink++;
            node.Linkable = false;
            node.Ctime = now;
            Dirty(node);
            FillAttr(node, out attr);
            return Errno.OK;
        }
        finally
        {
            EndWrite();
        }
    }

    /// <summary>Namespace lock (either mode) held.</summary>
    private Errno GetDirectory(ulong ino, out MemoryNode dir)
    {
        if (!_nodes.TryGetValue(ino, out dir!))
        {
            return Errno.ENOENT;
        }
        return dir.IsDirectory ? Errno.OK : Errno.ENOTDIR;
    }

    /// <summary>As <see cref="GetDirectory"/>, and ENOENT for a removed directory (nothing may be created in it).</summary>
    private Errno GetLiveDirectory(ulong ino, out MemoryNode dir)
    {
        var error = GetDirectory(ino, out dir);
        return error == Errno.OK && dir.Nlink == 0 ? Errno.ENOENT : error;
    }

    /// <summary>Namespace write lock held. Creates a named node (no holder yet: see <see cref="Retain"/>).</summary>
    private Errno CreateNodeLocked(ulong parent, ReadOnlySpan<byte> name, uint mode, uint rdev, in Caller caller, long extraBytes, out MemoryNode node)
    {
        node = null!;
        var error = EntryName.Check(name);
        if (error != Errno.OK)
        {
            return error;
        }
        error = GetLiveDirectory(parent, out var dir);
        if (error != Errno.OK)
        {
            return error;
        }
        if (dir.Directory!.Find(name) is not null)
        {
            return Errno.EEXIST;
        }
        error = RefusedWhileUnjournaled();
        if (error != Errno.OK)
        {
            return error;
        }
        if (!TryReserve(EntryBytes(name)))
        {
            return Errno.ENOSPC;
        }
        error = NewNodeLocked(dir, mode, caller, extraBytes, out node);
        if (error != Errno.OK)
        {
            Release(EntryBytes(name));
            return error;
        }
        node.Rdev = rdev;
        var now = node.Ctime;
        JournalEntry(dir, dir.Directory.Add(name, node));
        Dirty(node);
        if (node.IsDirectory)
        {
            dir.Nlink++;
        }
        TouchDirectory(dir, now);
        return Errno.OK;
    }

    /// <summary>Namespace write lock held. Allocates a node (ownership from the caller and setgid parent) without naming it.</summary>
    private Errno NewNodeLocked(MemoryNode dir, uint mode, in Caller caller, long extraBytes, out MemoryNode node)
    {
        node = null!;
        if (_nodes.Count >= _inodeLimit)
        {
            return Errno.ENOSPC;
        }
        long charge = NodeOverheadBytes + extraBytes;
        if (!TryReserve(charge))
        {
            return Errno.ENOSPC;
        }
        uint type = mode & LibC.S_IFMT;
        KernelFile? data = null;
        if (type == LibC.S_IFREG)
        {
            var error = NewKernelFile(_nextId + 1, out data);
            if (error != Errno.OK)
            {
                Release(charge);
                return error;
            }
        }
        mode = type | SetIdBits.NewNodePermissions(type, mode, dir.Mode);
        uint gid = SetIdBits.NewNodeGid(dir.Mode, dir.Gid, caller.Gid);
        node = new MemoryNode(++_nextId, mode, caller.Uid, gid) { ChargedBytes = charge, Nlink = 1 };
        switch (mode & LibC.S_IFMT)
        {
            case LibC.S_IFDIR:
                node.Directory = new MemoryDirectory(dir);
                node.Nlink = 2;
                break;
            case LibC.S_IFREG:
                node.Data = data;
                node.Content = data is null ? new FileContent() : null;
                break;
        }
        _nodes.Add(node.Id, node);
        return Errno.OK;
    }

    /// <summary>Namespace write lock held.</summary>
    private Errno RenameLocked(MemoryNode oldDir, ReadOnlySpan<byte> name, MemoryNode newDir, ReadOnlySpan<byte> newName, uint flags)
    {
        var source = oldDir.Directory!.Find(name);
        if (source is null)
        {
            return Errno.ENOENT;
        }
        var target = newDir.Directory!.Find(newName);
        var moving = source.Node;
        var now = Timestamp.Now();
        if ((flags & LibC.RENAME_EXCHANGE) != 0)
        {
            if (target is null)
            {
                return Errno.ENOENT;
            }
            var other = target.Node;
            if (other == moving)
            {
                return Errno.OK;
            }
            if ((moving.IsDirectory && IsAncestorOrSelf(moving, newDir)) || (other.IsDirectory && IsAncestorOrSelf(other, oldDir)))
            {
                return Errno.EINVAL;
            }
            oldDir.Directory!.Repoint(source, other);
            newDir.Directory!.Repoint(target, moving);
            if (oldDir != newDir)
            {
                MoveDirectoryLink(moving, oldDir, newDir);
                MoveDirectoryLink(other, newDir, oldDir);
            }
            moving.Ctime = other.Ctime = now;
            JournalEntry(oldDir, source);
            JournalEntry(newDir, target);
            Dirty(moving);
            Dirty(other);
            TouchDirectory(oldDir, now);
            TouchDirectory(newDir, now);
            return Errno.OK;
        }
        if (target is not null)
        {
            if ((flags & LibC.RENAME_NOREPLACE) != 0)
            {
                return Errno.EEXIST;
            }
            if (target.Node == moving)
            {
                return Errno.OK; // two names of one inode: POSIX says do nothing
            }
        }
        if (moving.IsDirectory && IsAncestorOrSelf(moving, newDir))
        {
            return Errno.EINVAL;
        }
        if (target is not null)
        {
            if (moving.IsDirectory && (!target.Node.IsDirectory || target.Node.Directory!.Count != 0))
            {
                return target.Node.IsDirectory ? Errno.ENOTEMPTY : Errno.ENOTDIR;
            }
            if (!moving.IsDirectory && target.Node.IsDirectory)
            {
                return Errno.EISDIR;
            }
        }
        // The moved entry's name changes cost; reserved before anything changes (ENOSPC leaves the tree as it was).
        long newEntry = EntryBytes(newName), oldEntry = EntryBytes(source.Name), replacedEntry = target is null ? 0 : EntryBytes(target.Name);
        if (newEntry > oldEntry + replacedEntry && !TryReserve(newEntry - oldEntry - replacedEntry))
        {
            return Errno.ENOSPC;
        }
        Release(oldEntry + replacedEntry - newEntry);
        if (target is not null)
        {
            var replaced = target.Node;
            newDir.Directory.Remove(target);
            JournalEntryGone(newDir, target.Name);
            if (replaced.IsDirectory)
            {
                newDir.Nlink--;
                RemoveDirectoryNode(replaced, now);
            }
            else
            {
                replaced.Nlink--;
                replaced.Ctime = now;
                Dirty(replaced);
                FreeIfUnused(replaced);
            }
        }
        oldDir.Directory.Remove(source);
        JournalEntryGone(oldDir, source.Name);
        JournalEntry(newDir, newDir.Directory.Add(newName, moving));
        if (oldDir != newDir)
        {
            MoveDirectoryLink(moving, oldDir, newDir);
        }
        moving.Ctime = now;
        Dirty(moving);
        TouchDirectory(oldDir, now);
        TouchDirectory(newDir, now);
        return Errno.OK;
    }

    private static void MoveDirectoryLink(MemoryNode node, MemoryNode from, MemoryNode to)
    {
        if (node.IsDirectory)
        {
            from.Nlink--;
            to.Nlink++;
            node.Directory!.Parent = to;
        }
    }

    private bool IsAncestorOrSelf(MemoryNode ancestor, MemoryNode dir)
    {
        for (var current = dir; ; current = current.Directory!.Parent)
        {
            if (current == ancestor)
            {
                return true;
            }
            if (current == _root || current.Directory!.Parent == current)
            {
                return false;
            }
        }
    }

    /// <summary>Namespace write lock held; the directory is empty and already unnamed.</summary>
    private void RemoveDirectoryNode(MemoryNode node, Timestamp now)
    {
        node.Nlink = 0;
        node.Ctime = now;
        Dirty(node);
        FreeIfUnused(node);
    }

    private void TouchDirectory(MemoryNode dir, Timestamp now)
    {
        dir.Mtime = now;
        dir.Ctime = now;
        Dirty(dir);
    }
}
