using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;

namespace InSpatialFs.Fuse.Transport;

/// <summary>
/// One reader thread's two pipes for spliced READ replies (the data pipe, then the reply pipe), so that a reply's
/// out header, whose len must be 16 + the bytes really read, can go ahead of data whose amount is known only after
/// it was spliced: file → data pipe (n bytes), header with len 16 + n → reply pipe, data pipe → reply pipe (n),
/// reply pipe → /dev/fuse (16 + n, one fuse_dev_splice_write, which takes a whole reply or nothing).
/// Both pipes are O_NONBLOCK | O_CLOEXEC: a full pipe is an error (EAGAIN) that is drained and answered,
/// never a reader blocked forever. Capacity: F_SETPIPE_SZ is capped by /proc/sys/fs/pipe-max-size (1 MiB, 256
/// slots) without CAP_SYS_RESOURCE; a pipe slot holds at most one page of a spliced file, so a READ fits when the
/// pages it spans plus the header's slot fit (<see cref="Fits"/>); bigger requests take the copy path.
/// Not thread-safe: owned by one reader.
/// </summary>
internal sealed unsafe class SplicePipes : IDisposable
{
    private const int OutHeaderSize = 16;
    private static readonly int PageSize = Environment.SystemPageSize;

    private readonly SafeFd _dataRead, _dataWrite, _replyRead, _replyWrite;
    private int _held;
    private int _slotsHeld;

    private SplicePipes(SafeFd dataRead, SafeFd dataWrite, SafeFd replyRead, SafeFd replyWrite, int slots)
    {
        (_dataRead, _dataWrite, _replyRead, _replyWrite) = (dataRead, dataWrite, replyRead, replyWrite);
        Slots = slots;
    }

    /// <summary>Pipe buffers (pages) each of the two pipes holds.</summary>
    public int Slots { get; }

    public int Length => _held;

    /// <summary>Opens both pipes and sizes them to at least <paramref name="wantedBytes"/>, or as close below as allowed.</summary>
    public static Errno TryCreate(int wantedBytes, out SplicePipes? pipes)
    {
        pipes = null;
        // Each pair is closed here when the other fails, else moved into the SplicePipes that owns all four.
#pragma warning disable CA2000
        Errno e = OpenPipe(wantedBytes, out SafeFd? dataRead, out SafeFd? dataWrite, out int dataSlots);
        if (e != Errno.OK)
        {
            return e;
        }

        e = OpenPipe(wantedBytes, out SafeFd? replyRead, out SafeFd? replyWrite, out int replySlots);
#pragma warning restore CA2000
        if (e != Errno.OK)
        {
            dataRead!.Dispose();
            dataWrite!.Dispose();
            return e;
        }

        pipes = new SplicePipes(dataRead!, dataWrite!, replyRead!, replyWrite!, Math.Min(dataSlots, replySlots));
        return Errno.OK;
    }

    private static Errno OpenPipe(int wantedBytes, out SafeFd? read, out SafeFd? write, out int slots)
    {
        read = write = null;
        slots = 0;
        int* fds = stackalloc int[2];
        if (LibC.pipe2(fds, LibC.O_CLOEXEC | LibC.O_NONBLOCK) < 0)
        {
            return ErrnoExtensions.LastPInvoke();
        }

        read = new SafeFd(fds[0]);
        write = new SafeFd(fds[1]);
        // Without CAP_SYS_RESOURCE the kernel refuses sizes above pipe-max-size (EPERM): halve until it agrees.
        for (int size = wantedBytes; size >= 16 * PageSize; size /= 2)
        {
            if (LibC.fcntl(write.Fd, LibC.F_SETPIPE_SZ, size) >= 0)
            {
                break;
            }
        }

        int bytes = LibC.fcntl(write.Fd, LibC.F_GETPIPE_SZ, 0);
        Errno e = ErrnoExtensions.LastPInvoke();
        if (bytes < 0)
        {
            read.Dispose();
            write.Dispose();
            return e;
        }

        slots = bytes / PageSize;
        return Errno.OK;
    }

    /// <summary>Pipe slots a spliced file range takes at most: one per page it touches.</summary>
    public static int PagesSpanned(long offset, long length) =>
        length <= 0 ? 0 : (int)(((offset % PageSize) + length + PageSize - 1) / PageSize);

    /// <summary>Whether a READ of <paramref name="size"/> bytes at <paramref name="offset"/> fits beside the out header.</summary>
    public bool Fits(long offset, uint size) => offset >= 0 && PagesSpanned(offset, size) + 1 <= Slots;

