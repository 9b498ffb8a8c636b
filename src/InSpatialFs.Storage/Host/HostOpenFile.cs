using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Direct;
using InSpatialFs.Storage.Posix;
using static InSpatialFs.Interop.LibC;

namespace InSpatialFs.Storage.Host;

/// <summary>
/// An open file of a host backend: a real descriptor reopened from its node (never by name), held until
/// <see cref="Release"/>. Each call borrows the descriptor, so a RELEASE racing a READ cannot close it under the read;
/// after the release the borrow fails and the call answers EBADF.
/// </summary>
internal sealed unsafe class HostOpenFile(HostFileSystem fs, HostNode node, SafeFd fd) : IOpenFile, ISplicedReads
{
    public HostFileSystem Fs { get; } = fs;

    public HostNode Node { get; } = node;

    public SafeFd Fd { get; } = fd;

    /// <summary>Every WRITE reaches the host file before it is answered and the descriptor is closed at RELEASE, so a
    /// FLUSH at close() has nothing to do: the kernel is told not to send it (one round trip less per close).</summary>
    public FopenFlags OpenFlags => FopenFlags.NoFlush;

    public Errno Read(long offset, Span<byte> buffer, out int bytesRead)
    {
        bytesRead = 0;
        if (!FdLease.TryBorrow(Fd, out FdLease lease)) return Errno.EBADF;
        using var l = lease;
        fixed (byte* b = buffer)
        {
            nint n = pread(l.Fd, b, buffer.Length, offset);
            if (n < 0) return ErrnoExtensions.LastPInvoke();
            bytesRead = (int)n;
        }
        return Errno.OK;
    }

    public SafeFd SpliceDescriptor => Fd;

    public Errno Write(long offset, ReadOnlySpan<byte> data, out int bytesWritten)
    {
        bytesWritten = 0;
        if (Fs.ReadOnly) return Errno.EROFS;
        if (!FdLease.TryBorrow(Fd, out FdLease lease)) return Errno.EBADF;
        using var l = lease;
        fixed (byte* b = data)
        {
            nint n = pwrite(l.Fd, b, data.Length, offset);
            if (n < 0) return ErrnoExtensions.LastPInvoke();
            bytesWritten = (int)n;
        }
        return Errno.OK;
    }

    public Errno Flush() => Fd.IsClosed ? Errno.EBADF : Errno.OK;

    public Errno Fsync(bool dataOnly)
    {
        if (!FdLease.TryBorrow(Fd, out FdLease lease)) return Errno.EBADF;
        using var l = lease;
        int rc = dataOnly ? fdatasync(l.Fd) : fsync(l.Fd);
        return rc == 0 ? Errno.OK : ErrnoExtensions.LastPInvoke();
    }

    public Errno Fallocate(int mode, long offset, long length)
    {
        if (Fs.ReadOnly) return Errno.EROFS;
        // Every mode FUSE forwards goes to the host filesystem, which answers for what it lacks (tmpfs: ZERO_RANGE).
        Errno bad = FallocateMode.Check(mode, offset, length);
        if (bad != Errno.OK) return bad;
        if (!FdLease.TryBorrow(Fd, out FdLease lease)) return Errno.EBADF;
        using var l = lease;
        return fallocate(l.Fd, mode, offset, length) == 0 ? Errno.OK : ErrnoExtensions.LastPInvoke();
    }

    public Errno Lseek(long offset, int whence, out long result)
    {
        result = 0;
        if (!FdLease.TryBorrow(Fd, out FdLease lease)) return Errno.EBADF;
        using var l = lease;
        long r = lseek(l.Fd, offset, whence);
        if (r < 0) return ErrnoExtensions.LastPInvoke();
        result = r;
        return Errno.OK;
    }

    /// <summary>A DirectFS backend offers its descriptor to the kernel; a plain host backend keeps data mediated.</summary>
    public SafeFd? DuplicatePassthroughFd()
    {
        if (!Fs.Direct || !FdLease.TryBorrow(Fd, out FdLease lease)) return null;
        using var l = lease;
        int dup = fcntl(l.Fd, F_DUPFD_CLOEXEC, 0);
        return dup >= 0 ? new SafeFd(dup) : null;
    }

    public Errno Release() => Fs.ReleaseFile(this) ? Errno.OK : Errno.EBADF;
}

/// <summary>
/// An open directory of a host backend: its own O_RDONLY descriptor, read with getdents64 as READDIR asks (no copy
/// of the listing). <see cref="Position"/> is the host cookie the descriptor stands at (-1: unknown, seek before reading).
/// </summary>
internal sealed class HostOpenDirectory(HostFileSystem fs, HostNode node, SafeFd fd) : IOpenDirectory
{
    public ulong ChangeStamp => Fs.ChangeStampOf(this);

    /// <summary>A READDIR has read from the descriptor (guarded by <see cref="Gate"/>): too late to take a stamp.</summary>
    public bool Listed;

    /// <summary>The change stamp once taken (<see cref="Stamped"/>; guarded by <see cref="Gate"/>).</summary>
    public ulong Stamp;

    public bool Stamped;

    public HostFileSystem Fs { get; } = fs;

    public HostNode Node { get; } = node;

    public SafeFd Fd { get; } = fd;

    public readonly Lock Gate = new();

    /// <summary>The cookie (d_off) after the last entry handed out: where the descriptor's getdents stream stands.</summary>
    public long Position;

    /// <summary>
    /// The last getdents batch, kept while part of it is still to be handed out (a pooled buffer; null when none). The
    /// next READDIR at <see cref="Position"/> starts at <see cref="PendingStart"/>; one at a cookie inside the batch (a
    /// reply that had no room for entries this stream already handed to the proxy) starts after that entry. Either way
    /// nothing is sought back and read again.
    /// </summary>
    public byte[]? Pending;

    public int PendingLength;

    /// <summary>Where in <see cref="Pending"/> the entries not yet handed out begin.</summary>
    public int PendingStart;

    public Errno ReadDir(long offset, IDirectoryEntrySink sink) => Fs.ReadDir(this, offset, sink);

    public Errno FsyncDir(bool dataOnly) => Fs.FsyncDir(this, dataOnly);

    public Errno Release() => Fs.ReleaseDir(this);
}
