using System.Buffers;
using System.Collections.Concurrent;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Posix;

namespace InSpatialFs.Storage.Memory;

// Open files and their data: handles, read, write, fallocate, lseek, copy_file_range.
// Locks: the order and what each guards are in the header of MemoryFileSystem.cs; preconditions are on each method.
public sealed partial class MemoryFileSystem
{
    /// <summary>Data is in memory at every WRITE and nothing is held per open but the handle: FLUSH at close() has nothing to do.</summary>
    private const FopenFlags NoFlush = FopenFlags.NoFlush;

    public Errno Open(ulong ino, int flags, in Caller caller, out IOpenFile file)
    {
        file = null!;
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
                var refused = RefusedIfItDropsCapability(node);
                if (refused != Errno.OK)
                {
                    return refused;
                }
                var now = Timestamp.Now();
                var resized = ResizeLocked(node, 0);
                if (resized != Errno.OK)
                {
                    return resized;
                }
                DropCapabilityLocked(node);
                node.Mtime = now;
                node.Ctime = now;
                Dirty(node);
            }
            return AddHandle(node, flags, out file);
        }
        finally
        {
            if (truncate)
            {
                EndWrite();
            }
            else
            {
                _namespace.ExitReadLock();
            }
        }
    }

    public Errno Create(ulong parent, ReadOnlySpan<byte> name, int flags, uint mode, in Caller caller, out FuseAttr attr, out IOpenFile file, out bool created)
    {
        attr = default;
        file = null!;
        created = false;
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
                    var refused = RefusedIfItDropsCapability(node);
                    if (refused != Errno.OK)
                    {
                        return refused;
                    }
                    var resized = ResizeLocked(node, 0);
                    if (resized != Errno.OK)
                    {
                        return resized;
                    }
                    DropCapabilityLocked(node);
                    node.Mtime = node.Ctime = Timestamp.Now();
                    Dirty(node);
                }
            }
            else
            {
                error = CreateNodeLocked(parent, name, LibC.S_IFREG | (mode & 0xFFF), 0, caller, 0, out node);
                if (error != Errno.OK)
                {
                    return error;
                }
            }
            error = AddHandle(node, flags, out file);
            if (error != Errno.OK)
            {
                return error;
            }
            FillAttr(node, out attr);
            created = existing is null;
            return Errno.OK;
        }
        finally
        {
            EndWrite();
        }
    }

    public Errno TmpFile(ulong parent, int flags, uint mode, in Caller caller, out FuseAttr attr, out IOpenFile file)
    {
        attr = default;
        file = null!;
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
            // An O_TMPFILE is always open for writing (the host backend opens it O_RDWR when asked O_RDONLY).
            error = AddHandle(node, (flags & LibC.O_ACCMODE) == LibC.O_RDONLY ? (flags & ~LibC.O_ACCMODE) | LibC.O_RDWR : flags, out file);
            if (error != Errno.OK)
            {
                FreeIfUnused(node);
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

    private Errno Read(OpenFile open, long offset, Span<byte> buffer, out int bytesRead)
    {
        bytesRead = 0;
        if (offset < 0)
        {
            return Errno.EINVAL;
        }
        _namespace.EnterReadLock();
        try
        {
            var error = GetFileHandle(open, out var handle);
            if (error != Errno.OK)
            {
                return error;
            }
            if ((handle.Flags & LibC.O_ACCMODE) == LibC.O_WRONLY)
            {
                return Errno.EBADF; // not open for reading, as read(2) says (the host backend's descriptor says it itself)
            }
            if (handle.Node.Data is { } data)
            {
                return KernelRead(data, offset, buffer, out bytesRead);
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

    private Errno Write(OpenFile open, long offset, ReadOnlySpan<byte> data, out int bytesWritten)
    {
        bytesWritten = 0;
        var refused = RefusedIfWriteDropsCapability(open);
        if (refused != Errno.OK)
        {
            return refused;
        }
        var error = WriteLocked(open, offset, data, out bytesWritten, out var capable);
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
                EndWrite();
            }
        }
        return error;
    }

    /// <param name="capable">Set when the written file carries security.capability, which the caller then drops.</param>
    private Errno WriteLocked(OpenFile open, long offset, ReadOnlySpan<byte> data, out int bytesWritten, out MemoryNode? capable)
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
            var error = GetFileHandle(open, out var handle);
            if (error != Errno.OK)
            {
                return error;
            }
            if ((handle.Flags & LibC.O_ACCMODE) == LibC.O_RDONLY)
            {
                return Errno.EBADF; // not open for writing, as write(2) says
            }
            var node = handle.Node;
            if (node.Data is { } file)
            {
                error = KernelWrite(file, (handle.Flags & LibC.O_APPEND) != 0, offset, data, out bytesWritten);
                if (error == Errno.OK && bytesWritten > 0)
                {
                    // The data file's ctime comes from the kernel's coarse clock and may trail the node's own (taken
                    // precisely at create or chmod): stat shows the later of the two, so the write moves the node's too.
                    node.Ctime = Timestamp.Now();
                    if (node.Xattrs is not null && FindXattr(node, XattrName.Capability) >= 0)
                    {
                        capable = node;
                    }
                }
                return error;
            }
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

    private Errno Fallocate(OpenFile open, int mode, long offset, long length)
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
            var error = GetFileHandle(open, out var handle);
            if (error != Errno.OK)
            {
                return error;
            }
            if ((handle.Flags & LibC.O_ACCMODE) == LibC.O_RDONLY)
            {
                return Errno.EBADF; // not open for writing; checked after the mode, as vfs_fallocate
            }
            var node = handle.Node;
            if (node.Data is { } file)
            {
                // The kernel refuses what does not fit (ENOSPC); the times move as with managed pages.
                error = KernelFallocate(file, mode, offset, length);
                if (error == Errno.OK && ((mode != 0 && mode != keepSize) || file.Size == offset + length))
                {
                    TouchKernelData(file);
                }
                return error;
            }
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

    private Errno Lseek(OpenFile open, long offset, int whence, out long result)
    {
        result = 0;
        _namespace.EnterReadLock();
        try
        {
            var error = GetFileHandle(open, out var handle);
            if (error != Errno.OK)
            {
                return error;
            }
            if (handle.Node.Data is { } file)
            {
                return KernelSeek(file, offset, whence, out result);
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

    public Errno CopyFileRange(IOpenFile input, long offsetIn, IOpenFile output, long offsetOut, long length, out long copied)
    {
        copied = 0;
        if (offsetIn < 0 || offsetOut < 0 || length < 0)
        {
            return Errno.EINVAL;
        }
        if (input is not OpenFile inFile || output is not OpenFile outFile || !ReferenceEquals(inFile.Fs, this) || !ReferenceEquals(outFile.Fs, this))
        {
            return Errno.EXDEV; // another backend's files: the kernel copies through READ and WRITE
        }
        if (inFile.Node == outFile.Node && offsetIn < offsetOut + length && offsetOut < offsetIn + length)
        {
            return Errno.EINVAL; // overlapping ranges of one file, as copy_file_range(2) specifies
        }
        if (TryKernelCopy(inFile, offsetIn, outFile, offsetOut, length, out copied, out var copyError))
        {
            return copyError;
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
                var error = Read(inFile, offsetIn + copied, buffer.AsSpan(0, want), out int got);
                if (error != Errno.OK || got == 0)
                {
                    return copied > 0 ? Errno.OK : error;
                }
                error = Write(outFile, offsetOut + copied, buffer.AsSpan(0, got), out int put);
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
}
