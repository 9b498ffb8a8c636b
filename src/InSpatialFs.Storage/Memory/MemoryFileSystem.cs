// Lock order: Namespace > FileData
//   Namespace: one ReaderWriterLockSlim (_namespace). Read lock for lookups, getattr, read/write, readdir,
//   xattr reads, open/opendir; write lock for everything that changes names, links, metadata or frees nodes.
//   FileData: the monitor of a node's FileContent, taken under the namespace read lock by read, write,
//   fallocate, lseek and getattr so parallel I/O on different files runs concurrently. Code holding the
//   namespace write lock needs no FileData lock (every FileData holder also holds the read lock).
// Space (_usedBytes) is reserved with a lock-free compare-and-swap before anything is applied, so a
// request that would pass the limit fails with ENOSPC and changes nothing.
// Access times are not updated by read or readdir (like a noatime mount); utimensat still sets them.
using System.Buffers;
using System.Collections.Concurrent;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Posix;

namespace InSpatialFs.Storage.Memory;

/// <summary>
/// An in-memory POSIX filesystem: sparse regular files, directories, symlinks, hard links, fifos, sockets,
/// device nodes, xattrs (user., trusted., security.), O_TMPFILE, and a size and inode limit reported
/// by statfs. Nodes live until they have no name, no kernel reference and no open handle.
/// </summary>
public sealed class MemoryFileSystem : IFileSystemBackend
{
    /// <summary>1 GiB, the default size limit.</summary>
    public const long DefaultSizeLimit = 1L << 30;

    /// <summary>Bytes charged for every node besides its data (inode and bookkeeping).</summary>
    public const long NodeOverheadBytes = 256;

    /// <summary>Bytes charged for every directory entry besides its name: a hard link is a name, and names cost memory.</summary>
    public const long EntryOverheadBytes = 64;

    /// <summary>Largest file size (8 PiB); writes, truncates and allocations beyond it get EFBIG.</summary>
    public const long MaxFileSize = 1L << 53;

    public const int MaxNameLength = EntryName.MaxLength;
    public const int MaxSymlinkLength = NodeKinds.MaxSymlinkLength;
    public const int MaxXattrNameLength = XattrName.MaxLength;
    public const int MaxXattrValueLength = XattrName.MaxValueLength;

    private const ulong RootId = 1;

    /// <summary>SETATTR fields that change the inode (FATTR_FH and FATTR_LOCKOWNER only say how).</summary>
    private const FattrFlags ChangingFields = FattrFlags.Mode | FattrFlags.Uid | FattrFlags.Gid | FattrFlags.Size
        | FattrFlags.Atime | FattrFlags.Mtime | FattrFlags.AtimeNow | FattrFlags.MtimeNow | FattrFlags.KillSuidGid;
    private const uint BlockSize = 4096;
    private const int DirentBogoSize = 20; // what tmpfs reports per entry as a directory's size

    private readonly ReaderWriterLockSlim _namespace = new(LockRecursionPolicy.NoRecursion);
    private readonly Dictionary<ulong, MemoryNode> _nodes = [];
    private readonly ConcurrentDictionary<ulong, OpenHandle> _handles = new();
    private readonly MemoryNode _root;
    private readonly long _sizeLimit;
    private readonly long _inodeLimit;
    private ulong _nextId = RootId;
    private long _nextHandle;
    private long _usedBytes;
    private bool _disposed;
    // A device number no real filesystem has, one per instance, so identities of different memory mounts differ.
    private static long s_lastDevice;
    private readonly ulong _device = 0xFFFF_0000_0000_0000UL | (ulong)Interlocked.Increment(ref s_lastDevice);

