using System.Diagnostics;
using InSpatialFs.Fuse;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Proxy.Nodes;
using InSpatialFs.Security;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Identity;
using InSpatialFs.Storage;
using InSpatialFs.Storage.Direct;
using InSpatialFs.Storage.Memory;
using InSpatialFs.Storage.Mounts;
using InSpatialFs.Storage.Posix;

namespace InSpatialFs.Proxy;

// The data of open files: READ (copied or spliced), WRITE, FLUSH, FSYNC, FALLOCATE, LSEEK, COPY_FILE_RANGE. Each goes
// straight to the handle's open-file object; policy was decided at OPEN, so only the first WRITE and the calls that
// allocate are events of their own.
public sealed partial class SecureProxy
{
    public Errno Read(FuseRequest request, ulong nodeId, ulong fh, long offset, Span<byte> buffer, out int bytesRead)
    {
        bytesRead = 0;
        if (!_handles.TryGet(fh, out ProxyHandle handle) || handle.File is not { } file)
        {
            return Errno.EBADF;
        }

        Errno refused = ReadsAdmitted(request, handle, FsOp.Read);
        if (refused != Errno.OK)
        {
            return refused;
        }

        Errno err = file.Read(offset, buffer, out bytesRead);
        if (err == Errno.OK)
        {
            Interlocked.Add(ref handle.BytesRead, bytesRead);
            HoldForRateLimit(request, FsOp.Read, bytesRead);
        }

        return err;
    }

    /// <summary>
    /// Reads were decided at OPEN; once anything may have changed that answer (a policy reload, a blocked process: the
    /// cache generation moves) the next READ on a handle opened before it is decided again, as a WRITE is, and a refusal
    /// holds for the handle. A file forbidden by a reload thus stops being readable through a descriptor opened while it
    /// was allowed, wherever the daemon serves the reads (kernel passthrough files are read by the kernel alone).
    /// One generation compare per READ otherwise. A refusal is an event (<paramref name="op"/>: read, or readdir for a
    /// directory handle's listing), an allowed re-decision is not.
    /// </summary>
    private Errno ReadsAdmitted(FuseRequest request, ProxyHandle handle, FsOp op)
    {
        long generation = CacheGeneration;
        long decidedAt = Volatile.Read(ref handle.ReadsDecidedAt);
        if (Volatile.Read(ref handle.ReadRefused) == 0
            && (decidedAt == generation || Interlocked.CompareExchange(ref handle.ReadsDecidedAt, generation, decidedAt) != decidedAt))
        {
            return Errno.OK;
        }

        // Held refused while deciding: a read racing this one is decided too, not waved through.
        Volatile.Write(ref handle.ReadRefused, 1);
        FsEvent e = NewEvent(request, op, handle.Node);
        e.Flags = handle.Flags;
        Errno denied = Admit(request, e, _mounts[handle.Node.Mount], out _);
        Volatile.Write(ref handle.ReadRefused, denied != Errno.OK ? 1 : 0);
        return denied;
    }

    public bool SplicedReadsWanted => _spliceDirectReads;

    /// <summary>
    /// READ of a DirectFS file served through the daemon (passthrough unavailable, or an open the io-mode rules keep
    /// mediated) with --direct-fallback splice: the answer names the open file's descriptor, leased until the
    /// protocol server has spliced from it. Policy was decided at OPEN; the bytes count in <see cref="ReadSpliced"/>.
    /// </summary>
    public bool TryReadSpliced(FuseRequest request, ulong nodeId, ulong fh, long offset, int size, out SplicedReadSource source, out Errno result)
    {
        source = default;
        result = Errno.OK;
        if (!_spliceDirectReads || !_handles.TryGet(fh, out ProxyHandle handle) || handle.BackingId != 0
            || !_mounts[handle.Node.Mount].Direct || handle.File is not ISplicedReads spliced)
        {
            return false;
        }

        if (offset < 0)
        {
            result = Errno.EINVAL;
        }
        else if ((result = ReadsAdmitted(request, handle, FsOp.Read)) != Errno.OK)
        {
            // refused since the open (see ReadsAdmitted)
        }
        else if (!SplicedReadSource.TryLease(spliced.SpliceDescriptor, offset, size, out source))
        {
            result = Errno.EBADF; // released meanwhile
        }

        return true;
    }

    /// <summary>The byte counters and the data rate limit of a spliced READ, as on the copy path.</summary>
    public void ReadSpliced(FuseRequest request, ulong fh, int bytes)
    {
        if (_handles.TryGet(fh, out ProxyHandle handle))
        {
            Interlocked.Add(ref handle.BytesRead, bytes);
        }

        HoldForRateLimit(request, FsOp.Read, bytes);
    }

