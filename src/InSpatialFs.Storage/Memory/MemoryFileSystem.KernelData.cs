using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Posix;

namespace InSpatialFs.Storage.Memory;

// Regular-file data kept in the private tmpfs (DataVolume): the I/O half of read, write, fallocate, lseek and
// truncate for nodes whose data is a KernelFile, and the attributes the kernel keeps for them (size, blocks, atime,
// mtime). The kernel enforces the volume's size as ENOSPC; the namespace lock rules are those of MemoryFileSystem.cs,
// and the FileData lock of a KernelFile is its monitor, taken only where two syscalls must act as one (O_APPEND).
public sealed unsafe partial class MemoryFileSystem
{
    /// <summary>Whether file data lives in kernel memory (the private tmpfs) rather than in managed pages.</summary>
    public bool KernelData => _volume is not null;

    /// <summary>
    /// Set by the proxy once the kernel accepted FUSE passthrough: opens of files in kernel memory then offer a
    /// duplicate of their descriptor (<see cref="IOpenFile.DuplicatePassthroughFd"/>), which the proxy owns and closes.
    /// Without it nothing is duplicated and every read and write comes through the daemon.
    /// </summary>
    public bool OfferPassthrough
    {
        get => Volatile.Read(ref _offerPassthrough);
        set => Volatile.Write(ref _offerPassthrough, value && _volume is not null);
    }

    private bool _offerPassthrough;

    /// <summary>Why file data is in managed pages although kernel memory was asked for (OK otherwise).</summary>
    public Errno KernelDataError { get; private set; }

    /// <summary>Bytes of file data held by the kernel (0 when data is in managed pages).</summary>
    private long KernelBytes => _volume?.UsedBytes ?? 0;

    private static Errno KernelRead(KernelFile file, long offset, Span<byte> buffer, out int bytesRead)
    {
        bytesRead = 0;
        int fd = file.Descriptor;
        fixed (byte* p = buffer)
        {
            while (bytesRead < buffer.Length)
            {
                nint n = LibC.pread(fd, p + bytesRead, buffer.Length - bytesRead, offset + bytesRead);
                if (n < 0)
                {
                    var error = ErrnoExtensions.LastPInvoke();
                    if (error == Errno.EINTR)
                    {
                        continue;
                    }
                    return bytesRead > 0 ? Errno.OK : error;
                }
                if (n == 0)
                {
                    break;
                }
                bytesRead += (int)n;
            }
        }
        return Errno.OK;
    }

    /// <summary>A short count when the volume fills part way (the caller's next write gets ENOSPC), as tmpfs does.</summary>
    private static Errno KernelWrite(KernelFile file, bool append, long offset, ReadOnlySpan<byte> data, out int bytesWritten)
    {
        bytesWritten = 0;
        if (!append)
        {
            return KernelWriteAt(file, offset, data, out bytesWritten);
        }
        // The end of file and the write at it are one step for writers through the daemon.
        lock (file)
        {
            var error = file.Stat(out var stat);
            return error != Errno.OK ? error : KernelWriteAt(file, (long)stat.Size, data, out bytesWritten);
        }
    }

    private static Errno KernelWriteAt(KernelFile file, long offset, ReadOnlySpan<byte> data, out int bytesWritten)
    {
        bytesWritten = 0;
        if (data.IsEmpty)
        {
            return Errno.OK;
        }
        if (offset >= MaxFileSize || data.Length > MaxFileSize - offset)
        {
            return Errno.EFBIG;
        }
        int fd = file.Descriptor;
        fixed (byte* p = data)
        {
            while (bytesWritten < data.Length)
            {
                nint n = LibC.pwrite(fd, p + bytesWritten, data.Length - bytesWritten, offset + bytesWritten);
                if (n < 0)
                {
                    var error = ErrnoExtensions.LastPInvoke();
                    if (error == Errno.EINTR)
                    {
                        continue;
                    }
                    return bytesWritten > 0 ? Errno.OK : error;
                }
                bytesWritten += (int)n;
            }
        }
        return Errno.OK;
    }