    /// <summary>
    /// Moves exactly <paramref name="length"/> bytes of <paramref name="fd"/> from <paramref name="offset"/> into the
    /// data pipe, fewer only at end of file (<paramref name="moved"/> says how many). The caller keeps
    /// <paramref name="fd"/> open for the call. An error leaves whatever moved in the pipe; the caller drains it.
    /// </summary>
    public Errno SpliceFrom(int fd, long offset, int length, out int moved)
    {
        moved = 0;
        if (length < 0 || offset < 0)
        {
            return Errno.EINVAL;
        }

        int slots = PagesSpanned(offset, length);
        if (_slotsHeld + slots + 1 > Slots)
        {
            return Errno.EFBIG; // would not fit beside the header: the caller's request was not checked with Fits
        }

        long position = offset;
        while (moved < length)
        {
            nint n = LibC.splice(fd, &position, _dataWrite.Fd, null, (nuint)(length - moved), LibC.SPLICE_F_NONBLOCK);
            Errno e = ErrnoExtensions.LastPInvoke();
            if (n > 0)
            {
                moved += (int)n;
                _held += (int)n;
                continue;
            }

            if (n == 0)
            {
                break; // end of file (also a truncate racing the read): the reply is short, with its true length
            }

            if (e != Errno.EINTR)
            {
                return e;
            }
        }

        _slotsHeld += slots;
        return Errno.OK;
    }

    /// <summary>
    /// Sends the held bytes as the OK reply to <paramref name="unique"/> on <paramref name="channel"/>. On any error the
    /// pipes are drained; <paramref name="nothingSent"/> tells whether the kernel can still be answered another way
    /// (the failure came before the reply reached the channel, or the channel refused the whole reply).
    /// </summary>
    public Errno SendReply(ISpliceChannel channel, ulong unique, Span<byte> scratch, out bool nothingSent)
    {
        nothingSent = true;
        int data = _held;
        var header = new FuseOutHeader { Len = (uint)(OutHeaderSize + data), Error = 0, Unique = unique };
        nint wrote = LibC.write(_replyWrite.Fd, (byte*)&header, OutHeaderSize);
        Errno e = ErrnoExtensions.LastPInvoke();
        if (wrote != OutHeaderSize)
        {
            Drain(scratch);
            return wrote < 0 ? e : Errno.EIO;
        }

        int staged = 0;
        while (staged < data)
        {
            nint n = LibC.splice(_dataRead.Fd, null, _replyWrite.Fd, null, (nuint)(data - staged), LibC.SPLICE_F_NONBLOCK);
            e = ErrnoExtensions.LastPInvoke();
            if (n > 0)
            {
                staged += (int)n;
            }
            else if (n == 0 || e != Errno.EINTR)
            {
                Drain(scratch);
                return n == 0 ? Errno.EIO : e;
            }
        }

        e = channel.SpliceReply(_replyRead.Fd, OutHeaderSize + data);
        if (e != Errno.OK)
        {
            // ENOENT/ENODEV: the request is gone (interrupted) or the connection is; anything else was refused whole.
            nothingSent = e is not (Errno.ENOENT or Errno.ENODEV or Errno.ECONNABORTED);
            Drain(scratch);
            return e;
        }

        _held = 0;
        _slotsHeld = 0;
        return Errno.OK;
    }

    /// <summary>Empties both pipes (reads into <paramref name="scratch"/>) so the next request starts clean.</summary>
    public void Drain(Span<byte> scratch)
    {
        DrainOne(_dataRead, scratch);
        DrainOne(_replyRead, scratch);
        _held = 0;
        _slotsHeld = 0;
    }

    private static void DrainOne(SafeFd pipe, Span<byte> scratch)
    {
        fixed (byte* p = scratch)
        {
            while (true)
            {
                nint n = LibC.read(pipe.Fd, p, scratch.Length);
                Errno e = ErrnoExtensions.LastPInvoke();
                if (n > 0 || (n < 0 && e == Errno.EINTR))
                {
                    continue;
                }

                return; // 0 cannot happen while we hold the write end; EAGAIN: empty
            }
        }
    }

    /// <summary>True when both pipes are empty (tests and checks after a failure).</summary>
    public bool IsEmpty
    {
        get
        {
            int dataQueued = 0, replyQueued = 0;
            return LibC.ioctl(_dataRead.Fd, FionRead, &dataQueued) == 0 && LibC.ioctl(_replyRead.Fd, FionRead, &replyQueued) == 0
                && dataQueued == 0 && replyQueued == 0;
        }
    }

    private const ulong FionRead = 0x541B;

    public void Dispose()
    {
        _dataRead.Dispose();
        _dataWrite.Dispose();
        _replyRead.Dispose();
        _replyWrite.Dispose();
    }
}
