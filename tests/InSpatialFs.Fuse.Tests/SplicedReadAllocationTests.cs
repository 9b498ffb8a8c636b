using InSpatialFs.Fuse.Abi;
using InSpatialFs.Fuse.Transport;
using InSpatialFs.Interop;
using InSpatialFs.TestKit;

namespace InSpatialFs.Fuse.Tests;

/// <summary>A spliced READ (file → pipe → channel) allocates nothing per request on the reader thread.</summary>
[NonParallelizable]
public sealed class SplicedReadAllocationTests
{
    private const int Requests = 2000;

    /// <summary>Replays INIT and then one READ frame; spliced replies are read out of the pipe into a fixed buffer.</summary>
    private sealed unsafe class ReplayTransport(byte[] init, byte[] read) : IFuseTransport, IFuseChannel, ISpliceChannel
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
            byte[]? frame = i < 0 ? init : i < Requests ? read : null;
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

    /// <summary>Notes the reader thread's allocation counter at every spliced READ.</summary>
    private sealed class ProbeFileSystem(SafeFd file) : RecordingFileSystem, IFuseSplicedRead
    {
        public readonly long[] Allocated = new long[Requests];
        private int _calls;

        public bool SplicedReadsWanted => true;

        public override void Initialized(FuseConnectionInfo connection)
        {
        }

        public bool TryReadSpliced(FuseRequest request, ulong nodeId, ulong fh, long offset, int size, ISpliceReadSink sink, out Errno result)
        {
            Allocated[_calls++] = GC.GetAllocatedBytesForCurrentThread();
            result = sink.SpliceFrom(file.Fd, offset, size, out _);
            return true;
        }
    }

    [Test]
    public void Serving_spliced_reads_allocates_nothing_per_request()
    {
        string path = Path.Combine(Path.GetTempPath(), "inspatialfs-splice-alloc-" + Guid.NewGuid().ToString("N"));
        File.WriteAllBytes(path, new byte[1 << 20]);
        try
        {
            Assert.That(LibC.OpenFd(path, LibC.O_RDONLY, 0, out SafeFd file), Is.EqualTo(Errno.OK));
            using (file)
            {
                byte[] init = FakeKernel.Frame((uint)FuseOpcode.Init, 2, 0, FuseArgs.Of(FakeKernel.InitIn()).ToArray());
                byte[] read = FakeKernel.Frame((uint)FuseOpcode.Read, 6, 5, FuseArgs.Of(new FuseReadIn { Fh = 1, Offset = 4096, Size = 65536 }).ToArray());
                var transport = new ReplayTransport(init, read);
                var fs = new ProbeFileSystem(file);
                var server = new ProtocolServer(transport, fs, new ProtocolServerOptions { ReaderThreads = 1 });
                server.Run();

                Assert.That(transport.SplicedReplies, Is.EqualTo(Requests), "every READ went through the pipe");
                long allocated = fs.Allocated[Requests - 1] - fs.Allocated[Requests / 2];
                Assert.That(allocated, Is.Zero, $"about {allocated / (Requests / 2)} bytes allocated per request on the reader thread");
            }
        }
        finally
        {
            File.Delete(path);
        }
    }
}
