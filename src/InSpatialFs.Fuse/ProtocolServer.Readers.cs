using System.Runtime.InteropServices;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Fuse.Transport;
using InSpatialFs.Interop;

namespace InSpatialFs.Fuse;

// Reader threads: how they start (on demand, two at INIT), read frames, and how reader 0 gets the connection going —
// by answering INIT, or by adopting a connection an earlier server negotiated (no INIT, then NOTIFY_RESEND).
public sealed partial class ProtocolServer
{
    private void StartReader(int index)
    {
        IFuseChannel channel = _transport.OpenChannel();
#pragma warning disable CA2000 // the reader belongs to the thread started below, which disposes it as it ends (ReaderMain)
        var reader = new Reader(index, channel, _options);
#pragma warning restore CA2000
        Volatile.Write(ref _readers[index], reader);
        Interlocked.Increment(ref _running);
        var thread = new Thread(ReaderMain, maxStackSize: 1 << 20)
        {
            IsBackground = true,
            Name = $"{_options.ReaderThreadName}-{index}",
        };
        thread.Start(reader);
    }

    private void ReaderMain(object? state)
    {
        var reader = (Reader)state!;
        try
        {
            Errno end = Errno.OK;
            if (reader.Index == 0 && _options.Adopt is { } adopted)
            {
                if (!AfterInit(Adopt(adopted)))
                {
                    return;
                }
            }
            else if (reader.Index == 0)
            {
                end = ServeUntilInitialized(reader);
                if (end == Errno.OK && !AfterInit(_connection!))
                {
                    return;
                }
            }

            if (end == Errno.OK)
            {
                ServeLoop(reader);
            }
        }
        catch (Exception ex)
        {
            ReaderCrashed(reader, ex);
        }
        finally
        {
            reader.Dispose();
            ReaderEnded();
        }
    }

    /// <summary>A reader thread (of /dev/fuse or of a ring) threw: the connection fails with that exception.</summary>
    private void ReaderCrashed(Reader reader, Exception ex)
    {
        FuseLog.ReaderCrashed(_logger, ex, reader.Index);
        Interlocked.CompareExchange(ref _failure, ex, null);
        Stop();
    }

    /// <summary>A reader thread (of /dev/fuse or of a ring) ends: the last one completes <see cref="Completion"/>.</summary>
    private void ReaderEnded()
    {
        if (Interlocked.Decrement(ref _running) == 0)
        {
            Exception? failure = Volatile.Read(ref _failure);
            if (failure is null)
            {
                _completion.TrySetResult();
            }
            else
            {
                _completion.TrySetException(failure);
            }
        }
    }

    /// <summary>
    /// Readers started at INIT; the rest (up to ReaderThreads) start when every reader is busy. With pinned readers, one
    /// for every CPU, so that each CPU has a reader to wake.
    /// </summary>
    private const int InitialReaders = 2;

    /// <summary>Calls Initialized and starts the initial readers. False if the connection is being stopped.</summary>
    private bool AfterInit(FuseConnectionInfo connection)
    {
        try
        {
            _fs.Initialized(connection);
        }
        catch (Exception ex)
        {
            FuseLog.InitializedThrew(_logger, ex);
            Interlocked.CompareExchange(ref _failure, ex, null);
            Stop();
            return false;
        }

        if (connection.Adopted)
        {
            // Before any reader of this server reads: NOTIFY_RESEND requeues what is being processed on EVERY descriptor of
            // the connection, ours included, so a request this server had read fresh and was carrying out would come back
            // as a resend and run twice (a second unlink answering ENOENT). The requeued requests wait in the queue.
            Errno resend = connection.CanResend ? _notifier.Resend() : Errno.EOPNOTSUPP;
            FuseLog.Adopted(_logger, connection.NegotiatedMinor, resend);
            Volatile.Write(ref _resendResult, (int)resend);
        }

        int initial = Math.Min(Math.Max(InitialReaders, _placement?.CpuCount ?? 0), _deviceReaders);
        while (Volatile.Read(ref _readersMade) < initial && StartAnotherReader())
        {
        }

        StartRings(connection);
        return true;
    }

