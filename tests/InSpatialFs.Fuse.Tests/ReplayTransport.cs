using InSpatialFs.Fuse.Transport;
using InSpatialFs.Interop;

namespace InSpatialFs.Fuse.Tests;

/// <summary>
/// Replays INIT and then <paramref name="requests"/> frames cycled from preallocated arrays; replies go nowhere, a
/// spliced reply is read out of its pipe into a fixed buffer. Allocation-free itself, for the hot-path allocation tests.
/// </summary>
internal sealed unsafe class ReplayTransport(byte[] init, byte[][] frames, int requests) : IFuseTransport, IFuseChannel, ISpliceChannel
{
    private readonly byte[] _sink = GC.AllocateUninitializedArray<byte>(1 << 20, pinned: true);
    private int _next = -1;

    public int Replies;
    public int SplicedReplies;

    public IBackingRegistrar? Backing => null;

    public IFuseChannel OpenChannel() => this;

    public Errno Notify(ReadOnlySpan<byte> header, ReadOnlySpan<byte> body) => Errno.OK;

    public void Shutdown() => _next = int.MaxValue;

    public Errno Read(Span<byte> buffer, out int length)
    {
        int i = _next++;
        byte[]? frame = i < 0 ? init : i < requests ? frames[i % frames.Length] : null;
        length = frame?.Length ?? 0;
        if (frame is null)
        {
            return Errno.ENODEV;
        }

        frame.CopyTo(buffer);
        return Errno.OK;
    }

    public Errno Write(ReadOnlySpan<byte> header, ReadOnlySpan<byte> body)
    {
        Replies++;
        return Errno.OK;
    }

    public Errno SpliceReply(int pipeReadFd, int length)
    {
        fixed (byte* p = _sink)
        {
            int got = 0;
            while (got < length)
            {
                nint n = LibC.read(pipeReadFd, p, Math.Min(length - got, _sink.Length));
                if (n <= 0)
                {
                    return Errno.EIO;
                }

                got += (int)n;
            }
        }

        Replies++;
        SplicedReplies++;
        return Errno.OK;
    }

    public void Dispose()
    {
    }
}
