using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using InSpatialFs.Fuse;
using InSpatialFs.Fuse.Abi;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.TestKit;

/// <summary>
/// Plays the kernel's side of /dev/fuse in memory: frames requests (INIT first, then any opcode with arguments
/// and names), feeds them to a <see cref="ProtocolServer"/> through <see cref="InMemoryFuseTransport"/>, and
/// decodes the replies. Uniques grow by 2 from 2, as the kernel's do.
/// </summary>
public sealed class FakeKernel : IDisposable
{
    /// <summary>What kernel 6.18 offered in INIT on the test machine (flags 0x73fffffb, flags2 0x5fd).</summary>
    public const FuseInitFlags Kernel618Offer = (FuseInitFlags)(0x73fffffbUL | (0x5fdUL << 32));

    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    private long _unique;

    /// <summary>Creates the transport and the server and starts serving (INIT is not sent yet).</summary>
    public FakeKernel(IFuseFileSystem fileSystem, ProtocolServerOptions? options = null, ILogger? logger = null)
    {
        Transport = new InMemoryFuseTransport();
        Server = new ProtocolServer(Transport, fileSystem, options ?? new ProtocolServerOptions { ReaderThreads = 1 }, logger);
        Server.Start();
    }

    public InMemoryFuseTransport Transport { get; }

    public ProtocolServer Server { get; }

    /// <summary>The next request unique (2, 4, 6, ...; bit 0 stays free for INTERRUPT).</summary>
    public ulong NextUnique() => (ulong)Interlocked.Add(ref _unique, 2);

    /// <summary>Frames one request: in_header (len computed) + args + extension area.</summary>
    public static byte[] Frame(uint opcode, ulong unique, ulong nodeId, ReadOnlySpan<byte> args, uint uid = 0, uint gid = 0, uint pid = 0,
        ReadOnlySpan<byte> extension = default)
    {
        if (extension.Length % 8 != 0)
        {
            throw new ArgumentException("the extension area is made of 8-byte units", nameof(extension));
        }

        int headerSize = Unsafe.SizeOf<FuseInHeader>();
        var frame = new byte[headerSize + args.Length + extension.Length];
        var header = new FuseInHeader
        {
            Len = (uint)frame.Length,
            Opcode = opcode,
            Unique = unique,
            NodeId = nodeId,
            Uid = uid,
            Gid = gid,
            Pid = pid,
            TotalExtlen = (ushort)(extension.Length / 8),
        };
        MemoryMarshal.Write(frame, in header);
        args.CopyTo(frame.AsSpan(headerSize));
        extension.CopyTo(frame.AsSpan(headerSize + args.Length));
        return frame;
    }

    /// <summary>The fuse_init_in the kernel sends, with the 64-bit offer split into flags and flags2.</summary>
    public static FuseInitIn InitIn(uint major = 7, uint minor = 45, FuseInitFlags offered = Kernel618Offer, uint maxReadahead = 131072) => new()
    {
        Major = major,
        Minor = minor,
        MaxReadahead = maxReadahead,
        Flags = (uint)offered,
        Flags2 = (uint)((ulong)offered >> 32),
    };

    /// <summary>Sends INIT and returns the reply (fuse_init_out on success).</summary>
    public FuseReply Init(uint major = 7, uint minor = 45, FuseInitFlags offered = Kernel618Offer, uint maxReadahead = 131072) =>
        Call(FuseOpcode.Init, 0, FuseArgs.Of(InitIn(major, minor, offered, maxReadahead)));

    /// <summary>Queues a request and returns its unique without waiting.</summary>
    public ulong Send(FuseOpcode opcode, ulong nodeId, FuseArgs? args = null, uint uid = 0, uint gid = 0, uint pid = 0)
    {
        ulong unique = NextUnique();
        Transport.Enqueue(Frame((uint)opcode, unique, nodeId, (args ?? FuseArgs.Empty).ToArray(), uid, gid, pid));
        return unique;
    }

    /// <summary>Queues a raw frame as is (for malformed input).</summary>
    public void SendRaw(byte[] frame) => Transport.Enqueue(frame);

    /// <summary>Sends a request and waits for its reply; throws <see cref="TimeoutException"/> if none comes.</summary>
    public FuseReply Call(FuseOpcode opcode, ulong nodeId, FuseArgs? args = null, uint uid = 0, uint gid = 0, uint pid = 0) =>
        WaitReply(Send(opcode, nodeId, args, uid, gid, pid));

    public FuseReply WaitReply(ulong unique) =>
        TryWaitReply(unique, DefaultTimeout) ?? throw new TimeoutException($"no reply to unique {unique} within {DefaultTimeout}");

    public FuseReply? TryWaitReply(ulong unique, TimeSpan timeout)
    {
        WrittenFrame? frame = Transport.WaitForReply(unique, timeout);
        return frame is null ? null : new FuseReply(frame);
    }

    /// <summary>All replies with this unique so far (to prove that something was not answered, or answered once).</summary>
    public IReadOnlyList<FuseReply> RepliesTo(ulong unique) =>
        Transport.Replies.Where(r => r.Bytes.Length >= 16 && BitConverter.ToUInt64(r.Bytes, 8) == unique).Select(r => new FuseReply(r)).ToList();

    /// <summary>Ends the connection (reads return ENODEV) and waits for the server to stop.</summary>
    public bool Shutdown(TimeSpan? timeout = null)
    {
        Server.Stop();
        return Server.Completion.Wait(timeout ?? DefaultTimeout);
    }

    public void Dispose()
    {
        Shutdown(TimeSpan.FromSeconds(5));
        Transport.Dispose();
    }
}
