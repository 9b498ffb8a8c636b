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
    /// <summary>The /dev/fuse readers (slots 0.._deviceReaders-1), then the ring readers (ProtocolServer.Ring.cs).</summary>
    private readonly Reader?[] _readers;
    private readonly int _deviceReaders;
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
        if (options.Adopt is { } adopted && adopted.MaxWrite > options.MaxWrite)
        {
            throw new ArgumentException($"the adopted connection negotiated max_write {adopted.MaxWrite}, more than this server's buffers hold ({options.MaxWrite})", nameof(options));
        }

        _deviceReaders = options.ReaderThreads;
        _plannedRingQueues = options.IoUring ? FuseRingChannel.PossibleCpus() : 0;
        _readers = new Reader?[options.ReaderThreads + (options.IoUring ? _plannedRingQueues * options.RingThreadsPerQueue : 0)];
        _placement = options.PinReaders && !options.IoUring ? ReaderPlacement.TryCreate(options.ReaderThreads) : null;
        _notifier = new FuseNotifier(transport);
        _splicedRead = fileSystem as IFuseSplicedRead;
    }

    /// <summary>Where the /dev/fuse readers run (<see cref="ProtocolServerOptions.PinReaders"/>); null when they are never pinned.</summary>
    private readonly ReaderPlacement? _placement;

    /// <summary>For status: where the /dev/fuse readers run, or null when they are left to the scheduler.</summary>
    public string? ReaderPlacementState => _placement?.Describe();

    /// <summary>What INIT negotiated; null until INIT has been answered.</summary>
    public FuseConnectionInfo? Connection => _connection;

    public ProtocolServerOptions Options => _options;

    /// <summary>READ replies sent by splice(2) so far (<see cref="IFuseSplicedRead"/>), across readers.</summary>
    public long SplicedReadReplies => SumOverReaders(static r => Volatile.Read(ref r.SplicedReplies));

    /// <summary>READs a splicing file system had answered by copy because they did not fit the reader's pipes.</summary>
    public long UnfitSplicedReads => SumOverReaders(static r => Volatile.Read(ref r.UnfitReads));

    /// <summary>READs answered by copy because splicing their data or reply failed.</summary>
    public long FailedSplicedReads => SumOverReaders(static r => Volatile.Read(ref r.FailedSplices));

    /// <summary>Requests an earlier server read and did not answer, resent by the kernel to this one (an adopted connection).</summary>
    public long ResentRequests => SumOverReaders(static r => Volatile.Read(ref r.ResentRequests));

    private int _resendResult = -1;

    /// <summary>
    /// An adopted connection: the result of NOTIFY_RESEND once sent (from then on nothing the earlier server read waits on
    /// its descriptors); null before, and always for a connection this server initialised.
    /// </summary>
    public Errno? ResendResult => Volatile.Read(ref _resendResult) is int r and >= 0 ? (Errno)r : null;

    /// <summary>No reader is inside a handler now (a moment's answer: a reader may take a request right after).</summary>
    public bool HandlersIdle
    {
        get
        {
            foreach (Reader? reader in _readers)
            {
                if (reader is not null && Volatile.Read(ref reader.InFlightUnique) != 0)
                {
                    return false;
                }
            }

            return true;
        }
    }

    private long SumOverReaders(Func<Reader, long> counter)
    {
        long total = 0;
        foreach (Reader? reader in _readers)
        {
            total += reader is null ? 0 : counter(reader);
        }

        return total;
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

    /// <summary>Parses one frame with checked lengths, calls its handler and answers (or not, per the opcode).</summary>
    private void Dispatch(Reader reader, int length)
    {
        ReadOnlySpan<byte> frame = reader.RequestBuffer.Span.Slice(reader.FrameOffset, length);
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

        if ((header.Unique & FuseConstants.UniqueResend) != 0)
        {
            FuseLog.ResentRequest(_logger, op.Name, header.Unique & ~FuseConstants.UniqueResend, header.NodeId); // rare: one per request a dead server held
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

        if ((header.Unique & FuseConstants.UniqueResend) != 0)
        {
            FuseLog.ResentAnswered(_logger, op.Name, header.Unique & ~FuseConstants.UniqueResend, result);
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
        if ((header.Unique & FuseConstants.UniqueResend) != 0)
        {
            reader.ResentRequests++;
        }

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
        _fs.BeforeReply();
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
