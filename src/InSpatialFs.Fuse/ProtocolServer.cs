using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Fuse.Transport;
using InSpatialFs.Interop;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace InSpatialFs.Fuse;

/// <summary>
/// The raw FUSE protocol server: reader threads, framing with checked lengths, INIT negotiation, dispatch through
/// one opcode table, INTERRUPT bookkeeping and replies on the channel each request came from. It knows no tree and
/// no policy: every decoded request goes to <see cref="IFuseFileSystem"/>.
/// </summary>
/// <remarks>
/// Lock order: only <c>Reader.InFlightGate</c>, one at a time and never around a handler call or a syscall.
/// It guards the reader's in-flight unique so an INTERRUPT can never mark the next request of that reader.
/// Hot path: one pinned request buffer, one pinned reply buffer and one <see cref="FuseRequest"/> per reader,
/// reused for every request; handlers are static delegates; nothing is allocated per request. A reader that serves
/// spliced READs (<see cref="IFuseSplicedRead"/>) also owns two pipes, made at its first such READ
/// (ProtocolServer.Splice.cs).
/// </remarks>
public sealed partial class ProtocolServer : IDisposable
{
    private const int InHeaderSize = 40;
    private const int OutHeaderSize = 16;

    private readonly IFuseTransport _transport;
    private readonly IFuseFileSystem _fs;
    private readonly ProtocolServerOptions _options;
    private readonly ILogger _logger;
    private readonly Reader?[] _readers;
    private readonly FuseNotifier _notifier;
    private readonly IFuseSplicedRead? _splicedRead;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile FuseConnectionInfo? _connection;
    private bool _setxattrExt;
    private int _started;
    private int _running;
    /// <summary>Readers made so far (they are started on demand, see <see cref="ServeLoop"/>), and how many are inside a handler.</summary>
    private int _readersMade;
    private int _busy;
    private int _stopping;
    private Exception? _failure;

    public ProtocolServer(IFuseTransport transport, IFuseFileSystem fileSystem, ProtocolServerOptions? options = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(transport);
        ArgumentNullException.ThrowIfNull(fileSystem);
        options ??= new ProtocolServerOptions();
        options.Validate();
        _transport = transport;
        _fs = fileSystem;
        _options = options;
        _logger = logger ?? NullLogger.Instance;
        _readers = new Reader?[options.ReaderThreads];
        _notifier = new FuseNotifier(transport);
        _splicedRead = fileSystem as IFuseSplicedRead;
    }

    /// <summary>What INIT negotiated; null until INIT has been answered.</summary>
    public FuseConnectionInfo? Connection => _connection;

    public ProtocolServerOptions Options => _options;

    /// <summary>READ replies sent by splice(2) so far (<see cref="IFuseSplicedRead"/>), across readers.</summary>
    public long SplicedReadReplies
    {
        get
        {
            long total = 0;
            foreach (Reader? reader in _readers)
            {
                total += reader is null ? 0 : Volatile.Read(ref reader.SplicedReplies);
            }

            return total;
        }
    }

    /// <summary>
    /// Completes when every reader has stopped: normally after unmount (ENODEV) or <see cref="Stop"/>; faulted
    /// if a reader met an unexpected device error.
    /// </summary>
    public Task Completion => _completion.Task;

    /// <summary>Starts reader 0 (which answers INIT, calls Initialized, then starts the other readers). Idempotent.</summary>
    public void Start()
    {
        if (Interlocked.Exchange(ref _started, 1) != 0)
        {
            return;
        }

        _readersMade = 1;
        StartReader(0);
    }

    /// <summary>Starts serving (if not yet) and completes when the connection ends. Cancelling calls <see cref="Stop"/>.</summary>
    public Task ServeAsync(CancellationToken cancellationToken = default)
    {
        Start();
        if (cancellationToken.CanBeCanceled)
        {
            CancellationTokenRegistration registration = cancellationToken.Register(static s => ((ProtocolServer)s!).Stop(), this);
            _ = _completion.Task.ContinueWith(_ => registration.Dispose(), TaskScheduler.Default);
        }

        return _completion.Task;
    }

    /// <summary>Serves on background threads and blocks until the connection ends.</summary>
    public void Run() => ServeAsync().GetAwaiter().GetResult();

    /// <summary>Ends the connection through the transport (a mount unmounts lazily); readers then stop on ENODEV.</summary>
    public void Stop()
    {
        if (Interlocked.Exchange(ref _stopping, 1) != 0)
        {
            return;
        }

        _transport.Shutdown();
        if (Volatile.Read(ref _started) == 0)
        {
            _completion.TrySetResult();
        }
    }

