using System.Buffers;
using System.Collections.Concurrent;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Posix;

namespace InSpatialFs.Storage.Memory;

// Space and node lifetime: reservations against the size limit, and freeing nodes nobody holds.
// Locks: the order and what each guards are in the header of MemoryFileSystem.cs; preconditions are on each method.
public sealed partial class MemoryFileSystem
{
    public Errno StatFs(out FuseKstatfs stat)
    {
        stat = default;
        long used = Interlocked.Read(ref _usedBytes) + KernelBytes;
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

    /// <summary>Namespace write lock held. Drops a node with no name, no holder and no handle.</summary>
    private void FreeIfUnused(MemoryNode node)
    {
        if (node == _root || node.Nlink != 0 || node.Holds != 0 || node.OpenCount != 0)
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
        if (node.Data is not null)
        {
            node.Data.CloseDescriptor();
            ForgetData(node.Id); // its pages go back to the kernel now (or when a passthrough open closes)
        }
        JournalGone(node);
        node.Xattrs = null;
        node.SymlinkTarget = null;
        Release(bytes);
    }

    /// <summary>Namespace write lock held. Sets a regular file's size, charging or releasing pages.</summary>
    private Errno ResizeLocked(MemoryNode node, long size)
    {
        if (node.Data is { } data)
        {
            return KernelTruncate(data, size);
        }
        Release(node.Content!.Truncate(size) * FileContent.PageSize);
        return Errno.OK;
    }

    private static long EntryBytes(ReadOnlySpan<byte> name) => EntryOverheadBytes + name.Length;

    private bool TryReserve(long bytes)
    {
        if (bytes <= 0)
        {
            return true;
        }
        long current = Interlocked.Read(ref _usedBytes);
        // Names, nodes and xattrs share the limit with the file data the kernel holds (read once per reservation).
        long data = KernelBytes;
        while (true)
        {
            if (bytes > _sizeLimit - current - data)
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
}
