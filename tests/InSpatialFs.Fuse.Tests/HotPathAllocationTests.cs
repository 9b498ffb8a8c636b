using InSpatialFs.Fuse.Abi;
using InSpatialFs.Fuse.Transport;
using InSpatialFs.Interop;
using InSpatialFs.TestKit;

namespace InSpatialFs.Fuse.Tests;

/// <summary>The per-request path (read, parse, dispatch, reply) allocates nothing on the reader thread.</summary>
public sealed class HotPathAllocationTests
{
    private const int Requests = 2000;

    /// <summary>Notes the reader thread's allocation counter at every GETATTR and every READ.</summary>
    private sealed class ProbeFileSystem : RecordingFileSystem
    {
        public readonly long[] Allocated = new long[Requests];
        private int _calls;

        public override void Initialized(FuseConnectionInfo connection)
        {
        }

        public override Errno Read(FuseRequest request, ulong nodeId, ulong fh, long offset, Span<byte> buffer, out int bytesRead)
        {
            Allocated[_calls++] = GC.GetAllocatedBytesForCurrentThread();
            buffer[0] = 1;
            bytesRead = 1;
            return Errno.OK;
        }

        public override Errno Lookup(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, out FuseEntryOut entry)
        {
            Allocated[_calls++] = GC.GetAllocatedBytesForCurrentThread();
            entry = Entry(5);
            return Errno.OK;
        }
    }

    [Test]
    public void Serving_lookups_and_reads_allocates_nothing_per_request()
    {
        byte[] init = FakeKernel.Frame((uint)FuseOpcode.Init, 2, 0, FuseArgs.Of(FakeKernel.InitIn()).ToArray());
        byte[][] frames =
        [
            FakeKernel.Frame((uint)FuseOpcode.Lookup, 4, 1, FuseArgs.Empty.Name("some-name").ToArray()),
            FakeKernel.Frame((uint)FuseOpcode.Read, 6, 5, FuseArgs.Of(new FuseReadIn { Fh = 1, Size = 4096 }).ToArray()),
        ];
        var transport = new ReplayTransport(init, frames, Requests);
        var fs = new ProbeFileSystem();
        var server = new ProtocolServer(transport, fs, new ProtocolServerOptions { ReaderThreads = 1 });
        server.Run();

        Assert.That(transport.Replies, Is.EqualTo(Requests + 1));
        long perRequest = (fs.Allocated[Requests - 1] - fs.Allocated[Requests / 2]) / (Requests / 2);
        Assert.That(fs.Allocated[Requests - 1] - fs.Allocated[Requests / 2], Is.Zero,
            $"about {perRequest} bytes allocated per request on the reader thread");
    }
}
