using InSpatialFs.Fuse.Abi;
using InSpatialFs.Fuse.Transport;
using InSpatialFs.Interop;

namespace InSpatialFs.Fuse;

// FUSE over io_uring: ring readers, started after INIT once both sides agreed on FUSE_OVER_IO_URING. Each ring reader is
// a thread with its own io_uring and one ring entry of one queue (a CPU); it runs the same dispatch as the /dev/fuse
// readers, and sits in the same reader table, so INTERRUPT, idleness and the request counts see it.
// The kernel switches a connection to its rings only when every queue has an entry: until then, or if a ring cannot be
// made at all, every request keeps coming on /dev/fuse. FORGET and INTERRUPT always do.
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

    /// <summary>The kernel's ring queues (one per possible CPU) when rings serve; else 0.</summary>
    public int RingQueues => Volatile.Read(ref _ringQueues);

    /// <summary>Why io_uring was asked for and is not used (requests stay on /dev/fuse); null otherwise.</summary>
    public string? RingUnavailable => Volatile.Read(ref _ringUnavailable);

    /// <summary>Requests the ring entries received so far.</summary>
    public long RingRequests => SumOverReaders(static r => r.Ring is { } ring ? Volatile.Read(ref ring.Requests) : 0);

    private void StartRings(FuseConnectionInfo connection)
    {
        if (!_options.IoUring)
        {
            return;
        }

        if ((connection.ReplyFlags & (ulong)FuseInitFlags.OverIoUring) == 0)
        {
            RingsUnavailable("the kernel did not offer FUSE_OVER_IO_URING at INIT (is /sys/module/fuse/parameters/enable_uring Y?)");
            return;
        }

        if (_transport is not IFuseRingTransport rings)
        {
            RingsUnavailable("this transport has no io_uring");
            return;
        }

        int perQueue = _options.RingThreadsPerQueue;
        int queues = _plannedRingQueues;
        for (int round = 0; round < perQueue; round++)
        {
            for (int queue = 0; queue < queues; queue++)
            {
                FuseRingChannel ring;
                try
                {
                    ring = (FuseRingChannel)rings.OpenRingChannel(queue, _options.RingPayloadSize);
                }
                catch (IOException ex)
                {
                    // Entries registered so far stay idle: the kernel moves to the rings only when every queue has one.
                    RingsUnavailable(ex.Message);
                    return;
                }

                int slot = _deviceReaders + (round * queues) + queue;
#pragma warning disable CA2000 // the reader and its ring belong to the thread started below, which disposes both as it ends (RingMain)
                var reader = new Reader(slot, ring, _options, ring.RequestBuffer) { Ring = ring };
#pragma warning restore CA2000
                Volatile.Write(ref _readers[slot], reader);
                Interlocked.Increment(ref _running);
                new Thread(RingMain, maxStackSize: 1 << 20) { IsBackground = true, Name = $"fuse-ring-{queue}.{round}" }.Start(reader);
                Interlocked.Increment(ref _ringEntries);
            }
        }

        Volatile.Write(ref _ringQueues, queues);
        FuseLog.RingsStarted(_logger, RingEntries, queues, perQueue);
    }

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
