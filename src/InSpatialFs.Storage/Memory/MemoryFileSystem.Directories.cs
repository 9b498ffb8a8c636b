using System.Buffers;
using System.Collections.Concurrent;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Posix;

namespace InSpatialFs.Storage.Memory;

// Directory handles and READDIR.
// Locks: the order and what each guards are in the header of MemoryFileSystem.cs; preconditions are on each method.
public sealed partial class MemoryFileSystem
{
    public Errno OpenDir(ulong ino, out IOpenDirectory directory)
    {
        directory = null!;
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
            Interlocked.Increment(ref node.OpenCount); // a directory has no data file: nothing else to open
            Interlocked.Increment(ref _openHandles);
            directory = new OpenDirectory(this, node, DirectoryStamp.FromVersion(node.Directory!.Version));
            return Errno.OK;
        }
        finally
        {
            _namespace.ExitReadLock();
        }
    }

    /// <remarks>The sink runs under the namespace read lock: it must not call back into this backend.</remarks>
    private Errno ReadDir(OpenDirectory open, long offset, IDirectoryEntrySink sink)
    {
        ArgumentNullException.ThrowIfNull(sink);
        if (offset < 0)
        {
            return Errno.EINVAL;
        }
        _namespace.EnterReadLock();
        try
        {
            if (open.Released)
            {
                return Errno.EBADF;
            }
            var node = open.Node;
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
}
