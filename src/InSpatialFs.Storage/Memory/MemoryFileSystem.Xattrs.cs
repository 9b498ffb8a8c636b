using System.Buffers;
using System.Collections.Concurrent;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Posix;

namespace InSpatialFs.Storage.Memory;

// Extended attributes, with the names and namespaces of Storage/Posix/XattrName.
// Locks: the order and what each guards are in the header of MemoryFileSystem.cs; preconditions are on each method.
public sealed partial class MemoryFileSystem
{
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
            var refused = RefusedWhileUnjournaled();
            if (refused != Errno.OK)
            {
                return refused;
            }
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
            Dirty(node);
            return Errno.OK;
        }
        finally
        {
            EndWrite();
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
            var refused = RefusedWhileUnjournaled();
            if (refused != Errno.OK)
            {
                return refused;
            }
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
            EndWrite();
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
        Dirty(node);
    }
}