    /// <summary>ftruncate: also sets mtime and ctime, as every truncate through this backend does.</summary>
    private static Errno KernelTruncate(KernelFile file, long size)
        => file.With(size, static (fd, size) => LibC.ftruncate(fd, size) == 0 ? Errno.OK : ErrnoExtensions.LastPInvoke());

    /// <summary>The five modes FallocateMode admits. tmpfs has no ZERO_RANGE: a hole punched and allocated again is the same.</summary>
    private static Errno KernelFallocate(KernelFile file, int mode, long offset, long length)
    {
        int fd = file.Descriptor;
        if ((mode & FallocateMode.ZeroRange) == 0)
        {
            return LibC.fallocate(fd, mode, offset, length) == 0 ? Errno.OK : ErrnoExtensions.LastPInvoke();
        }
        if (LibC.fallocate(fd, mode, offset, length) == 0)
        {
            return Errno.OK;
        }
        var error = ErrnoExtensions.LastPInvoke();
        if (error != Errno.EOPNOTSUPP)
        {
            return error;
        }
        int keep = mode & FallocateMode.KeepSize;
        // Allocate first so a full volume fails before anything is zeroed; the punch then frees the old pages and the
        // second allocation takes them back (the space is already counted as the range's).
        if (LibC.fallocate(fd, keep, offset, length) != 0
            || LibC.fallocate(fd, FallocateMode.PunchHole | FallocateMode.KeepSize, offset, length) != 0
            || LibC.fallocate(fd, FallocateMode.KeepSize, offset, length) != 0)
        {
            return ErrnoExtensions.LastPInvoke();
        }
        return Errno.OK;
    }

    private static Errno KernelSeek(KernelFile file, long offset, int whence, out long result)
    {
        result = 0;
        if (whence is LibC.SEEK_SET or LibC.SEEK_CUR)
        {
            result = offset; // the kernel owns the file position; the offset it sends is already absolute
            return offset < 0 ? Errno.EINVAL : Errno.OK;
        }
        if (whence == LibC.SEEK_END)
        {
            var error = file.Stat(out var stat);
            result = (long)stat.Size + offset;
            return error != Errno.OK ? error : result < 0 ? Errno.EINVAL : Errno.OK;
        }
        if (whence is not (LibC.SEEK_DATA or LibC.SEEK_HOLE))
        {
            return Errno.EINVAL;
        }
        if (offset < 0)
        {
            return Errno.ENXIO;
        }
        // SEEK_DATA/SEEK_HOLE on the data file: tmpfs answers from its page cache and swap map; the descriptor's
        // position is never used for I/O (pread/pwrite), so moving it is harmless.
        result = LibC.lseek(file.Descriptor, offset, whence);
        return result >= 0 ? Errno.OK : ErrnoExtensions.LastPInvoke();
    }

    /// <summary>Size, blocks and data times from the kernel's file; ctime is the later of the node's and the data's.</summary>
    private static void FillKernelAttr(MemoryNode node, KernelFile file, ref FuseAttr attr)
    {
        if (file.Stat(out var stat) != Errno.OK)
        {
            SetTimes(node, ref attr);
            return;
        }
        attr.Size = stat.Size;
        attr.Blocks = stat.Blocks;
        attr.Atime = (ulong)stat.Atime.Sec;
        attr.AtimeNsec = stat.Atime.Nsec;
        attr.Mtime = (ulong)stat.Mtime.Sec;
        attr.MtimeNsec = stat.Mtime.Nsec;
        var dataCtime = new Timestamp(stat.Ctime.Sec, stat.Ctime.Nsec);
        var ctime = dataCtime.IsAfter(node.Ctime) ? dataCtime : node.Ctime;
        attr.Ctime = (ulong)ctime.Seconds;
        attr.CtimeNsec = ctime.Nanoseconds;
    }