    public void Dispose() => Stop();

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
            Name = $"fuse-reader-{index}",
        };
        thread.Start(reader);
    }

    private void ReaderMain(object? state)
    {
        var reader = (Reader)state!;
        try
        {
            Errno end = Errno.OK;
            if (reader.Index == 0)
            {
                end = ServeUntilInitialized(reader);
                if (end == Errno.OK && !AfterInit())
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
            FuseLog.ReaderCrashed(_logger, ex, reader.Index);
            Interlocked.CompareExchange(ref _failure, ex, null);
            Stop();
        }
        finally
        {
            reader.Dispose();
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
    }

    /// <summary>Readers started at INIT; the rest (up to ReaderThreads) start when every reader is busy.</summary>
    private const int InitialReaders = 2;

    /// <summary>Calls Initialized and starts the initial readers. False if the connection is being stopped.</summary>
    private bool AfterInit()
    {
        try
        {
            _fs.Initialized(_connection!);
        }
        catch (Exception ex)
        {
            FuseLog.InitializedThrew(_logger, ex);
            Interlocked.CompareExchange(ref _failure, ex, null);
            Stop();
            return false;
        }

        while (Volatile.Read(ref _readersMade) < Math.Min(InitialReaders, _readers.Length) && StartAnotherReader())
        {
        }

        return true;
    }

    /// <summary>Starts the next reader unless all are made or the connection is stopping; false if none was started.</summary>
    private bool StartAnotherReader()
    {
        int index = Interlocked.Increment(ref _readersMade) - 1;
        if (index >= _readers.Length || Volatile.Read(ref _stopping) != 0)
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
                bool counted = made < _readers.Length;
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
            }
        }
    }

    /// <summary>OK with length ≥ 0 for a frame, OK with -1 for "try again", otherwise the errno that ends the reader.</summary>
    private Errno ReadFrame(Reader reader, out int length)
    {
        Errno e = reader.Channel.Read(reader.RequestBuffer.Span, out length);
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

    /// <summary>Parses one frame with checked lengths, calls its handler and answers (or not, per the opcode).</summary>
    private void Dispatch(Reader reader, int length)
    {
        ReadOnlySpan<byte> frame = reader.RequestBuffer.Span[..length];
        if (length < InHeaderSize)
        {
            // Too short to trust even the unique: nothing to answer.
            FuseLog.ShortFrame(_logger, length);
            return;
        }

        FuseInHeader header = MemoryMarshal.Read<FuseInHeader>(frame);
        ref readonly OpEntry op = ref Entry(header.Opcode);
        reader.Requests[Math.Min(header.Opcode, (uint)OpTable.Length)]++;
        Errno malformed = Errno.OK;
        string? reason = null;
        ReadOnlySpan<byte> args = default;
        int extension = header.TotalExtlen * 8;
        if (header.Len != (uint)length)
        {
            (malformed, reason) = (Errno.EIO, "in_header.len differs from the bytes read");
        }
        else if (extension > length - InHeaderSize)
        {
            (malformed, reason) = (Errno.EIO, "total_extlen reaches past the frame");
        }
        else
        {
            args = frame[InHeaderSize..(length - extension)];
            if (_connection is null && header.Opcode != (uint)FuseOpcode.Init)
            {
                (malformed, reason) = (Errno.EIO, "request before INIT");
            }
            else if (args.Length < op.ArgSize)
            {
                (malformed, reason) = (Errno.EINVAL, "arguments shorter than the opcode's struct");
            }
        }

        if (malformed != Errno.OK)
        {
            FuseLog.MalformedFrame(_logger, op.Name, header.Unique, length, reason!);
            if (op.Reply != ReplyKind.Never)
            {
                SendError(reader, header.Unique, malformed);
            }

            return;
        }

        if (op.Handler is null)
        {
            if (op.Reply != ReplyKind.Never)
            {
                SendError(reader, header.Unique, op.Unhandled);
            }

            return;
        }

        BeginRequest(reader, in header);
        Errno result;
        int bodyLength = 0;
        reader.Replied = false;
        try
        {
            result = op.Handler(this, reader, args, reader.ReplyBuffer.Span[OutHeaderSize..], out bodyLength);
        }
        catch (Exception ex)
        {
            FuseLog.HandlerThrew(_logger, ex, op.Name, header.Unique);
            result = Errno.EIO;
        }
        finally
        {
            EndRequest(reader);
        }

        if (reader.Replied || op.Reply == ReplyKind.Never || (op.Reply == ReplyKind.OnlyEagain && result != Errno.EAGAIN))
        {
            return;
        }

        if (result == Errno.OK)
        {
            SendOk(reader, header.Unique, bodyLength);
        }
        else
        {
            SendError(reader, header.Unique, result);
        }
    }

    private static void BeginRequest(Reader reader, in FuseInHeader header)
    {
        lock (reader.InFlightGate)
        {
            reader.Request.Reset(header.Unique, header.Opcode, header.NodeId, header.Uid, header.Gid, header.Pid);
            reader.InFlightUnique = header.Unique;
        }
    }

    private static void EndRequest(Reader reader)
    {
        lock (reader.InFlightGate)
        {
            reader.InFlightUnique = 0;
        }
    }

    /// <summary>Marks the in-flight request <paramref name="unique"/> interrupted; false if no reader is serving it.</summary>
    private bool InterruptInFlight(ulong unique)
    {
        if (unique == 0)
        {
            return false;
        }

        foreach (Reader? reader in _readers)
        {
            if (reader is null)
            {
                continue;
            }

            lock (reader.InFlightGate)
            {
                if (reader.InFlightUnique == unique)
                {
                    reader.Request.Interrupt();
                    return true;
                }
            }
        }

        return false;
    }

    private void SendOk(Reader reader, ulong unique, int bodyLength)
    {
        Span<byte> buffer = reader.ReplyBuffer.Span;
        var header = new FuseOutHeader { Len = (uint)(OutHeaderSize + bodyLength), Error = 0, Unique = unique };
        MemoryMarshal.Write(buffer, in header);
        Send(reader, unique, buffer[..OutHeaderSize], buffer.Slice(OutHeaderSize, bodyLength));
    }

    private void SendError(Reader reader, ulong unique, Errno errno)
    {
        int code = (int)errno;
        if (code is <= 0 or >= 512)
        {
            code = (int)Errno.EIO; // the kernel rejects anything outside (-512, 0)
        }

        Span<byte> buffer = reader.ReplyBuffer.Span;
        var header = new FuseOutHeader { Len = OutHeaderSize, Error = -code, Unique = unique };
        MemoryMarshal.Write(buffer, in header);
        Send(reader, unique, buffer[..OutHeaderSize], default);
    }

    private void Send(Reader reader, ulong unique, ReadOnlySpan<byte> header, ReadOnlySpan<byte> body)
    {
        Errno e = reader.Channel.Write(header, body);
        if (e == Errno.OK)
        {
            return;
        }

        if (e is Errno.ENOENT or Errno.ENODEV or Errno.ECONNABORTED)
        {
            FuseLog.ReplyNotDelivered(_logger, unique, e); // interrupted and gone, or unmounted: not our error
        }
        else
        {
            FuseLog.ReplyFailed(_logger, unique, e);
        }
    }

    /// <summary>Logs a handler result that would break the protocol and turns it into EIO.</summary>
    private Errno BadResult(Reader reader, string reason)
    {
        FuseLog.BadHandlerResult(_logger, ((FuseOpcode)reader.Request.Opcode).ToString(), reader.Request.Unique, reason);
        return Errno.EIO;
    }

    /// <summary>One reader thread's state. Buffers are native (see <see cref="NativeBuffer"/>) and reused for every request.</summary>
    private sealed class Reader(int index, IFuseChannel channel, ProtocolServerOptions options) : IDisposable
    {
        public readonly int Index = index;
        public readonly IFuseChannel Channel = channel;
        public readonly NativeBuffer RequestBuffer = new(options.RequestBufferSize);
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

        /// <summary>Requests this reader read, per opcode (written by the reader only; see <see cref="RequestCounts"/>).</summary>
        public readonly long[] Requests = new long[OpTable.Length + 1];

        /// <summary>
        /// Frees what the reader made: its pipes and native buffers (its thread calls this as it ends). The channel is
        /// the transport's (it closes its channels), the request may still be interrupted by another reader.
        /// </summary>
        public void Dispose()
        {
            Pipes?.Dispose();
            RequestBuffer.Dispose();
            ReplyBuffer.Dispose();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static T ReadArg<T>(ReadOnlySpan<byte> args)
        where T : unmanaged => MemoryMarshal.Read<T>(args);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Put<T>(Span<byte> body, in T value)
        where T : unmanaged
    {
        MemoryMarshal.Write(body, in value);
        return Unsafe.SizeOf<T>();
    }

    /// <summary>Takes a NUL-terminated string from the front of <paramref name="rest"/>; false if no NUL is within bounds.</summary>
    private static bool TakeString(ref ReadOnlySpan<byte> rest, out ReadOnlySpan<byte> value)
    {
        int nul = rest.IndexOf((byte)0);
        if (nul < 0)
        {
            value = default;
            return false;
        }

        value = rest[..nul];
        rest = rest[(nul + 1)..];
        return true;
    }

    /// <summary>As <see cref="TakeString"/>, and the name must not be empty.</summary>
    private static bool TakeName(ref ReadOnlySpan<byte> rest, out ReadOnlySpan<byte> name) => TakeString(ref rest, out name) && !name.IsEmpty;
}
