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

    /// <summary>Notes the reader thread's allocation counter at every spliced READ.</summary>
    private sealed class ProbeFileSystem(SafeFd file) : RecordingFileSystem, IFuseSplicedRead
    {
        public readonly long[] Allocated = new long[Requests];
        private int _calls;

        public bool SplicedReadsWanted => true;

        public override void Initialized(FuseConnectionInfo connection)
        {
        }

        public bool TryReadSpliced(FuseRequest request, ulong nodeId, ulong fh, long offset, int size, out SplicedReadSource source, out Errno result)
        {
            Allocated[_calls++] = GC.GetAllocatedBytesForCurrentThread();
            result = SplicedReadSource.TryLease(file, offset, size, out source) ? Errno.OK : Errno.EBADF;
            return true;
        }

        public void ReadSpliced(FuseRequest request, ulong fh, int bytes)
        {
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
                var transport = new ReplayTransport(init, [read], Requests);
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