    /// <summary>Namespace write lock held. Applies atime and mtime (set in <paramref name="node"/> already) to the data file.</summary>
    private void SetKernelTimes(MemoryNode node, bool atime, bool mtime)
    {
        if (node.Data is not { } file || (!atime && !mtime))
        {
            return;
        }
        var times = stackalloc TimeSpec[2];
        times[0] = atime ? new TimeSpec { Sec = node.Atime.Seconds, Nsec = node.Atime.Nanoseconds } : new TimeSpec { Nsec = LibC.UTIME_OMIT };
        times[1] = mtime ? new TimeSpec { Sec = node.Mtime.Seconds, Nsec = node.Mtime.Nanoseconds } : new TimeSpec { Nsec = LibC.UTIME_OMIT };
        _volume!.SetTimes(file.Id, times);
    }

    /// <summary>
    /// copy_file_range between two files in kernel memory: the kernel moves the pages, no daemon buffer in between.
    /// False when it does not apply (a file in managed pages, a handle the chunked path must refuse, an append-only
    /// destination, a range past the size limit, or a kernel that cannot copy these two files): the caller copies
    /// in chunks, which also gives the errors.
    /// </summary>
    private bool TryKernelCopy(OpenFile inFile, long offsetIn, OpenFile outFile, long offsetOut, long length, out long copied, out Errno error)
    {
        copied = 0;
        error = Errno.OK;
        if (_volume is null || offsetOut >= MaxFileSize || length > MaxFileSize - offsetOut)
        {
            return false;
        }
        error = RefusedIfWriteDropsCapability(outFile);
        if (error != Errno.OK)
        {
            return true;
        }
        MemoryNode target;
        _namespace.EnterReadLock();
        try
        {
            if (GetFileHandle(inFile, out var input) != Errno.OK || GetFileHandle(outFile, out var output) != Errno.OK
                || input.Node.Data is not { } source || output.Node.Data is not { } destination
                || (input.Flags & LibC.O_ACCMODE) == LibC.O_WRONLY || (output.Flags & LibC.O_ACCMODE) == LibC.O_RDONLY
                || (output.Flags & LibC.O_APPEND) != 0)
            {
                return false;
            }
            target = output.Node;
            long inPos = offsetIn, outPos = offsetOut;
            while (copied < length)
            {
                nint n = LibC.copy_file_range(source.Descriptor, &inPos, destination.Descriptor, &outPos, (nint)Math.Min(length - copied, 1L << 30), 0);
                if (n < 0)
                {
                    var failed = ErrnoExtensions.LastPInvoke();
                    if (failed == Errno.EINTR)
                    {
                        continue;
                    }
                    if (copied > 0)
                    {
                        break;
                    }
                    if (failed is Errno.EXDEV or Errno.EOPNOTSUPP or Errno.EINVAL)
                    {
                        return false;
                    }
                    error = failed; // ENOSPC and the like, as a write would answer
                    return true;
                }
                if (n == 0)
                {
                    break;
                }
                copied += n;
            }
            if (copied == 0 || target.Xattrs is null || FindXattr(target, XattrName.Capability) < 0)
            {
                return true;
            }
        }
        finally
        {
            _namespace.ExitReadLock();
        }
        // The copy wrote into a file with capabilities: dropped as a write drops them.
        _namespace.EnterWriteLock();
        try
        {
            DropCapabilityLocked(target);
        }
        finally
        {
            EndWrite();
        }
        return true;
    }

    /// <summary>Sets the data file's mtime (and so ctime) to now.</summary>
    private void TouchKernelData(KernelFile file)
    {
        var times = stackalloc TimeSpec[2];
        times[0] = new TimeSpec { Nsec = LibC.UTIME_OMIT };
        times[1] = new TimeSpec { Nsec = LibC.UTIME_NOW };
        _volume!.SetTimes(file.Id, times);
    }

    /// <summary>Namespace lock held. Creates the data file of a new regular node (ENOSPC when the volume has no inode left).</summary>
    private Errno NewKernelFile(ulong id, out KernelFile? file)
    {
        file = null;
        if (_volume is null)
        {
            return Errno.OK;
        }
        var error = _volume.Create(id);
        if (error != Errno.OK)
        {
            return error;
        }
        file = new KernelFile(_volume, id);
        return Errno.OK;
    }
}
