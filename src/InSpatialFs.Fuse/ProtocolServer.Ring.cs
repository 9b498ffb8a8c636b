using InSpatialFs.Fuse.Abi;
using InSpatialFs.Fuse.Transport;
using InSpatialFs.Interop;

namespace InSpatialFs.Fuse;

// FUSE over io_uring: ring readers, started after INIT once both sides agreed on FUSE_OVER_IO_URING. Each ring reader is
// a thread with its own io_uring and one ring entry of one queue (a CPU); it runs the same dispatch as the /dev/fuse
// readers, and sits in the same reader table, so INTERRUPT, idleness and the request counts see it.
// Once the INIT reply has agreed to io_uring, the kernel holds every request until each queue has a registered entry
// (and falls back to /dev/fuse only if a registration is refused), so the rings are made before that reply asks for it
// (PrepareRings) and registered right after it. FORGET and INTERRUPT always come on /dev/fuse.
public sealed partial class ProtocolServer
{
    private int _ringQueues;
    private int _ringEntries;
    private string? _ringUnavailable;

    /// <summary>The kernel's ring queues (one per possible CPU; 0 without IoUring), counted when the server is made: the reader table has room
    /// for <see cref="ProtocolServerOptions.RingThreadsPerQueue"/> ring readers on each.</summary>
    private readonly int _plannedRingQueues;

    /// <summary>Ring entries serving (0 while the connection runs on /dev/fuse alone).</summary>
    public int RingEntries => Volatile.Read(ref _ringEntries);

    /// <summary>The kernel's ring queues (one per possible CPU) once rings were started; else 0.</summary>
    public int RingQueues => Volatile.Read(ref _ringQueues);

    /// <summary>Why io_uring was asked for and is not used (requests stay on /dev/fuse); null otherwise.</summary>
    public string? RingUnavailable => Volatile.Read(ref _ringUnavailable);

    /// <summary>Requests the ring entries received so far.</summary>
    public long RingRequests => SumOverReaders(static r => r.Ring is { } ring ? Volatile.Read(ref ring.Requests) : 0);

    /// <summary>The ring entries made at INIT (see <see cref="PrepareRings"/>), handed to their threads after the reply.</summary>
    private FuseRingChannel[]? _preparedRings;

    /// <summary>
    /// At INIT, before the reply asks for FUSE_OVER_IO_URING: makes every ring entry's io_uring. Once the kernel has agreed
    /// to io_uring it holds every request until each queue has a registered entry, so a ring that could not be made after
    /// the reply (io_uring refused by sysctl or a seccomp filter, ENOMEM) would hang the mount; made first, a refusal
    /// only leaves io_uring out of the reply. False, with the reason in <see cref="RingUnavailable"/>, when one cannot be made.
    /// </summary>
    private bool PrepareRings()
    {
        if (_transport is not IFuseRingTransport rings)
        {
            RingsUnavailable("this transport has no io_uring");
            return false;
        }

        int queues = _plannedRingQueues;
        var made = new FuseRingChannel[queues * _options.RingThreadsPerQueue];
        for (int i = 0; i < made.Length; i++)
        {
            try
            {
                made[i] = (FuseRingChannel)rings.OpenRingChannel(i % queues, _options.RingPayloadSize); // slot i: queue i % queues
            }
            catch (IOException ex)
            {
                for (int j = 0; j < i; j++)
                {
                    made[j].Dispose();
                }

                RingsUnavailable(ex.Message);
                return false;
            }
        }

        _preparedRings = made;
        return true;
    }

    /// <summary>After INIT (or adoption): a thread per prepared ring entry, which registers it and serves its requests.</summary>
    private void StartRings(FuseConnectionInfo connection)
    {
        if (!_options.IoUring)
        {
            return;
        }

        if ((connection.ReplyFlags & (ulong)FuseInitFlags.OverIoUring) == 0)
        {
            if ((connection.KernelFlags & (ulong)FuseInitFlags.OverIoUring) == 0 && RingUnavailable is null)
            {
                RingsUnavailable(NotOffered); // an adopted connection (no INIT of ours): said here
            }

            foreach (FuseRingChannel unused in _preparedRings ?? [])
            {
                unused.Dispose(); // made, and then left out of the reply (a kernel without INIT_EXT cannot take it)
            }

            _preparedRings = null;
            return; // else PrepareRings said why it was left out of the reply
        }

        // An adopted connection that negotiated io_uring earlier: its requests wait for ring entries, so no ring is no service.
        FuseRingChannel[] rings = _preparedRings ?? (PrepareRings() ? _preparedRings! :
            throw new IOException($"the connection takes its requests over io_uring and no ring can be made: {RingUnavailable}"));
        _preparedRings = null;
        int queues = _plannedRingQueues;
        Volatile.Write(ref _ringQueues, queues);
        for (int i = 0; i < rings.Length; i++)
        {
            FuseRingChannel ring = rings[i];
#pragma warning disable CA2000 // the reader and its ring belong to the thread started below, which disposes both as it ends (RingMain)
            var reader = new Reader(_deviceReaders + i, ring, _options, ring.RequestBuffer) { Ring = ring };
#pragma warning restore CA2000
            Volatile.Write(ref _readers[_deviceReaders + i], reader);
            Interlocked.Increment(ref _running);
            new Thread(RingMain, maxStackSize: 1 << 20) { IsBackground = true, Name = $"fuse-ring-{ring.Queue}.{i / queues}" }.Start(reader);
            Interlocked.Increment(ref _ringEntries);
        }

        FuseLog.RingsStarted(_logger, RingEntries, queues, _options.RingThreadsPerQueue);
    }

    private const string NotOffered = "the kernel did not offer FUSE_OVER_IO_URING at INIT (is /sys/module/fuse/parameters/enable_uring Y?)";

    private void RingsUnavailable(string reason)
    {
        Volatile.Write(ref _ringUnavailable, reason);
        FuseLog.RingsUnavailable(_logger, reason);
    }

    private void RingMain(object? state)
    {
        var reader = (Reader)state!;
        FuseRingChannel ring = reader.Ring!;
        try
        {
            // The kernel queues a request on the queue of the CPU it was issued from; serving it on that CPU keeps the
            // caller's and the server's data in one cache (libfuse does the same). Not fatal: a cpuset may exclude it.
            ring.PinToQueueCpu();
            while (true)
            {
                Errno e = ring.Read(reader.RequestBuffer.Span, out reader.FrameOffset, out int length);
                if (e == Errno.OK)
                {
                    if (!_ringsServe)
                    {
                        _ringsServe = true; // the kernel's ring is ready: it sends /dev/fuse only forgets and interrupts now
                    }

                    Dispatch(reader, length);
                }
                else if (e == Errno.ENODEV)
                {
                    FuseLog.ReaderStopped(_logger, reader.Index, e);
                    return;
                }
                else if (Volatile.Read(ref ring.Requests) == 0)
                {
                    // The kernel refused the registration: it then keeps the connection on /dev/fuse, so this is no
                    // failure of the connection, only of the ring.
                    RingsUnavailable($"ring queue {ring.Queue}: registration refused: {e}");
                    return;
                }
                else
                {
                    // A ring that served and broke: its queue may be left with no entry, where requests would wait forever.
                    throw new IOException($"FUSE ring queue {ring.Queue} failed: {e}");
                }
            }
        }
        catch (Exception ex)
        {
            ReaderCrashed(reader, ex);
        }
        finally
        {
            reader.Dispose();
            ring.Dispose();
            ReaderEnded();
        }
    }
}