    /// <summary>Takes the parameters an earlier server negotiated on this connection as this server's own (no INIT comes).</summary>
    private FuseConnectionInfo Adopt(FuseSessionParameters p)
    {
        bool passthrough = (p.ReplyFlags & (ulong)FuseInitFlags.Passthrough) != 0;
        _setxattrExt = (p.ReplyFlags & (ulong)FuseInitFlags.SetxattrExt) != 0;
        var connection = new FuseConnectionInfo
        {
            KernelMajor = p.KernelMajor,
            KernelMinor = p.KernelMinor,
            NegotiatedMinor = p.NegotiatedMinor,
            KernelFlags = p.KernelFlags,
            ReplyFlags = p.ReplyFlags,
            MaxWrite = p.MaxWrite,
            MaxReadahead = p.MaxReadahead,
            PassthroughEnabled = passthrough,
            Backing = passthrough ? _transport.Backing : null,
            Notifier = _notifier,
            Adopted = true,
        };
        _connection = connection;
        return connection;
    }

    /// <summary>Starts the next reader unless all are made or the connection is stopping; false if none was started.</summary>
    private bool StartAnotherReader()
    {
        int index = Interlocked.Increment(ref _readersMade) - 1;
        if (index >= _deviceReaders || Volatile.Read(ref _stopping) != 0)
        {
            Interlocked.Decrement(ref _readersMade);
            return false;
        }

        try
        {
            StartReader(index);
            return true;
        }
        catch (IOException ex)
        {
            // A failed FUSE_DEV_IOC_CLONE costs parallelism, not the connection: serve with the readers we have
            // (the count stays claimed, so a failing clone is not retried on every request).
            FuseLog.ReaderNotStarted(_logger, ex, index);
            return false;
        }
    }

    /// <summary>Reader 0 before INIT: answers frames until INIT succeeded (a major &gt; 7 INIT is answered and waited past).</summary>
    private Errno ServeUntilInitialized(Reader reader)
    {
        while (_connection is null)
        {
            Errno e = ReadFrame(reader, out int length);
            if (e != Errno.OK)
            {
                return e;
            }

            if (length >= 0)
            {
                Dispatch(reader, length);
            }
        }

        return Errno.OK;
    }

    /// <summary>
    /// Reads and answers requests until the connection ends. A reader that takes a request while every other reader is
    /// busy starts one more (up to ReaderThreads), so one always waits in read(2) even when handlers block (an events
    /// reader of the control mount holds its thread), and an idle mount keeps two threads instead of sixteen.
    /// </summary>
    private void ServeLoop(Reader reader)
    {
        ReaderPlacement? placement = _placement;
        placement?.Enter(reader.Index, ref reader.PlacementApplied);
        while (true)
        {
            Errno e = ReadFrame(reader, out int length);
            if (e != Errno.OK)
            {
                return;
            }

            if (length >= 0)
            {
                // Only while readers can still be added: at the limit (at once on a mount with the default two readers)
                // a request costs no shared-counter update.
                int made = Volatile.Read(ref _readersMade);
                bool counted = made < _deviceReaders;
                if (counted && Interlocked.Increment(ref _busy) >= made)
                {
                    StartAnotherReader();
                }

                try
                {
                    Dispatch(reader, length);
                }
                finally
                {
                    if (counted)
                    {
                        Interlocked.Decrement(ref _busy);
                    }
                }

                placement?.AfterRequest(reader.Index, ref reader.PlacementApplied, ref reader.PlacementRequests);
                if (_ringsServe && IsForget(reader, length))
                {
                    LibC.SleepBriefly(ForgetGatherMilliseconds);
                }
            }
        }
    }

    /// <summary>
    /// How long a /dev/fuse reader pauses after a FORGET once the rings serve. From then on the kernel sends these readers
    /// only FORGET, BATCH_FORGET and INTERRUPT: every other request goes to a ring. Read one by one, each forget of an
    /// `rm -r` or an unlink loop woke a reader (a context switch per unlinked file, a quarter of the daemon's CPU for
    /// unlinks over io_uring). While every reader pauses, the kernel keeps the forgets and hands them over as one
    /// BATCH_FORGET. The price: an INTERRUPT (a signal to a caller whose request is running) may wait this long to be
    /// read. On /dev/fuse alone nothing pauses: there every request comes this way.
    /// </summary>
    private const int ForgetGatherMilliseconds = 2;

    /// <summary>Set by the first request a ring serves: the kernel then sends /dev/fuse only forgets and interrupts.</summary>
    private volatile bool _ringsServe;