    /// <param name="sizeLimit">Bytes the filesystem may use (pages, targets, xattrs, per-node overhead).</param>
    /// <param name="inodeLimit">Maximum live nodes; 0 means one per KiB of <paramref name="sizeLimit"/> (at least 1024).</param>
    /// <param name="rootUid">Owner of the root directory.</param>
    /// <param name="rootGid">Group of the root directory.</param>
    /// <param name="rootMode">Permission bits of the root directory (e.g. 0755, or 01777 for a /tmp).</param>
    public MemoryFileSystem(long sizeLimit = DefaultSizeLimit, long inodeLimit = 0, uint rootUid = 0, uint rootGid = 0, uint rootMode = 0x1ED /* 0755 */)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(sizeLimit, NodeOverheadBytes);
        ArgumentOutOfRangeException.ThrowIfNegative(inodeLimit);
        _sizeLimit = sizeLimit;
        _inodeLimit = inodeLimit != 0 ? inodeLimit : Math.Max(1024, sizeLimit / 1024);
        _root = new MemoryNode(RootId, LibC.S_IFDIR | (rootMode & 0xFFF), rootUid, rootGid) { Nlink = 2, ChargedBytes = NodeOverheadBytes };
        _root.Directory = new MemoryDirectory(_root);
        _nodes.Add(RootId, _root);
        _usedBytes = NodeOverheadBytes;
    }

    public string Kind => "memory";

    public ulong RootIno => RootId;

    /// <summary>Node ids are never reused within one filesystem; the device is this filesystem's own (not persistent).</summary>
    public InodeIdentity IdentityOf(ulong ino) => new(_device, ino, 0, Persistent: false);

    /// <summary>Live nodes (root included). Returns to its baseline once every reference is forgotten.</summary>
    public int NodeCount
    {
        get
        {
            _namespace.EnterReadLock();
            try
            {
                return _nodes.Count;
            }
            finally
            {
                _namespace.ExitReadLock();
            }
        }
    }

    /// <summary>Open file and directory handles.</summary>
    public int OpenHandleCount => _handles.Count;

    public MemoryUsage Usage => new(Interlocked.Read(ref _usedBytes), _sizeLimit, NodeCount, _inodeLimit);

    // ---------------------------------------------------------------- names and attributes

    public Errno Lookup(ulong parent, ReadOnlySpan<byte> name, out FuseAttr attr)
    {
        attr = default;
        var bad = EntryName.Check(name);
        if (bad != Errno.OK)
        {
            return bad;
        }
        _namespace.EnterReadLock();
        try
        {
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
            Interlocked.Increment(ref entry.Node.Lookups);
            FillAttr(entry.Node, out attr);
            return Errno.OK;
        }
        finally
        {
            _namespace.ExitReadLock();
        }
    }

    public void Forget(ulong ino, ulong count)
    {
        _namespace.EnterWriteLock();
        try
        {
            if (ino == RootId || !_nodes.TryGetValue(ino, out var node))
            {
                return;
            }
            node.Lookups = (ulong)node.Lookups <= count ? 0 : node.Lookups - (long)count;
            FreeIfUnused(node);
        }
        finally
        {
            _namespace.ExitWriteLock();
        }
    }

    public Errno GetAttr(ulong ino, out FuseAttr attr)
    {
        attr = default;
        _namespace.EnterReadLock();
        try
        {
            if (!_nodes.TryGetValue(ino, out var node))
            {
                return Errno.ENOENT;
            }
            FillAttr(node, out attr);
            return Errno.OK;
        }
        finally
        {
            _namespace.ExitReadLock();
        }
    }

    public Errno SetAttr(ulong ino, in FuseSetattrIn change, in Caller caller, out FuseAttr attr)
    {
        attr = default;
        var valid = (FattrFlags)change.Valid;
        _namespace.EnterWriteLock();
        try
        {
            if (!_nodes.TryGetValue(ino, out var node))
            {
                return Errno.ENOENT;
            }
            var now = Timestamp.Now();
            if ((valid & FattrFlags.Size) != 0)
            {
                if (node.IsDirectory)
                {
                    return Errno.EISDIR;
                }
                if (!node.IsRegular)
                {
                    return Errno.EINVAL;
                }
                if (change.Size > MaxFileSize)
                {
                    return Errno.EFBIG;
                }
                ResizeLocked(node, (long)change.Size);
                node.Mtime = now;
            }
            if ((valid & FattrFlags.Mode) != 0)
            {
                node.Mode = node.Type | (change.Mode & 0xFFF);
            }
            if ((valid & FattrFlags.Uid) != 0)
            {
                node.Uid = change.Uid;
            }
            if ((valid & FattrFlags.Gid) != 0)
            {
                node.Gid = change.Gid;
            }
            // chown(2) of a non-directory drops set-id bits even for root (the VFS adds ATTR_KILL_SUID), and a
            // write or truncate by a caller without CAP_FSETID does (FATTR_KILL_SUIDGID); under HANDLE_KILLPRIV_V2
            // the kernel leaves both to the filesystem. A mode sent in the same request is the kernel's own
            // computation and wins. Keep in sync with HostFileSystem.SetAttr (the rules are SetIdBits').
            bool chown = (valid & (FattrFlags.Uid | FattrFlags.Gid)) != 0;
            if ((valid & FattrFlags.Mode) == 0
                && ((chown && SetIdBits.ClearedByChown(node.Type)) || ((valid & FattrFlags.KillSuidGid) != 0 && SetIdBits.ClearedByWrite(node.Type))))
            {
                node.Mode &= ~SetIdBits.ToClear(node.Mode);
            }
            // A chown or truncate drops file capabilities whoever asks (ATTR_KILL_PRIV), as the host kernel does
            // for the host backend.
            if ((chown && SetIdBits.ClearedByChown(node.Type)) || ((valid & FattrFlags.Size) != 0 && node.IsRegular))
            {
                DropCapabilityLocked(node);
            }
            if ((valid & FattrFlags.AtimeNow) != 0)
            {
                node.Atime = now;
            }
            else if ((valid & FattrFlags.Atime) != 0)
            {
                node.Atime = new Timestamp((long)change.Atime, change.AtimeNsec);
            }
            if ((valid & FattrFlags.MtimeNow) != 0)
            {
                node.Mtime = now;
            }
            else if ((valid & FattrFlags.Mtime) != 0)
            {
                node.Mtime = new Timestamp((long)change.Mtime, change.MtimeNsec);
            }
            if ((valid & FattrFlags.Ctime) != 0)
            {
                node.Ctime = new Timestamp((long)change.Ctime, change.CtimeNsec);
            }
            else if ((valid & ChangingFields) != 0)
            {
                node.Ctime = now;
            }
            FillAttr(node, out attr);
            return Errno.OK;
        }
        finally
        {
            _namespace.ExitWriteLock();
        }
    }

    public Errno ReadLink(ulong ino, Span<byte> buffer, out int length)
    {
        length = 0;
        _namespace.EnterReadLock();
        try
        {
            if (!_nodes.TryGetValue(ino, out var node))
            {
                return Errno.ENOENT;
            }
            if (node.SymlinkTarget is null)
            {
                return Errno.EINVAL;
            }
            length = Math.Min(buffer.Length, node.SymlinkTarget.Length);
            node.SymlinkTarget.AsSpan(0, length).CopyTo(buffer);
            return Errno.OK;
        }
        finally
        {
            _namespace.ExitReadLock();
        }
    }

    // ---------------------------------------------------------------- creating and removing names

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
            _namespace.ExitWriteLock();
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
            _namespace.ExitWriteLock();
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
            _namespace.ExitWriteLock();
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
                FreeIfUnused(entry.Node);
            }
            return Errno.OK;
        }
        finally
        {
            _namespace.ExitWriteLock();
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
            _namespace.ExitWriteLock();
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
            dir.Directory.Add(newName, node);
            TouchDirectory(dir, now);
            node.Nlink++;
            node.Linkable = false;
            node.Ctime = now;
            node.Lookups++;
            FillAttr(node, out attr);
            return Errno.OK;
        }
        finally
        {
            _namespace.ExitWriteLock();
        }
    }

    // ---------------------------------------------------------------- open files

    /// <summary>Data is in memory at every WRITE and nothing is held per open but the handle: FLUSH at close() has nothing to do.</summary>
    private const FopenFlags NoFlush = FopenFlags.NoFlush;

    public Errno Open(ulong ino, int flags, in Caller caller, out OpenResult result)
    {
        result = default;
        bool truncate = (flags & LibC.O_TRUNC) != 0 && (flags & LibC.O_ACCMODE) != LibC.O_RDONLY;
        if (truncate)
        {
            _namespace.EnterWriteLock();
        }
        else
        {
            _namespace.EnterReadLock();
        }
        try
        {
            if (!_nodes.TryGetValue(ino, out var node))
            {
                return Errno.ENOENT;
            }
            if (node.IsDirectory && (flags & LibC.O_ACCMODE) != LibC.O_RDONLY)
            {
                return Errno.EISDIR;
            }
            if (truncate && node.IsRegular)
            {
                var now = Timestamp.Now();
                ResizeLocked(node, 0);
                DropCapabilityLocked(node);
                node.Mtime = now;
                node.Ctime = now;
            }
            result.Fh = AddHandle(node, flags);
            result.Flags = NoFlush;
            return Errno.OK;
        }
        finally
        {
            if (truncate)
            {
                _namespace.ExitWriteLock();
            }
            else
            {
                _namespace.ExitReadLock();
            }
        }
    }

    public Errno Create(ulong parent, ReadOnlySpan<byte> name, int flags, uint mode, in Caller caller, out FuseAttr attr, out OpenResult result)
    {
        attr = default;
        result = default;
        var bad = EntryName.Check(name);
        if (bad != Errno.OK)
        {
            return bad;
        }
        _namespace.EnterWriteLock();
        try
        {
            var error = GetLiveDirectory(parent, out var dir);
            if (error != Errno.OK)
            {
                return error;
            }
            var existing = dir.Directory!.Find(name);
            MemoryNode node;
            if (existing is not null)
            {
                // The kernel normally sends CREATE after a negative lookup; a racing creator got here first.
                if ((flags & LibC.O_EXCL) != 0)
                {
                    return Errno.EEXIST;
                }
                node = existing.Node;
                if (node.IsDirectory)
                {
                    return Errno.EISDIR;
                }
                if ((flags & LibC.O_TRUNC) != 0 && node.IsRegular)
                {
                    ResizeLocked(node, 0);
                    DropCapabilityLocked(node);
                    node.Mtime = node.Ctime = Timestamp.Now();
                }
                node.Lookups++;
            }
            else
            {
                error = CreateNodeLocked(parent, name, LibC.S_IFREG | (mode & 0xFFF), 0, caller, 0, out node);
                if (error != Errno.OK)
                {
                    return error;
                }
            }
            result.Fh = AddHandle(node, flags);
            result.Flags = NoFlush;
            FillAttr(node, out attr);
            return Errno.OK;
        }
        finally
        {
            _namespace.ExitWriteLock();
        }
    }

    public Errno TmpFile(ulong parent, int flags, uint mode, in Caller caller, out FuseAttr attr, out OpenResult result)
    {
        attr = default;
        result = default;
        _namespace.EnterWriteLock();
        try
        {
            var error = GetLiveDirectory(parent, out var dir);
            if (error != Errno.OK)
            {
                return error;
            }
            error = NewNodeLocked(dir, LibC.S_IFREG | (mode & 0xFFF), caller, 0, out var node);
            if (error != Errno.OK)
            {
                return error;
            }
            node.Nlink = 0;
            node.Linkable = (flags & LibC.O_EXCL) == 0;
            node.Lookups = 1;
            result.Fh = AddHandle(node, flags);
            result.Flags = NoFlush;
            FillAttr(node, out attr);
            return Errno.OK;
        }
        finally
        {
            _namespace.ExitWriteLock();
        }
    }

    public Errno Read(ulong ino, ulong fh, long offset, Span<byte> buffer, out int bytesRead)
    {
        bytesRead = 0;
        if (offset < 0)
        {
            return Errno.EINVAL;
        }
        _namespace.EnterReadLock();
        try
        {
            var error = GetFileHandle(ino, fh, out var handle);
            if (error != Errno.OK)
            {
                return error;
            }
            var content = handle.Node.Content!;
            lock (content)
            {
                bytesRead = content.Read(offset, buffer);
            }
            return Errno.OK;
        }
        finally
        {
            _namespace.ExitReadLock();
        }
    }

    public Errno Write(ulong ino, ulong fh, long offset, ReadOnlySpan<byte> data, out int bytesWritten)
    {
        var error = WriteLocked(ino, fh, offset, data, out bytesWritten, out var capable);
        if (capable is not null)
        {
            // A write drops file capabilities whoever writes (file_remove_privs); rare enough to take the write lock for.
            _namespace.EnterWriteLock();
            try
            {
                DropCapabilityLocked(capable);
            }
            finally
            {
                _namespace.ExitWriteLock();
            }
        }
        return error;
    }

    /// <param name="capable">Set when the written file carries security.capability, which the caller then drops.</param>
    private Errno WriteLocked(ulong ino, ulong fh, long offset, ReadOnlySpan<byte> data, out int bytesWritten, out MemoryNode? capable)
    {
        bytesWritten = 0;
        capable = null;
        if (offset < 0)
        {
            return Errno.EINVAL;
        }
        _namespace.EnterReadLock();
        try
        {
            var error = GetFileHandle(ino, fh, out var handle);
            if (error != Errno.OK)
            {
                return error;
            }
            var node = handle.Node;
            var content = node.Content!;
            lock (content)
            {
                if ((handle.Flags & LibC.O_APPEND) != 0)
                {
                    offset = content.Size;
                }
                if (data.IsEmpty)
                {
                    return Errno.OK;
                }
                if (offset >= MaxFileSize || data.Length > MaxFileSize - offset)
                {
                    return Errno.EFBIG;
                }
                long bytes = content.CountMissingPages(offset, data.Length) * FileContent.PageSize;
                if (!TryReserve(bytes))
                {
                    return Errno.ENOSPC;
                }
                content.Write(offset, data);
                node.Mtime = node.Ctime = Timestamp.Now();
                bytesWritten = data.Length;
            }
            if (node.Xattrs is not null && FindXattr(node, XattrName.Capability) >= 0)
            {
                capable = node;
            }
            return Errno.OK;
        }
        finally
        {
            _namespace.ExitReadLock();
        }
    }

    public Errno Flush(ulong ino, ulong fh) => CheckHandle(ino, fh);

    public Errno Fsync(ulong ino, ulong fh, bool dataOnly) => CheckHandle(ino, fh);

    public Errno Release(ulong ino, ulong fh) => ReleaseHandle(ino, fh);

    public Errno Fallocate(ulong ino, ulong fh, int mode, long offset, long length)
    {
        const int keepSize = FallocateMode.KeepSize, punch = FallocateMode.PunchHole, zero = FallocateMode.ZeroRange;
        var bad = FallocateMode.Check(mode, offset, length); // all five modes FUSE forwards are served, as on ext4
        if (bad != Errno.OK)
        {
            return bad;
        }
        if (offset >= MaxFileSize || length > MaxFileSize - offset)
        {
            return Errno.EFBIG;
        }
        _namespace.EnterReadLock();
        try
        {
            var error = GetFileHandle(ino, fh, out var handle);
            if (error != Errno.OK)
            {
                return error;
            }
            var node = handle.Node;
            var content = node.Content!;
            lock (content)
            {
                long end = offset + length;
                if ((mode & punch) != 0)
                {
                    Release(content.PunchHole(offset, length) * FileContent.PageSize);
                }
                else
                {
                    long pages = content.PageCount;
                    long rangePages = ((end - 1) >> FileContent.PageShift) - (offset >> FileContent.PageShift) + 1;
                    if ((rangePages - pages) * FileContent.PageSize > _sizeLimit - Interlocked.Read(ref _usedBytes))
                    {
                        return Errno.ENOSPC; // certain without counting page by page
                    }
                    if (!TryReserve(content.CountMissingPages(offset, length) * FileContent.PageSize))
                    {
                        return Errno.ENOSPC;
                    }
                    if ((mode & zero) != 0)
                    {
                        content.ZeroRange(offset, length);
                    }
                    else
                    {
                        content.Allocate(offset, length);
                    }
                    if ((mode & keepSize) == 0 && end > content.Size)
                    {
                        content.Size = end;
                    }
                }
                if (mode != 0 && mode != keepSize || content.Size == end)
                {
                    node.Mtime = node.Ctime = Timestamp.Now();
                }
            }
            return Errno.OK;
        }
        finally
        {
            _namespace.ExitReadLock();
        }
    }

    public Errno Lseek(ulong ino, ulong fh, long offset, int whence, out long result)
    {
        result = 0;
        _namespace.EnterReadLock();
        try
        {
            var error = GetFileHandle(ino, fh, out var handle);
            if (error != Errno.OK)
            {
                return error;
            }
            var content = handle.Node.Content!;
            lock (content)
            {
                switch (whence)
                {
                    case LibC.SEEK_SET:
                    case LibC.SEEK_CUR: // the kernel owns the file position; the offset it sends is already absolute
                        result = offset;
                        break;
                    case LibC.SEEK_END:
                        result = content.Size + offset;
                        break;
                    case LibC.SEEK_DATA:
                        if (offset < 0 || offset >= content.Size)
                        {
                            return Errno.ENXIO;
                        }
                        result = content.NextData(offset);
                        if (result < 0)
                        {
                            return Errno.ENXIO;
                        }
                        break;
                    case LibC.SEEK_HOLE:
                        if (offset < 0 || offset >= content.Size)
                        {
                            return Errno.ENXIO;
                        }
                        result = content.NextHole(offset);
                        break;
                    default:
                        return Errno.EINVAL;
                }
            }
            return result < 0 ? Errno.EINVAL : Errno.OK;
        }
        finally
        {
            _namespace.ExitReadLock();
        }
    }

    public Errno CopyFileRange(ulong inoIn, ulong fhIn, long offsetIn, ulong inoOut, ulong fhOut, long offsetOut, long length, out long copied)
    {
        copied = 0;
        if (offsetIn < 0 || offsetOut < 0 || length < 0)
        {
            return Errno.EINVAL;
        }
        if (inoIn == inoOut && offsetIn < offsetOut + length && offsetOut < offsetIn + length)
        {
            return Errno.EINVAL; // overlapping ranges of one file, as copy_file_range(2) specifies
        }
        // Chunks go through Read and Write, each taking its own FileData lock, so two files are never
        // locked at once and no order between FileData locks is needed.
        const int chunkSize = 128 * 1024;
        var buffer = ArrayPool<byte>.Shared.Rent(chunkSize);
        try
        {
            while (copied < length)
            {
                int want = (int)Math.Min(chunkSize, length - copied);
                var error = Read(inoIn, fhIn, offsetIn + copied, buffer.AsSpan(0, want), out int got);
                if (error != Errno.OK || got == 0)
                {
                    return copied > 0 ? Errno.OK : error;
                }
                error = Write(inoOut, fhOut, offsetOut + copied, buffer.AsSpan(0, got), out int put);
                if (error != Errno.OK)
                {
                    return copied > 0 ? Errno.OK : error;
                }
                copied += put;
                if (got < want)
                {
                    break;
                }
            }
            return Errno.OK;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public Errno StatFs(out FuseKstatfs stat)
    {
        stat = default;
        long used = Interlocked.Read(ref _usedBytes);
        long nodes = NodeCount;
        stat.Bsize = BlockSize;
        stat.Frsize = BlockSize;
        stat.NameLen = MaxNameLength;
        stat.Blocks = (ulong)(_sizeLimit / BlockSize);
        stat.Bfree = (ulong)(Math.Max(0, _sizeLimit - used) / BlockSize);
        stat.Bavail = stat.Bfree;
        stat.Files = (ulong)_inodeLimit;
        stat.Ffree = (ulong)Math.Max(0, _inodeLimit - nodes);
        return Errno.OK;
    }

    // ---------------------------------------------------------------- xattrs

    public Errno SetXattr(ulong ino, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, int flags)
    {
        var ns = default(XattrNamespace);
        var error = XattrName.CheckSetFlags(flags); // setxattr's order: flags, name, size
        if (error == Errno.OK)
        {
            error = CheckXattrName(name, out ns);
        }
        if (error != Errno.OK)
        {
            return error;
        }
        if (value.Length > MaxXattrValueLength)
        {
            return Errno.E2BIG;
        }
        _namespace.EnterWriteLock();
        try
        {
            if (!_nodes.TryGetValue(ino, out var node))
            {
                return Errno.ENOENT;
            }
            error = XattrName.CheckNode(ns, node.Type, write: true);
            if (error != Errno.OK)
            {
                return error;
            }
            int index = FindXattr(node, name);
            if (index >= 0 && (flags & LibC.XATTR_CREATE) != 0)
            {
                return Errno.EEXIST;
            }
            if (index < 0 && (flags & LibC.XATTR_REPLACE) != 0)
            {
                return Errno.ENODATA;
            }
            long oldBytes = index >= 0 ? name.Length + node.Xattrs![index].Value.Length : 0;
            long newBytes = name.Length + value.Length;
            if (newBytes > oldBytes && !TryReserve(newBytes - oldBytes))
            {
                return Errno.ENOSPC;
            }
            Release(oldBytes - Math.Min(oldBytes, newBytes));
            node.ChargedBytes += newBytes - oldBytes;
            var entry = new KeyValuePair<byte[], byte[]>(index >= 0 ? node.Xattrs![index].Key : name.ToArray(), value.ToArray());
            if (index >= 0)
            {
                node.Xattrs![index] = entry;
            }
            else
            {
                (node.Xattrs ??= []).Add(entry);
            }
            node.Ctime = Timestamp.Now();
            return Errno.OK;
        }
        finally
        {
            _namespace.ExitWriteLock();
        }
    }

    public Errno GetXattr(ulong ino, ReadOnlySpan<byte> name, Span<byte> buffer, out int size)
    {
        size = 0;
        var error = CheckXattrName(name, out var ns);
        if (error != Errno.OK)
        {
            return error;
        }
        _namespace.EnterReadLock();
        try
        {
            if (!_nodes.TryGetValue(ino, out var node))
            {
                return Errno.ENOENT;
            }
            error = XattrName.CheckNode(ns, node.Type, write: false);
            if (error != Errno.OK)
            {
                return error;
            }
            int index = FindXattr(node, name);
            if (index < 0)
            {
                return Errno.ENODATA;
            }
            var value = node.Xattrs![index].Value;
            size = value.Length;
            if (buffer.IsEmpty)
            {
                return Errno.OK;
            }
            if (buffer.Length < value.Length)
            {
                return Errno.ERANGE;
            }
            value.CopyTo(buffer);
            return Errno.OK;
        }
        finally
        {
            _namespace.ExitReadLock();
        }
    }

    public Errno ListXattr(ulong ino, Span<byte> buffer, out int size)
    {
        size = 0;
        _namespace.EnterReadLock();
        try
        {
            if (!_nodes.TryGetValue(ino, out var node))
            {
                return Errno.ENOENT;
            }
            if (node.Xattrs is null)
            {
                return Errno.OK;
            }
            foreach (var pair in node.Xattrs)
            {
                size += pair.Key.Length + 1;
            }
            if (buffer.IsEmpty)
            {
                return Errno.OK;
            }
            if (buffer.Length < size)
            {
                return Errno.ERANGE;
            }
            int at = 0;
            foreach (var pair in node.Xattrs)
            {
                pair.Key.CopyTo(buffer[at..]);
                at += pair.Key.Length;
                buffer[at++] = 0;
            }
            return Errno.OK;
        }
        finally
        {
            _namespace.ExitReadLock();
        }
    }

    public Errno RemoveXattr(ulong ino, ReadOnlySpan<byte> name)
    {
        var error = CheckXattrName(name, out var ns);
        if (error != Errno.OK)
        {
            return error;
        }
        _namespace.EnterWriteLock();
        try
        {
            if (!_nodes.TryGetValue(ino, out var node))
            {
                return Errno.ENOENT;
            }
            error = XattrName.CheckNode(ns, node.Type, write: true);
            if (error != Errno.OK)
            {
                return error;
            }
            int index = FindXattr(node, name);
            if (index < 0)
            {
                return Errno.ENODATA;
            }
            RemoveXattrAtLocked(node, index);
            return Errno.OK;
        }
        finally
        {
            _namespace.ExitWriteLock();
        }
    }

    // ---------------------------------------------------------------- directories

    public Errno OpenDir(ulong ino, out ulong fh)
    {
        fh = 0;
        _namespace.EnterReadLock();
        try
        {
            if (!_nodes.TryGetValue(ino, out var node))
            {
                return Errno.ENOENT;
            }
            if (!node.IsDirectory)
            {
                return Errno.ENOTDIR;
            }
            fh = AddHandle(node, LibC.O_RDONLY | LibC.O_DIRECTORY);
            return Errno.OK;
        }
        finally
        {
            _namespace.ExitReadLock();
        }
    }

    /// <remarks>The sink runs under the namespace read lock: it must not call back into this backend.</remarks>
    public Errno ReadDir(ulong ino, ulong fh, long offset, IDirectoryEntrySink sink)
    {
        ArgumentNullException.ThrowIfNull(sink);
        if (offset < 0)
        {
            return Errno.EINVAL;
        }
        _namespace.EnterReadLock();
        try
        {
            if (!_nodes.TryGetValue(ino, out var node))
            {
                return Errno.ENOENT;
            }
            if (!node.IsDirectory)
            {
                return Errno.ENOTDIR;
            }
            var dir = node.Directory!;
            if (offset < 1 && !sink.TryAdd("."u8, node.Id, LibC.S_IFDIR, 1))
            {
                return Errno.OK;
            }
            if (offset < 2 && !sink.TryAdd(".."u8, dir.Parent.Id, LibC.S_IFDIR, 2))
            {
                return Errno.OK;
            }
            if (node.Nlink == 0)
            {
                return Errno.OK; // a removed directory lists only "." and ".."
            }
            foreach (var entry in dir.After(offset))
            {
                if (!sink.TryAdd(entry.Name, entry.Node.Id, entry.Node.Type, entry.Cookie))
                {
                    break;
                }
            }
            return Errno.OK;
        }
        finally
        {
            _namespace.ExitReadLock();
        }
    }

    public Errno ReleaseDir(ulong ino, ulong fh) => ReleaseHandle(ino, fh);

    public Errno FsyncDir(ulong ino, ulong fh, bool dataOnly) => CheckHandle(ino, fh);

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        _namespace.EnterWriteLock();
        try
        {
            _handles.Clear();
            foreach (var node in _nodes.Values)
            {
                node.Content?.Clear();
                node.Xattrs = null;
            }
            _nodes.Clear();
            _usedBytes = 0;
        }
        finally
        {
            _namespace.ExitWriteLock();
        }
        _namespace.Dispose();
    }

    // ---------------------------------------------------------------- helpers (lock held as stated)

    private sealed class OpenHandle(MemoryNode node, int flags)
    {
        public MemoryNode Node { get; } = node;
        public int Flags { get; } = flags;
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

    /// <summary>Namespace write lock held. Creates a named node with one kernel reference.</summary>
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
        node.Lookups = 1;
        var now = node.Ctime;
        dir.Directory.Add(name, node);
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
                node.Content = new FileContent();
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
            source.Node = other;
            target.Node = moving;
            if (oldDir != newDir)
            {
                MoveDirectoryLink(moving, oldDir, newDir);
                MoveDirectoryLink(other, newDir, oldDir);
            }
            moving.Ctime = other.Ctime = now;
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
            if (replaced.IsDirectory)
            {
                newDir.Nlink--;
                RemoveDirectoryNode(replaced, now);
            }
            else
            {
                replaced.Nlink--;
                replaced.Ctime = now;
                FreeIfUnused(replaced);
            }
        }
        oldDir.Directory.Remove(source);
        newDir.Directory.Add(newName, moving);
        if (oldDir != newDir)
        {
            MoveDirectoryLink(moving, oldDir, newDir);
        }
        moving.Ctime = now;
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
        FreeIfUnused(node);
    }

    private static void TouchDirectory(MemoryNode dir, Timestamp now)
    {
        dir.Mtime = now;
        dir.Ctime = now;
    }

    /// <summary>Namespace write lock held. Drops a node with no name, no kernel reference and no handle.</summary>
    private void FreeIfUnused(MemoryNode node)
    {
        if (node == _root || node.Nlink != 0 || node.Lookups != 0 || node.OpenCount != 0)
        {
            return;
        }
        if (!_nodes.Remove(node.Id))
        {
            return;
        }
        long bytes = node.ChargedBytes;
        if (node.Content is not null)
        {
            bytes += (long)node.Content.PageCount * FileContent.PageSize;
            node.Content.Clear();
        }
        node.Xattrs = null;
        node.SymlinkTarget = null;
        Release(bytes);
    }

    /// <summary>Namespace write lock held. Sets a regular file's size, charging or releasing pages.</summary>
    private void ResizeLocked(MemoryNode node, long size)
    {
        Release(node.Content!.Truncate(size) * FileContent.PageSize);
    }

    /// <summary>Namespace write lock held. Removes security.capability, as any write, truncate or chown does.</summary>
    private void DropCapabilityLocked(MemoryNode node)
    {
        int index = FindXattr(node, XattrName.Capability);
        if (index >= 0)
        {
            RemoveXattrAtLocked(node, index);
        }
    }

    /// <summary>Namespace write lock held.</summary>
    private void RemoveXattrAtLocked(MemoryNode node, int index)
    {
        long bytes = node.Xattrs![index].Key.Length + node.Xattrs[index].Value.Length;
        node.Xattrs.RemoveAt(index);
        node.ChargedBytes -= bytes;
        Release(bytes);
        node.Ctime = Timestamp.Now();
    }

    private ulong AddHandle(MemoryNode node, int flags)
    {
        ulong fh = (ulong)Interlocked.Increment(ref _nextHandle);
        Interlocked.Increment(ref node.OpenCount);
        _handles[fh] = new OpenHandle(node, flags);
        return fh;
    }

    private Errno ReleaseHandle(ulong ino, ulong fh)
    {
        _namespace.EnterWriteLock();
        try
        {
            if (!_handles.TryGetValue(fh, out var handle) || handle.Node.Id != ino)
            {
                return Errno.EBADF;
            }
            _handles.TryRemove(fh, out _);
            handle.Node.OpenCount--;
            FreeIfUnused(handle.Node);
            return Errno.OK;
        }
        finally
        {
            _namespace.ExitWriteLock();
        }
    }

    private Errno CheckHandle(ulong ino, ulong fh)
        => _handles.TryGetValue(fh, out var handle) && handle.Node.Id == ino ? Errno.OK : Errno.EBADF;

    /// <summary>Namespace lock held. A handle of a regular file (EISDIR for directories).</summary>
    private Errno GetFileHandle(ulong ino, ulong fh, out OpenHandle handle)
    {
        if (!_handles.TryGetValue(fh, out handle!) || handle.Node.Id != ino)
        {
            return Errno.EBADF;
        }
        if (handle.Node.IsDirectory)
        {
            return Errno.EISDIR;
        }
        return handle.Node.Content is null ? Errno.EINVAL : Errno.OK;
    }

    private static long EntryBytes(ReadOnlySpan<byte> name) => EntryOverheadBytes + name.Length;

    private bool TryReserve(long bytes)
    {
        if (bytes <= 0)
        {
            return true;
        }
        long current = Interlocked.Read(ref _usedBytes);
        while (true)
        {
            if (bytes > _sizeLimit - current)
            {
                return false;
            }
            long seen = Interlocked.CompareExchange(ref _usedBytes, current + bytes, current);
            if (seen == current)
            {
                return true;
            }
            current = seen;
        }
    }

    private void Release(long bytes)
    {
        if (bytes > 0)
        {
            Interlocked.Add(ref _usedBytes, -bytes);
        }
    }

    /// <summary>
    /// The core's name rules; system.* is EOPNOTSUPP because no backend serves POSIX ACLs (FUSE_POSIX_ACL is not
    /// negotiated, so the kernel would not enforce one), as on a filesystem mounted noacl. Keep in sync with
    /// HostFileSystem.CheckXattrName.
    /// </summary>
    private static Errno CheckXattrName(ReadOnlySpan<byte> name, out XattrNamespace ns)
    {
        var error = XattrName.Check(name, out ns);
        return error == Errno.OK && ns == XattrNamespace.System ? Errno.EOPNOTSUPP : error;
    }

    private static int FindXattr(MemoryNode node, ReadOnlySpan<byte> name)
    {
        var list = node.Xattrs;
        if (list is null)
        {
            return -1;
        }
        for (int i = 0; i < list.Count; i++)
        {
            if (name.SequenceEqual(list[i].Key))
            {
                return i;
            }
        }
        return -1;
    }

    /// <summary>Namespace lock held (either mode); takes the FileData lock of regular files.</summary>
    private static void FillAttr(MemoryNode node, out FuseAttr attr)
    {
        attr = default;
        attr.Ino = node.Id;
        attr.Mode = node.Mode;
        attr.Nlink = node.Nlink;
        attr.Uid = node.Uid;
        attr.Gid = node.Gid;
        attr.Rdev = node.Rdev;
        attr.BlkSize = BlockSize;
        if (node.Content is { } content)
        {
            lock (content)
            {
                attr.Size = (ulong)content.Size;
                attr.Blocks = (ulong)content.PageCount * (FileContent.PageSize / 512);
                SetTimes(node, ref attr);
            }
            return;
        }
        if (node.Directory is { } dir)
        {
            attr.Size = (ulong)((dir.Count + 2) * DirentBogoSize);
        }
        else if (node.SymlinkTarget is { } target)
        {
            attr.Size = (ulong)target.Length;
        }
        SetTimes(node, ref attr);
    }

    private static void SetTimes(MemoryNode node, ref FuseAttr attr)
    {
        attr.Atime = (ulong)node.Atime.Seconds;
        attr.AtimeNsec = node.Atime.Nanoseconds;
        attr.Mtime = (ulong)node.Mtime.Seconds;
        attr.MtimeNsec = node.Mtime.Nanoseconds;
        attr.Ctime = (ulong)node.Ctime.Seconds;
        attr.CtimeNsec = node.Ctime.Nanoseconds;
    }
}