    public Errno Write(FuseRequest request, ulong nodeId, ulong fh, long offset, ReadOnlySpan<byte> data, uint writeFlags, out int bytesWritten)
    {
        bytesWritten = 0;
        if (!_handles.TryGet(fh, out ProxyHandle handle) || handle.File is not { } file)
        {
            return Errno.EBADF;
        }

        Errno refused = BeginGrowth(handle.Node, offset + data.Length, 0, out QuotaHold quota);
        if (refused != Errno.OK)
        {
            // Not a policy decision but a refusal the container met all the same: recorded like any failed operation.
            FsEvent e = NewEvent(request, FsOp.Write, handle.Node);
            e.Size = data.Length;
            e.Decision = Decision.Allow;
            return Complete(e, refused, Stopwatch.GetTimestamp());
        }

        Errno result = WriteAdmitted(request, handle, file, offset, data, writeFlags, out bytesWritten);
        EndGrowth(handle.Node, quota); // a failed or short write settles at what it really allocated
        return result;
    }

    private Errno WriteAdmitted(FuseRequest request, ProxyHandle handle, IOpenFile file, long offset, ReadOnlySpan<byte> data, uint writeFlags, out int bytesWritten)
    {
        bytesWritten = 0;

        // The handle was admitted for writing at OPEN; the first WRITE is still an event of its own (rules on overwrites
        // key on it), and so is the first after anything that may change the answer (a policy reload, a blocked process:
        // the cache generation moves). Writes in between are only counted and reported at RELEASE. A refusal holds: the
        // writes after it are decided as well, so a repeated write cannot pass where the first was refused.
        long generation = CacheGeneration;
        long decidedAt = Volatile.Read(ref handle.WritesDecidedAt);
        if (Volatile.Read(ref handle.WriteRefused) != 0
            || (decidedAt != generation && Interlocked.CompareExchange(ref handle.WritesDecidedAt, generation, decidedAt) == decidedAt))
        {
            // Held refused while deciding: a write racing this one is decided too, not counted through.
            Volatile.Write(ref handle.WriteRefused, 1);
            FsEvent e = NewEvent(request, FsOp.Write, handle.Node);
            e.Size = data.Length;
            Errno denied = Admit(request, e, _mounts[handle.Node.Mount], out _);
            Volatile.Write(ref handle.WriteRefused, denied != Errno.OK ? 1 : 0);
            if (denied != Errno.OK)
            {
                return denied;
            }

            long started = Stopwatch.GetTimestamp();
            Errno first = file.Write(offset, data, out bytesWritten);
            Interlocked.Add(ref handle.BytesWritten, bytesWritten);
            if (first == Errno.OK)
            {
                KillSuidGidAfterWrite(request, handle, writeFlags);
            }

            return Complete(e, first, started);
        }

        Errno err = file.Write(offset, data, out bytesWritten);
        if (err == Errno.OK)
        {
            Interlocked.Add(ref handle.BytesWritten, bytesWritten);
            KillSuidGidAfterWrite(request, handle, writeFlags);
            HoldForRateLimit(request, FsOp.Write, bytesWritten);
        }

        return err;
    }

    /// <summary>Throttling delays the reply, never fails it (an interrupt ends the wait early).</summary>
    private void HoldForRateLimit(FuseRequest request, FsOp op, int bytes)
    {
        TimeSpan delay = _gate.DataDelay(request.Pid, op, bytes);
        if (delay > TimeSpan.Zero)
        {
            request.WaitForInterrupt(delay);
        }
    }

    /// <summary>
    /// With HANDLE_KILLPRIV_V2 the kernel leaves clearing set-id bits to us and flags the writes and O_TRUNC opens that
    /// must do it (a caller without CAP_FSETID): a setuid file modified that way loses the bit, as on any local
    /// filesystem, or a container could turn a root-owned setuid binary into its own. The backends apply
    /// FATTR_KILL_SUIDGID with the kernel's rule (setgid only with group execute).
    /// </summary>
    private void KillSetIdBits(ProxyNode node, in Caller caller)
    {
        IFileSystemBackend backend = BackendOf(node);
        if (backend.GetAttr(node.Ino, out FuseAttr attr) != Errno.OK || (attr.Mode & (LibC.S_ISUID | LibC.S_ISGID)) == 0)
        {
            return;
        }

        backend.SetAttr(node.Ino, new AttrChange { KillSetId = true }, caller, out _);
    }