    private static bool IsForget(Reader reader, int length)
    {
        if (length < InHeaderSize)
        {
            return false;
        }

        uint opcode = MemoryMarshal.Read<FuseInHeader>(reader.RequestBuffer.Span.Slice(reader.FrameOffset, length)).Opcode;
        return opcode is (uint)FuseOpcode.Forget or (uint)FuseOpcode.BatchForget;
    }

    /// <summary>OK with length ≥ 0 for a frame, OK with -1 for "try again", otherwise the errno that ends the reader.</summary>
    private Errno ReadFrame(Reader reader, out int length)
    {
        Errno e = reader.Channel.Read(reader.RequestBuffer.Span, out reader.FrameOffset, out length);
        switch (e)
        {
            case Errno.OK:
                return Errno.OK;
            case Errno.EINTR or Errno.EAGAIN or Errno.ENOENT:
                // ENOENT: the request we were about to get was interrupted and dropped by the kernel.
                length = -1;
                return Errno.OK;
            case Errno.ENODEV or Errno.ECONNABORTED:
                FuseLog.ReaderStopped(_logger, reader.Index, e);
                return e;
            default:
                if (Volatile.Read(ref _stopping) == 0)
                {
                    FuseLog.ReadFailed(_logger, reader.Index, e);
                    Interlocked.CompareExchange(ref _failure, new IOException($"reading the FUSE device failed: {e}"), null);
                    Stop();
                }

                return e;
        }
    }

    /// <summary>One reader thread's state. Buffers are native (see <see cref="NativeBuffer"/>) and reused for every request.</summary>
    /// <param name="requestBuffer">The channel's own buffer (a ring entry's, registered with the kernel), or null for a new one.</param>
    private sealed class Reader(int index, IFuseChannel channel, ProtocolServerOptions options, NativeBuffer? requestBuffer = null) : IDisposable
    {
        public readonly int Index = index;
        public readonly IFuseChannel Channel = channel;
        public readonly NativeBuffer RequestBuffer = requestBuffer ?? new(options.RequestBufferSize);
        private readonly bool _ownsRequestBuffer = requestBuffer is null;

        /// <summary>The ring entry this reader serves (a ring reader; null on /dev/fuse).</summary>
        public FuseRingChannel? Ring;

        /// <summary>Where the last frame read starts in <see cref="RequestBuffer"/> (0 on /dev/fuse).</summary>
        public int FrameOffset;
        public readonly NativeBuffer ReplyBuffer = new(options.ReplyBufferSize);
        public readonly FuseRequest Request = new();
        public readonly Lock InFlightGate = new();

        /// <summary>Guarded by <see cref="InFlightGate"/>; 0 while idle.</summary>
        public ulong InFlightUnique;

        /// <summary>The handler already answered (a spliced READ): the dispatcher sends nothing.</summary>
        public bool Replied;

        /// <summary>Pipes for spliced READ replies, made at the first READ that wants them; null before or when refused.</summary>
        public SplicePipes? Pipes;

        /// <summary>Pipes could not be made (or the channel cannot splice): this reader always copies.</summary>
        public bool SpliceRefused;

        /// <summary>READ replies this reader sent through its pipes (written by the reader only).</summary>
        public long SplicedReplies;

        /// <summary>READs of a splicing file system answered by copy because they did not fit this reader's pipes.</summary>
        public long UnfitReads;

        /// <summary>READs answered by copy because splicing their data or their reply failed (logged with the errno).</summary>
        public long FailedSplices;

        /// <summary>Requests that came back marked as resent (bit 63 of unique): read by an earlier server, unanswered.</summary>
        public long ResentRequests;

        /// <summary>The placement generation this reader last moved to, and its requests since it last sampled (its own).</summary>
        public int PlacementApplied;
        public int PlacementRequests;

        /// <summary>Requests this reader read, per opcode (written by the reader only; see <see cref="RequestCounts"/>).</summary>
        public readonly long[] Requests = new long[OpTable.Length + 1];

        /// <summary>
        /// Frees what the reader made: its pipes and native buffers (its thread calls this as it ends). The channel is
        /// the transport's (it closes its channels), the request may still be interrupted by another reader.
        /// </summary>
        public void Dispose()
        {
            Pipes?.Dispose();
            if (_ownsRequestBuffer)
            {
                RequestBuffer.Dispose();
            }

            ReplyBuffer.Dispose();
        }
    }
}
