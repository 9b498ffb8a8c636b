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

// Directory handles and streaming READDIR.
public sealed unsafe partial class HostFileSystem
{
    public Errno OpenDir(ulong ino, out IOpenDirectory directory)
    {
        directory = null!;
        if (!TryGetNode(ino, out HostNode? node)) return Errno.ENOENT;
        if (node.Type != S_IFDIR) return Errno.ENOTDIR;
        if (!ReserveHandle()) return Errno.EMFILE;
        Errno e = Borrow(node, out FdLease l);
        int fd = -1;
        if (e == Errno.OK)
        {
            using (l)
            {
                Span<byte> dotZ = [(byte)'.', 0];
                e = OpenBeneath(l.Fd, dotZ, O_RDONLY | O_DIRECTORY, 0, out fd);
            }
        }
        if (e != Errno.OK)
        {
            ReleaseHandleSlot();
            return e;
        }
#pragma warning disable CA2000 // the open directory owns the descriptor; the proxy releases the directory
        var open = new HostOpenDirectory(this, node, new SafeFd(fd));
#pragma warning restore CA2000
        lock (_nodeLock) node.OpenHandles++;
        _dirs[open] = 0;
        directory = open;
        return Errno.OK;
    }

    [ThreadStatic]
    private static byte[]? t_dirents;

    /// <summary>
    /// Streams the directory: getdents64 on the handle's own descriptor, from the kernel's cookie (d_off) the last
    /// READDIR ended at, so an open directory costs one descriptor, not a copy of its listing (a 100,000-entry
    /// directory open 40 times used to hold 40 copies). Cookies are the host filesystem's d_off values, which stay
    /// valid across creates and deletes as telldir/seekdir require; offset 0 rewinds, so rewinddir sees a fresh listing.
    /// </summary>
    internal Errno ReadDir(HostOpenDirectory dir, long offset, IDirectoryEntrySink sink)
    {
        ArgumentNullException.ThrowIfNull(sink);
        if (!FdLease.TryBorrow(dir.Fd, out FdLease lease)) return Errno.EBADF;
        byte[] buf = t_dirents ??= new byte[32768];
        using (lease)
        lock (dir.Gate)
        {
            int fd = lease.Fd;
            if (offset != dir.Position)
            {
                if (lseek(fd, offset, SEEK_SET) < 0) return ErrnoExtensions.LastPInvoke();
                dir.Position = offset;
            }
            fixed (byte* b = buf)
            {
                while (true)
                {
                    nint n = getdents64(fd, b, buf.Length);
                    if (n < 0) return ErrnoExtensions.LastPInvoke();
                    if (n == 0) return Errno.OK;
                    for (int pos = 0; pos + 19 < n;)
                    {
                        ulong dIno = *(ulong*)(b + pos);
                        long dOff = *(long*)(b + pos + 8);
                        ushort recLen = *(ushort*)(b + pos + 16);
                        byte dType = b[pos + 18];
                        if (recLen < 20 || pos + recLen > n) return Errno.EIO;
                        var name = new ReadOnlySpan<byte>(b + pos + 19, recLen - 19);
                        int z = name.IndexOf((byte)0);
                        if (z >= 0) name = name[..z];
                        pos += recLen;
                        bool dot = name.SequenceEqual("."u8), dotDot = name.SequenceEqual(".."u8);
                        uint type = (uint)dType << 12;
                        // DT_UNKNOWN (some filesystems): one statx of that single name beneath the directory.
                        if (type == 0 && StatName(fd, name, out StatX est) == Errno.OK) type = est.Mode & S_IFMT;
                        ulong id = dot ? dir.Node.Id : dotDot ? 0 : KnownId(dir.Node.Dev, dIno);
                        if (!sink.TryAdd(name, id, dot || dotDot ? S_IFDIR : type, dOff))
                        {
                            // The reply is full; getdents read ahead: the next READDIR seeks back to this entry's start.
                            dir.Position = -1;
                            return Errno.OK;
                        }
                        dir.Position = dOff;
                    }
                }
            }
        }
    }

    private ulong KnownId(ulong dev, ulong hostIno)
    {
        lock (_nodeLock) return _nodesByKey.TryGetValue((dev, hostIno), out HostNode? n) ? n.Id : 0;
    }

    internal Errno ReleaseDir(HostOpenDirectory dir)
    {
        if (!_dirs.TryRemove(dir, out _)) return Errno.EBADF;
        dir.Fd.Dispose();
        ReleaseHandleSlot();
        lock (_nodeLock)
        {
            dir.Node.OpenHandles--;
            DropIfUnusedLocked(dir.Node);
        }
        return Errno.OK;
    }

    internal Errno FsyncDir(HostOpenDirectory dir, bool dataOnly)
    {
        if (!_dirs.ContainsKey(dir)) return Errno.EBADF;
        Errno e = Borrow(dir.Node, out FdLease l);
        if (e != Errno.OK) return e;
        int fd;
        using (l)
        {
            Span<byte> dotZ = [(byte)'.', 0];
            e = OpenBeneath(l.Fd, dotZ, O_RDONLY | O_DIRECTORY, 0, out fd);
        }
        if (e != Errno.OK) return e;
        using var d = new SafeFd(fd);
        int rc = dataOnly ? fdatasync(fd) : fsync(fd);
        return rc == 0 ? Errno.OK : ErrnoExtensions.LastPInvoke();
    }
}