    private void KillSuidGidAfterWrite(FuseRequest request, ProxyHandle handle, uint writeFlags)
    {
        if ((writeFlags & FuseConstants.WriteKillSuidgid) != 0)
        {
            KillSetIdBits(handle.Node, CallerOf(request));
        }
    }

    public Errno Flush(FuseRequest request, ulong nodeId, ulong fh) =>
        _handles.TryGet(fh, out ProxyHandle handle) && handle.File is { } file ? file.Flush() : Errno.EBADF;

    public Errno Fsync(FuseRequest request, ulong nodeId, ulong fh, bool dataOnly) =>
        _handles.TryGet(fh, out ProxyHandle handle) && handle.File is { } file ? file.Fsync(dataOnly) : Errno.EBADF;

    public Errno Fallocate(FuseRequest request, ulong nodeId, ulong fh, int mode, long offset, long length)
    {
        Errno bad = FallocateMode.Check(mode, offset, length); // the kernel checked already; the backends check again
        if (bad != Errno.OK)
        {
            return bad;
        }

        if (!_handles.TryGet(fh, out ProxyHandle handle) || handle.File is not { } file)
        {
            return Errno.EBADF;
        }

        FsEvent e = NewEvent(request, FsOp.Fallocate, handle.Node);
        e.Flags = mode;
        e.Size = length;
        Errno err = Admit(request, e, _mounts[handle.Node.Mount], out _);
        if (err != Errno.OK)
        {
            return err;
        }

        // Every mode but punching a hole may allocate the whole range, KEEP_SIZE included: disk quotas count blocks.
        long allocating = (mode & FallocateMode.PunchHole) != 0 ? 0 : length;
        if ((err = BeginGrowth(handle.Node, -1, allocating, out QuotaHold quota)) != Errno.OK)
        {
            return Complete(e, err, Stopwatch.GetTimestamp());
        }

        long started = Stopwatch.GetTimestamp();
        err = file.Fallocate(mode, offset, length);
        EndGrowth(handle.Node, quota);
        // A local filesystem drops set-id bits on fallocate by a caller without CAP_FSETID (file_modified), as on a write;
        // FUSE flags writes for that, never fallocate, and the host kernel sees only the daemon's CAP_FSETID.
        if (err == Errno.OK && HasSetIdBits(handle.Node) && !ThreadCapabilities.HasEffective(request.Pid, ThreadCapabilities.Fsetid))
        {
            KillSetIdBits(handle.Node, CallerOf(request));
        }

        return Complete(e, err, started);
    }

    public Errno Lseek(FuseRequest request, ulong nodeId, ulong fh, long offset, int whence, out long result)
    {
        result = 0;
        return _handles.TryGet(fh, out ProxyHandle handle) && handle.File is { } file
            ? file.Lseek(offset, whence, out result)
            : Errno.EBADF;
    }

    public Errno CopyFileRange(FuseRequest request, ulong nodeIn, ulong fhIn, long offsetIn, ulong nodeOut, ulong fhOut, long offsetOut, long length, ulong flags, out long copied)
    {
        copied = 0;
        if (!_handles.TryGet(fhIn, out ProxyHandle source) || !_handles.TryGet(fhOut, out ProxyHandle destination)
            || source.File is not { } input || destination.File is not { } output)
        {
            return Errno.EBADF;
        }

        if (flags != 0)
        {
            return Errno.EINVAL;
        }

        if (source.Node.Mount != destination.Node.Mount)
        {
            return Errno.EXDEV; // the kernel falls back to read + write through both mounts
        }

        FsEvent e = NewEvent(request, FsOp.CopyFileRange, source.Node);
        e.Target = _nodes.PathOf(destination.Node); // the write side: the gate checks it as a write
        e.Object = IdentityOf(destination.Node); // the object this op writes
        e.Size = length;
        Errno err = Admit(request, e, _mounts[destination.Node.Mount], out _);
        if (err != Errno.OK)
        {
            return err;
        }

        if ((err = BeginGrowth(destination.Node, offsetOut + length, 0, out QuotaHold quota)) != Errno.OK)
        {
            return Complete(e, err, Stopwatch.GetTimestamp());
        }

        long started = Stopwatch.GetTimestamp();
        err = BackendOf(source.Node).CopyFileRange(input, offsetIn, output, offsetOut, length, out copied);
        EndGrowth(destination.Node, quota);
        e.Size = copied;
        return Complete(e, err, started);
    }
}
