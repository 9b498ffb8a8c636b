using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;

namespace InSpatialFs.Storage.Memory;

// Open handles: registration (with the data file's descriptor for files in kernel memory), release and lookup.
// Locks: the order and what each guards are in the header of MemoryFileSystem.cs; preconditions are on each method.
public sealed partial class MemoryFileSystem
{
    private sealed class OpenHandle(MemoryNode node, int flags)
    {
        public MemoryNode Node { get; } = node;
        public int Flags { get; } = flags;
    }

    /// <summary>
    /// Namespace lock held. Registers a handle; a file in kernel memory gets its descriptor opened (one per open
    /// node, shared by its handles) and a duplicate offered for passthrough, which the proxy uses where policy allows.
    /// </summary>
    private Errno AddHandle(MemoryNode node, int flags, ref OpenResult result)
    {
        if (node.Data is { } data)
        {
            var error = data.Acquire();
            if (error != Errno.OK)
            {
                return error;
            }
            result.PassthroughFd = OfferPassthrough ? data.DuplicateForPassthrough() : null;
        }
        ulong fh = (ulong)Interlocked.Increment(ref _nextHandle);
        Interlocked.Increment(ref node.OpenCount);
        _handles[fh] = new OpenHandle(node, flags);
        result.Fh = fh;
        result.Flags = NoFlush;
        return Errno.OK;
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
            handle.Node.Data?.ReleaseDescriptor();
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
        return handle.Node.Content is null && handle.Node.Data is null ? Errno.EINVAL : Errno.OK;
    }
}
