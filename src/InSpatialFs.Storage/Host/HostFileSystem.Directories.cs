using System.Buffers;
using System.Buffers.Binary;
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

    /// <summary>
    /// The open directory's change stamp, from a statx of its descriptor, taken on first asking and only before any
    /// getdents (then whatever this open lists is at least as new as the stamp, so an unchanged stamp at a later open
    /// means the kernel's copy is still the directory); asked after a READDIR, Unknown. Not taken at open: the overlay's
    /// own listings of its layers never ask for it.
    /// </summary>
    internal ulong ChangeStampOf(HostOpenDirectory dir)
    {
        lock (dir.Gate)
        {
            if (dir.Stamped) return dir.Stamp;
            dir.Stamped = true;
            if (dir.Listed || !FdLease.TryBorrow(dir.Fd, out FdLease lease)) return dir.Stamp = DirectoryStamp.Unknown;
            using (lease)
            {
                return dir.Stamp = StatFd(lease.Fd, out StatX st) == Errno.OK ? DirectoryStamp.FromStat(st) : DirectoryStamp.Unknown;
            }
        }
    }

    [ThreadStatic]
    private static byte[]? t_dirents;

    /// <summary>
    /// Streams the directory: getdents64 on the handle's own descriptor, from the kernel's cookie (d_off) the last
    /// READDIR ended at, so an open directory costs one descriptor, not a copy of its listing (a 100,000-entry
    /// directory open 40 times used to hold 40 copies). Cookies are the host filesystem's d_off values, which stay
    /// valid across creates and deletes as telldir/seekdir require; offset 0 rewinds, so rewinddir sees a fresh listing.
    /// A getdents batch that a full reply did not take to its end is kept for the next READDIR, at that cookie or at any
    /// earlier one in the batch (at most one batch, 32 KiB, per open directory, within <see cref="ReadAheadBudget"/> for
    /// all): seeking back re-walked the directory on the host (tmpfs seeks by walking it, ext4 rebuilds its hash tree).
    /// </summary>
    internal Errno ReadDir(HostOpenDirectory dir, long offset, IDirectoryEntrySink sink)
    {
        ArgumentNullException.ThrowIfNull(sink);
        if (!FdLease.TryBorrow(dir.Fd, out FdLease lease)) return Errno.EBADF;
        byte[] buf = t_dirents ??= new byte[32768];
        using (lease)
        lock (dir.Gate)
        {
            dir.Listed = true;
            int fd = lease.Fd;
            if (offset != dir.Position && !ResumeInKept(dir, offset))
            {
                DropPending(dir);
                if (lseek(fd, offset, SEEK_SET) < 0) return ErrnoExtensions.LastPInvoke();
                dir.Position = offset;
            }

            if (dir.Pending is { } pending)
            {
                int start = dir.PendingStart, length = dir.PendingLength;
                int stop = Emit(dir, fd, pending.AsSpan(start, length - start), sink, out Errno bad);
                if (bad == Errno.OK && stop >= 0)
                {
                    dir.PendingStart = start + stop; // the reply is full again: the rest waits in the same batch
                    return Errno.OK;
                }

                DropPending(dir); // handed out to its end (the stream goes on from the descriptor), or unreadable
                if (bad != Errno.OK) return bad;
            }

            while (true)
            {
                nint n;
                fixed (byte* b = buf) n = getdents64(fd, b, buf.Length);
                if (n < 0) return ErrnoExtensions.LastPInvoke();
                if (n == 0) return Errno.OK;
                int stop = Emit(dir, fd, buf.AsSpan(0, (int)n), sink, out Errno bad);
                if (bad != Errno.OK) return bad;
                if (stop >= 0)
                {
                    // The reply is full; getdents read ahead: keep the batch for the next READDIR, which starts at stop
                    // (or earlier in it, when the proxy could not fit all it was given).
                    Keep(dir, buf.AsSpan(0, (int)n), stop);
                    return Errno.OK;
                }
            }
        }
    }

    /// <summary>
    /// Hands the getdents64 records in <paramref name="batch"/> to the sink, advancing the directory's position; returns
    /// where the first record the sink refused starts, or -1 when it took all of them.
    /// </summary>
    private int Emit(HostOpenDirectory dir, int fd, ReadOnlySpan<byte> batch, IDirectoryEntrySink sink, out Errno error)
    {
        error = Errno.OK;
        for (int pos = 0; pos + 19 < batch.Length;)
        {
            if (!RecordAt(batch, pos, out long dOff, out int recLen))
            {
                error = Errno.EIO;
                return -1;
            }

            ulong dIno = BinaryPrimitives.ReadUInt64LittleEndian(batch[pos..]);
            byte dType = batch[pos + 18];

            ReadOnlySpan<byte> name = batch.Slice(pos + 19, recLen - 19);
            int z = name.IndexOf((byte)0);
            if (z >= 0) name = name[..z];
            bool dot = name.SequenceEqual("."u8), dotDot = name.SequenceEqual(".."u8);
            uint type = (uint)dType << 12;
            // DT_UNKNOWN (some filesystems): one statx of that single name beneath the directory.
            if (type == 0 && StatName(fd, name, out StatX est) == Errno.OK) type = est.Mode & S_IFMT;
            ulong id = dot ? dir.Node.Id : dotDot ? 0 : KnownId(dir.Node.Dev, dIno);
            if (!sink.TryAdd(name, id, dot || dotDot ? S_IFDIR : type, dOff)) return pos;
            dir.Position = dOff;
            pos += recLen;
        }

        return -1;
    }

    /// <summary>
    /// Bytes of read-ahead all open directories may keep together (4 MiB by default). A process could otherwise pin one
    /// batch, up to 32 KiB, for every directory it opens and leaves half read; past the budget a directory seeks back
    /// and reads again, as it did before read-ahead was kept.
    /// </summary>
    internal long ReadAheadBudget { get; set; } = 4 * 1024 * 1024;

    private long _readAheadKept;

    /// <summary>Bytes of read-ahead open directories keep now.</summary>
    internal long ReadAheadKept => Interlocked.Read(ref _readAheadKept);

    private void Keep(HostOpenDirectory dir, ReadOnlySpan<byte> batch, int resumeAt)
    {
        if (Interlocked.Add(ref _readAheadKept, batch.Length) > ReadAheadBudget)
        {
            Interlocked.Add(ref _readAheadKept, -batch.Length);
            dir.Position = -1; // the next READDIR seeks back to the first entry not handed out
            return;
        }

        byte[] kept = ArrayPool<byte>.Shared.Rent(batch.Length);
        batch.CopyTo(kept);
        dir.Pending = kept;
        dir.PendingLength = batch.Length;
        dir.PendingStart = resumeAt;
    }

    /// <summary>
    /// A READDIR at a cookie of the kept batch: the proxy lists in batches and the reply may end before the last entry
    /// it was given, so the kernel asks again from an entry this stream has passed. Resumes after that entry (false:
    /// not in the batch; the caller seeks). On ext4 every seek into a hashed directory rebuilds its readdir tree.
    /// </summary>
    private static bool ResumeInKept(HostOpenDirectory dir, long offset)
    {
        if (dir.Pending is not { } kept)
        {
            return false;
        }

        ReadOnlySpan<byte> batch = kept.AsSpan(0, dir.PendingLength);
        for (int pos = 0; pos + 19 < batch.Length;)
        {
            if (!RecordAt(batch, pos, out long dOff, out int recLen))
            {
                return false;
            }

            pos += recLen;
            if (dOff == offset)
            {
                dir.PendingStart = pos;
                dir.Position = offset;
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// The cookie and length of the getdents64 record at <paramref name="pos"/> (which has its 19-byte header in the
    /// batch); false when its length is too short or runs past the batch.
    /// </summary>
    private static bool RecordAt(ReadOnlySpan<byte> batch, int pos, out long dOff, out int recLen)
    {
        dOff = BinaryPrimitives.ReadInt64LittleEndian(batch[(pos + 8)..]);
        recLen = BinaryPrimitives.ReadUInt16LittleEndian(batch[(pos + 16)..]);
        return recLen >= 20 && pos + recLen <= batch.Length;
    }

    private void DropPending(HostOpenDirectory dir)
    {
        if (dir.Pending is { } pending)
        {
            dir.Pending = null;
            Interlocked.Add(ref _readAheadKept, -dir.PendingLength);
            ArrayPool<byte>.Shared.Return(pending);
        }
    }

    private ulong KnownId(ulong dev, ulong hostIno)
    {
        lock (_nodeLock) return _nodesByKey.TryGetValue((dev, hostIno), out HostNode? n) ? n.Id : 0;
    }

    internal Errno ReleaseDir(HostOpenDirectory dir)
    {
        if (!_dirs.TryRemove(dir, out _)) return Errno.EBADF;
        lock (dir.Gate) DropPending(dir);
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
