using System.Buffers;
using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Text;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Posix;
using Microsoft.Extensions.Logging;
using static InSpatialFs.Interop.LibC;

namespace InSpatialFs.Storage.Host;

// Extended attributes, with the names and namespaces of Storage/Posix/XattrName.
public sealed unsafe partial class HostFileSystem
{
    // The *xattrat calls refuse O_PATH descriptors (EBADF), so they name the node as "N" inside /proc/self/fd:
    // the one magic-link step described in the class comment, which lands on exactly our node's inode.

    public Errno SetXattr(ulong ino, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, int flags)
    {
        Span<byte> attrZ = stackalloc byte[NameMax + 1];
        XattrNamespace ns = default;
        Errno e = Posix.XattrName.CheckSetFlags(flags); // setxattr's order: flags, name, size
        if (e == Errno.OK) e = CheckXattrName(name, attrZ, out ns);
        if (e != Errno.OK) return e;
        if (value.Length > Posix.XattrName.MaxValueLength) return Errno.E2BIG;
        if (ReadOnly) return Errno.EROFS;
        if (!TryGetNode(ino, out HostNode? node)) return Errno.ENOENT;
        if ((e = Posix.XattrName.CheckNode(ns, node.Type, write: true)) != Errno.OK) return e;
        e = Borrow(node, out FdLease l);
        if (e != Errno.OK) return e;
        using (l)
        {
            Span<byte> fdName = stackalloc byte[16];
            FdName(l.Fd, fdName);
            fixed (byte* n = fdName)
            fixed (byte* a = attrZ)
            fixed (byte* v = value)
            {
                var args = new XattrArgs { Value = (ulong)v, Size = (uint)value.Length, Flags = (uint)flags };
                if (setxattrat(_procFdDir.Fd, n, 0, a, &args) != 0) return ErrnoExtensions.LastPInvoke();
            }
        }
        return Errno.OK;
    }

    public Errno GetXattr(ulong ino, ReadOnlySpan<byte> name, Span<byte> buffer, out int size)
    {
        size = 0;
        Span<byte> attrZ = stackalloc byte[NameMax + 1];
        Errno e = CheckXattrName(name, attrZ, out XattrNamespace ns);
        if (e != Errno.OK) return e;
        if (!TryGetNode(ino, out HostNode? node)) return Errno.ENOENT;
        if ((e = Posix.XattrName.CheckNode(ns, node.Type, write: false)) != Errno.OK) return e;
        e = Borrow(node, out FdLease l);
        if (e != Errno.OK) return e;
        using (l)
        {
            Span<byte> fdName = stackalloc byte[16];
            FdName(l.Fd, fdName);
            fixed (byte* n = fdName)
            fixed (byte* a = attrZ)
            fixed (byte* v = buffer)
            {
                var args = new XattrArgs { Value = (ulong)v, Size = (uint)buffer.Length };
                long r = getxattrat(_procFdDir.Fd, n, 0, a, &args);
                if (r < 0) return ErrnoExtensions.LastPInvoke();
                size = (int)r;
            }
        }
        return Errno.OK;
    }

    /// <summary>The host's list with the system.* names dropped (see <see cref="CheckXattrName"/>), so a size query
    /// and ERANGE describe exactly what is served.</summary>
    public Errno ListXattr(ulong ino, Span<byte> buffer, out int size)
    {
        size = 0;
        Errno e = BorrowNode(ino, out HostNode node, out FdLease l);
        if (e != Errno.OK) return e;
        byte[]? all = null;
        try
        {
            using (l)
            {
                Span<byte> fdName = stackalloc byte[16];
                FdName(l.Fd, fdName);
                while (true)
                {
                    long r;
                    fixed (byte* n = fdName) r = listxattrat(_procFdDir.Fd, n, 0, null, 0);
                    if (r < 0) return ErrnoExtensions.LastPInvoke();
                    if (r == 0) return Errno.OK;
                    all = ArrayPool<byte>.Shared.Rent((int)r);
                    fixed (byte* n = fdName)
                    fixed (byte* v = all)
                    {
                        r = listxattrat(_procFdDir.Fd, n, 0, v, all.Length);
                    }
                    if (r >= 0)
                    {
                        size = RemoveUnservedNames(all.AsSpan(0, (int)r));
                        break;
                    }
                    e = ErrnoExtensions.LastPInvoke();
                    ArrayPool<byte>.Shared.Return(all);
                    all = null;
                    if (e != Errno.ERANGE) return e; // ERANGE: the list grew between the calls; ask again
                }
            }
            if (buffer.IsEmpty) return Errno.OK;
            if (buffer.Length < size) return Errno.ERANGE;
            all.AsSpan(0, size).CopyTo(buffer);
            return Errno.OK;
        }
        finally
        {
            if (all != null) ArrayPool<byte>.Shared.Return(all);
        }
    }

    public Errno RemoveXattr(ulong ino, ReadOnlySpan<byte> name)
    {
        Span<byte> attrZ = stackalloc byte[NameMax + 1];
        Errno e = CheckXattrName(name, attrZ, out XattrNamespace ns);
        if (e != Errno.OK) return e;
        if (ReadOnly) return Errno.EROFS;
        if (!TryGetNode(ino, out HostNode? node)) return Errno.ENOENT;
        if ((e = Posix.XattrName.CheckNode(ns, node.Type, write: true)) != Errno.OK) return e;
        e = Borrow(node, out FdLease l);
        if (e != Errno.OK) return e;
        using (l)
        {
            Span<byte> fdName = stackalloc byte[16];
            FdName(l.Fd, fdName);
            fixed (byte* n = fdName)
            fixed (byte* a = attrZ)
            {
                if (removexattrat(_procFdDir.Fd, n, 0, a) != 0) return ErrnoExtensions.LastPInvoke();
            }
        }
        return Errno.OK;
    }

    /// <summary>
    /// The core's name rules, NUL-terminated into <paramref name="z"/>; system.* is EOPNOTSUPP (no POSIX ACLs are served:
    /// FUSE_POSIX_ACL is not negotiated, so the kernel would not enforce one the host stored). Keep in sync with
    /// MemoryFileSystem.CheckXattrName and <see cref="RemoveUnservedNames"/>.
    /// </summary>
    private static Errno CheckXattrName(ReadOnlySpan<byte> name, Span<byte> z, out XattrNamespace ns)
    {
        Errno e = Posix.XattrName.Check(name, out ns);
        if (e == Errno.OK && ns == XattrNamespace.System) e = Errno.EOPNOTSUPP;
        if (e != Errno.OK) return e;
        name.CopyTo(z);
        z[name.Length] = 0;
        return Errno.OK;
    }

    /// <summary>Drops system.* names from a NUL-separated list in place; returns the new length.</summary>
    private static int RemoveUnservedNames(Span<byte> list)
    {
        int write = 0;
        for (int read = 0; read < list.Length;)
        {
            int end = list[read..].IndexOf((byte)0);
            int next = end < 0 ? list.Length : read + end + 1;
            Span<byte> entry = list[read..next];
            if (!entry.StartsWith("system."u8))
            {
                entry.CopyTo(list[write..]);
                write += entry.Length;
            }
            read = next;
        }
        return write;
    }

    private static void FdName(int fd, Span<byte> dest)
    {
        Utf8Formatter.TryFormat(fd, dest, out int written);
        dest[written] = 0;
    }
}
