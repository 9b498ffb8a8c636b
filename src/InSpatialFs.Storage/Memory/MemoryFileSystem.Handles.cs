using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;

namespace InSpatialFs.Storage.Memory;

// Open handles: the objects Open, Create, TmpFile and OpenDir return, their registration (with the data file's
// descriptor for files in kernel memory) and release.
// Locks: the order and what each guards are in the header of MemoryFileSystem.cs; preconditions are on each method.
public sealed partial class MemoryFileSystem
{
    /// <summary>An open node. <see cref="Released"/> is written under the namespace write lock and read under the read lock.</summary>
    private abstract class OpenHandle(MemoryFileSystem fs, MemoryNode node, int flags)
    {
        public MemoryFileSystem Fs { get; } = fs;
        public MemoryNode Node { get; } = node;
        public int Flags { get; } = flags;
        public bool Released;

        public Errno Release() => Fs.ReleaseHandle(this);
    }

    private sealed class OpenFile(MemoryFileSystem fs, MemoryNode node, int flags) : OpenHandle(fs, node, flags), IOpenFile
    {
        public FopenFlags OpenFlags => NoFlush;

        public Errno Read(long offset, Span<byte> buffer, out int bytesRead) => Fs.Read(this, offset, buffer, out bytesRead);

        public Errno Write(long offset, ReadOnlySpan<byte> data, out int bytesWritten) => Fs.Write(this, offset, data, out bytesWritten);

        public Errno Flush() => Fs.CheckHandle(this);

        public Errno Fsync(bool dataOnly) => Fs.CheckHandle(this);

        public Errno Fallocate(int mode, long offset, long length) => Fs.Fallocate(this, mode, offset, length);

        public Errno Lseek(long offset, int whence, out long result) => Fs.Lseek(this, offset, whence, out result);

        public SafeFd? DuplicatePassthroughFd() => Fs.OfferPassthrough ? Node.Data?.DuplicateForPassthrough() : null;
    }

    private sealed class OpenDirectory(MemoryFileSystem fs, MemoryNode node, ulong changeStamp) : OpenHandle(fs, node, LibC.O_RDONLY | LibC.O_DIRECTORY), IOpenDirectory
    {
        /// <summary>Every change goes through this backend, so the directory's version is exact.</summary>
        public ulong ChangeStamp { get; } = changeStamp;

        public Errno ReadDir(long offset, IDirectoryEntrySink sink) => Fs.ReadDir(this, offset, sink);

        public Errno FsyncDir(bool dataOnly) => Fs.CheckHandle(this);
    }

    /// <summary>
    /// Namespace lock held. Counts an open of <paramref name="node"/>; a file in kernel memory gets its descriptor
    /// opened (one per open node, shared by its handles).
    /// </summary>
    private Errno AddHandle(MemoryNode node, int flags, out IOpenFile file)
    {
        file = null!;
        if (node.Data is { } data)
        {
            var error = data.Acquire();
            if (error != Errno.OK)
            {
                return error;
            }
        }
        Interlocked.Increment(ref node.OpenCount);
        Interlocked.Increment(ref _openHandles);
        file = new OpenFile(this, node, flags);
        return Errno.OK;
    }

    private Errno ReleaseHandle(OpenHandle handle)
    {
        _namespace.EnterWriteLock();
        try
        {
            if (handle.Released)
            {
                return Errno.EBADF;
            }
            handle.Released = true;
            Interlocked.Decrement(ref _openHandles);
            handle.Node.OpenCount--;
            handle.Node.Data?.ReleaseDescriptor();
            FreeIfUnused(handle.Node);
            return Errno.OK;
        }
        finally
        {
            EndWrite();
        }
    }

    /// <summary>A handle of this backend that is still open (EBADF otherwise).</summary>
    private Errno CheckHandle(OpenHandle handle)
    {
        _namespace.EnterReadLock();
        try
        {
            return handle.Released ? Errno.EBADF : Errno.OK;
        }
        finally
        {
            _namespace.ExitReadLock();
        }
    }

    /// <summary>Namespace lock held. An open regular file of this backend (EBADF for another backend's or a released one).</summary>
    private Errno GetFileHandle(IOpenFile file, out OpenFile handle)
    {
        if (file is not OpenFile mine || !ReferenceEquals(mine.Fs, this) || mine.Released)
        {
            handle = null!;
            return Errno.EBADF;
        }
        handle = mine;
        if (handle.Node.IsDirectory)
        {
            return Errno.EISDIR;
        }
        return handle.Node.Content is null && handle.Node.Data is null ? Errno.EINVAL : Errno.OK;
    }
}
