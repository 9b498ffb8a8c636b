// Lock order: Namespace > FileData
//   Namespace: one ReaderWriterLockSlim (_namespace). Read lock for lookups, getattr, read/write, readdir,
//   xattr reads, open/opendir; write lock for everything that changes names, links, metadata or frees nodes.
//   FileData: the monitor of a node's FileContent, taken under the namespace read lock by read, write,
//   fallocate, lseek and getattr so parallel I/O on different files runs concurrently. Code holding the
//   namespace write lock needs no FileData lock (every FileData holder also holds the read lock).
// Space (_usedBytes) is reserved with a lock-free compare-and-swap before anything is applied, so a
// request that would pass the limit fails with ENOSPC and changes nothing.
// File data: by default each regular file's bytes are one file in a private detached tmpfs (DataVolume, KernelFile)
// whose size= is the limit, so the kernel refuses data past it (ENOSPC, a short write first as on tmpfs), frees pages
// on unlink, and can serve the file by FUSE passthrough. _usedBytes then counts nodes, names, targets and xattrs,
// and reservations for them also count the data the kernel holds. Where the kernel refuses the private tmpfs, data
// stays in managed pages (FileContent) charged to _usedBytes as before.
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
/// by statfs. Nodes live until they have no name, no holder (Retain) and no open handle.
/// </summary>
public sealed partial class MemoryFileSystem : IFileSystemBackend
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

    internal const ulong RootId = 1;

    private const uint BlockSize = 4096;
    private const int DirentBogoSize = 20; // what tmpfs reports per entry as a directory's size

    private readonly ReaderWriterLockSlim _namespace = new(LockRecursionPolicy.NoRecursion);
    private readonly Dictionary<ulong, MemoryNode> _nodes = [];
    private int _openHandles;
    private readonly MemoryNode _root;
    private readonly long _sizeLimit;
    private readonly long _inodeLimit;
    private DataVolume? _volume;
    private ulong _nextId = RootId;
    private long _usedBytes;
    private bool _disposed;
    // A device number no real filesystem has, one per instance, so identities of different memory mounts differ.
    private static long s_lastDevice;
    // A kept filesystem's successor takes the device over from the journal, so the proxy finds its nodes again.
    private ulong _device = 0xFFFF_0000_0000_0000UL | (ulong)Interlocked.Increment(ref s_lastDevice);

    /// <param name="sizeLimit">Bytes the filesystem may use (pages, targets, xattrs, per-node overhead).</param>
    /// <param name="inodeLimit">Maximum live nodes; 0 means one per KiB of <paramref name="sizeLimit"/> (at least 1024).</param>
    /// <param name="rootUid">Owner of the root directory.</param>
    /// <param name="rootGid">Group of the root directory.</param>
    /// <param name="rootMode">Permission bits of the root directory (e.g. 0755, or 01777 for a /tmp).</param>
    /// <param name="kernelData">Keep file data in a private detached tmpfs (see <see cref="DataVolume"/>) when the
    /// kernel allows it; false, or a kernel that refuses, keeps it in managed pages.</param>
    public MemoryFileSystem(long sizeLimit = DefaultSizeLimit, long inodeLimit = 0, uint rootUid = 0, uint rootGid = 0, uint rootMode = 0x1ED /* 0755 */, bool kernelData = true)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(sizeLimit, NodeOverheadBytes);
        ArgumentOutOfRangeException.ThrowIfNegative(inodeLimit);
        _sizeLimit = sizeLimit;
        _inodeLimit = inodeLimit != 0 ? inodeLimit : Math.Max(1024, sizeLimit / 1024);
        _root = new MemoryNode(RootId, LibC.S_IFDIR | (rootMode & 0xFFF), rootUid, rootGid) { Nlink = 2, ChargedBytes = NodeOverheadBytes };
        _root.Directory = new MemoryDirectory(_root);
        _nodes.Add(RootId, _root);
        _usedBytes = NodeOverheadBytes;
        if (kernelData)
        {
            _volume = DataVolume.TryCreate(sizeLimit, _inodeLimit, out var error);
            KernelDataError = error;
        }
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
    public int OpenHandleCount => Volatile.Read(ref _openHandles);

    public MemoryUsage Usage => new(Interlocked.Read(ref _usedBytes) + KernelBytes, _sizeLimit, NodeCount, _inodeLimit);

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
            FillAttr(entry.Node, out attr);
            return Errno.OK;
        }
        finally
        {
            _namespace.ExitReadLock();
        }
    }

    public bool Retain(ulong ino)
    {
        // The read lock suffices: nodes are freed only under the write lock.
        _namespace.EnterReadLock();
        try
        {
            if (!_nodes.TryGetValue(ino, out var node))
            {
                return false;
            }
            Interlocked.Increment(ref node.Holds);
            return true;
        }
        finally
        {
            _namespace.ExitReadLock();
        }
    }

    public void Release(ulong ino)
    {
        // Under the read lock: the proxy releases on every last FORGET (under its node-table lock), and a node that
        // still has a name or an open file needs no more. Retains and releases never race (both come from that lock).
        _namespace.EnterReadLock();
        try
        {
            if (ino == RootId || !_nodes.TryGetValue(ino, out var node) || Volatile.Read(ref node.Holds) == 0
                || Interlocked.Decrement(ref node.Holds) != 0 || node.Nlink != 0 || Volatile.Read(ref node.OpenCount) != 0)
            {
                return;
            }
        }
        finally
        {
            _namespace.ExitReadLock();
        }

        // The last holder of a nameless, closed node: it goes (FreeIfUnused checks all of that again, now exclusively).
        _namespace.EnterWriteLock();
        try
        {
            if (_nodes.TryGetValue(ino, out var node))
            {
                FreeIfUnused(node);
            }
        }
        finally
        {
            EndWrite();
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

    public Errno SetAttr(ulong ino, in AttrChange change, in Caller caller, out FuseAttr attr)
    {
        attr = default;
        _namespace.EnterWriteLock();
        try
        {
            // Permissions and ownership must survive a restart; times and size (the data file's) are not refused.
            if (change.Mode.HasValue || change.ChangesOwner || change.KillSetId)
            {
                var refused = RefusedWhileUnjournaled();
                if (refused != Errno.OK)
                {
                    return refused;
                }
            }
            if (!_nodes.TryGetValue(ino, out var node))
            {
                return Errno.ENOENT;
            }
            if ((change.ChangesOwner && SetIdBits.ClearedByChown(node.Type)) || (change.Size.HasValue && node.IsRegular))
            {
                var refused = RefusedIfItDropsCapability(node); // see the drop below
                if (refused != Errno.OK)
                {
                    return refused;
                }
            }
            var now = Timestamp.Now();
            if (change.Size is ulong size)
            {
                if (node.IsDirectory)
                {
                    return Errno.EISDIR;
                }
                if (!node.IsRegular)
                {
                    return Errno.EINVAL;
                }
                if (size > MaxFileSize)
                {
                    return Errno.EFBIG;
                }
                var resized = ResizeLocked(node, (long)size);
                if (resized != Errno.OK)
                {
                    return resized;
                }
                node.Mtime = now;
            }
            if (change.Mode is uint mode)
            {
                node.Mode = node.Type | (mode & 0xFFF);
            }
            if (change.Uid is uint uid)
            {
                node.Uid = uid;
            }
            if (change.Gid is uint gid)
            {
                node.Gid = gid;
            }
            // chown(2) of a non-directory drops set-id bits even for root (the VFS adds ATTR_KILL_SUID), and a
            // write or truncate by a caller without CAP_FSETID does (FATTR_KILL_SUIDGID); under HANDLE_KILLPRIV_V2
            // the kernel leaves both to the filesystem. A mode sent in the same request is the kernel's own
            // computation and wins. Keep in sync with HostFileSystem.SetAttr (the rules are SetIdBits').
            bool chown = change.ChangesOwner;
            if (change.Mode is null
                && ((chown && SetIdBits.ClearedByChown(node.Type)) || (change.KillSetId && SetIdBits.ClearedByWrite(node.Type))))
            {
                node.Mode &= ~SetIdBits.ToClear(node.Mode);
            }
            // A chown or truncate drops file capabilities whoever asks (ATTR_KILL_PRIV), as the host kernel does
            // for the host backend.
            if ((chown && SetIdBits.ClearedByChown(node.Type)) || (change.Size.HasValue && node.IsRegular))
            {
                DropCapabilityLocked(node);
            }
            if (change.Atime is TimeChange atime)
            {
                node.Atime = atime.Now ? now : new Timestamp(atime.Seconds, atime.Nanoseconds);
            }
            if (change.Mtime is TimeChange mtime)
            {
                node.Mtime = mtime.Now ? now : new Timestamp(mtime.Seconds, mtime.Nanoseconds);
            }
            if (change.Ctime is TimeChange ctime)
            {
                node.Ctime = ctime.Now ? now : new Timestamp(ctime.Seconds, ctime.Nanoseconds);
            }
            else if (change.ChangesInode)
            {
                node.Ctime = now;
            }
            // The data file keeps atime and mtime of a file in kernel memory (writes through passthrough move them).
            SetKernelTimes(node, change.Atime.HasValue, change.Mtime.HasValue);
            Dirty(node);
            FillAttr(node, out attr);
            return Errno.OK;
        }
        finally
        {
            EndWrite();
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

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        _journal?.Dispose(); // a stop is not a change of the tree: the journal stays as the last request left it
        _journal = null;
        _namespace.EnterWriteLock();
        try
        {
            foreach (var node in _nodes.Values)
            {
                node.Content?.Clear();
                node.Data?.CloseDescriptor();
                node.Xattrs = null;
            }
            _nodes.Clear();
            _usedBytes = 0;
        }
        finally
        {
            EndWrite();
        }
        _namespace.Dispose();
        _volume?.Dispose(); // the detached tmpfs goes with its last descriptor, and its pages with it
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
        if (node.Data is { } data)
        {
            FillKernelAttr(node, data, ref attr);
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
