using InSpatialFs.Interop;

namespace InSpatialFs.Fuse.Transport;

/// <summary>
/// Where frames come from and replies go: /dev/fuse (<see cref="FuseDevice"/>) or memory (the test kit's fake
/// kernel). The protocol server knows nothing else about the kernel, so it runs the same in both.
/// </summary>
public interface IFuseTransport
{
    /// <summary>
    /// A channel for one reader thread. The first call returns the session channel; later calls may return
    /// clones (FUSE_DEV_IOC_CLONE). A reply must go to the channel its request was read from.
    /// </summary>
    IFuseChannel OpenChannel();

    /// <summary>Writes one notification (out header with unique 0, then body) on any channel of the connection.</summary>
    Errno Notify(ReadOnlySpan<byte> header, ReadOnlySpan<byte> body);

    /// <summary>Registers backing files for passthrough on this connection, or null when the transport cannot.</summary>
    IBackingRegistrar? Backing { get; }

    /// <summary>Ends the connection: every blocked and later <see cref="IFuseChannel.Read"/> returns ENODEV.</summary>
    void Shutdown();
}

/// <summary>One reader's view of the connection. Used by one thread at a time.</summary>
public interface IFuseChannel : IDisposable
{
    /// <summary>
    /// Reads exactly one request into <paramref name="buffer"/>. EINTR is retried inside. ENODEV or ECONNABORTED
    /// mean the connection is gone; any other errno is the caller's to judge.
    /// </summary>
    Errno Read(Span<byte> buffer, out int length);

    /// <summary>
    /// As <see cref="Read(Span{byte}, out int)"/>, with the frame at <paramref name="offset"/> in the buffer: 0 for
    /// /dev/fuse; an io_uring entry lays its headers in front of a payload that sits at a fixed place.
    /// </summary>
    Errno Read(Span<byte> buffer, out int offset, out int length)
    {
        offset = 0;
        return Read(buffer, out length);
    }

    /// <summary>Writes one reply as a single gather of header and body (one writev).</summary>
    Errno Write(ReadOnlySpan<byte> header, ReadOnlySpan<byte> body);
}

/// <summary>A transport that can also serve requests over io_uring (FUSE_OVER_IO_URING): /dev/fuse on a kernel built with it.</summary>
public interface IFuseRingTransport
{
    /// <summary>
    /// One ring entry for <paramref name="queue"/> whose payload holds <paramref name="payloadCapacity"/> bytes (at least
    /// the kernel's max(8 KiB, max_write, max_pages pages)); nothing is registered before its first read. Throws
    /// IOException when the io_uring cannot be made (io_uring disabled by sysctl or a seccomp filter, ENOMEM).
    /// </summary>
    IFuseChannel OpenRingChannel(int queue, int payloadCapacity);
}
