using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.TestKit;

namespace InSpatialFs.Fuse.Tests;

/// <summary>
/// Readers start on demand: two at INIT, one more whenever every reader is inside a handler, never more than
/// ReaderThreads. A handler that blocks (an events reader of the control mount) must never leave the mount with no
/// reader in read(2).
/// </summary>
public sealed class ReaderGrowthTests
{
    /// <summary>READ blocks until released; every READ that entered is counted.</summary>
    private sealed class BlockingReadFileSystem : RecordingFileSystem
    {
        private int _entered;

        public ManualResetEventSlim Unblock { get; } = new();

        public int Entered => Volatile.Read(ref _entered);

        public override Errno Read(FuseRequest request, ulong nodeId, ulong fh, long offset, Span<byte> buffer, out int bytesRead)
        {
            bytesRead = 0;
            Interlocked.Increment(ref _entered);
            Unblock.Wait(TimeSpan.FromSeconds(20));
            return Errno.OK;
        }
    }

    [Test]
    public void An_idle_server_has_two_readers_and_blocked_handlers_get_new_ones_up_to_the_limit()
    {
        var fs = new BlockingReadFileSystem();
        using var kernel = new FakeKernel(fs, new ProtocolServerOptions { ReaderThreads = 4 });
        kernel.Init();
        Assert.That(() => kernel.Transport.ChannelCount, Is.EqualTo(2).After(5000).MilliSeconds.PollEvery(20).MilliSeconds, "two readers after INIT");
        Thread.Sleep(200);
        Assert.That(kernel.Transport.ChannelCount, Is.EqualTo(2), "an idle server does not grow");

        // Three blocking READs hold three readers; a fourth reader starts, and still answers other requests.
        var reads = Enumerable.Range(0, 3).Select(_ => kernel.Send(FuseOpcode.Read, 5, FuseArgs.Of(new FuseReadIn { Fh = 1, Size = 10 }))).ToList();
        Assert.That(() => fs.Entered, Is.EqualTo(3).After(10000).MilliSeconds.PollEvery(20).MilliSeconds, "three handlers blocked at once");
        Assert.That(kernel.Call(FuseOpcode.GetAttr, 1, FuseArgs.Of(new FuseGetattrIn())).Error, Is.EqualTo(Errno.OK), "a request is still served");
        Assert.That(kernel.Transport.ChannelCount, Is.EqualTo(4), "grown to ReaderThreads");

        // At the limit nothing more starts: a fourth blocking READ takes the last reader, and the next request waits for one.
        ulong fourth = kernel.Send(FuseOpcode.Read, 5, FuseArgs.Of(new FuseReadIn { Fh = 1, Size = 10 }));
        Assert.That(() => fs.Entered, Is.EqualTo(4).After(10000).MilliSeconds.PollEvery(20).MilliSeconds);
        Assert.That(kernel.Transport.ChannelCount, Is.EqualTo(4), "never more than ReaderThreads");
        fs.Unblock.Set();
        reads.ForEach(u => Assert.That(kernel.WaitReply(u).Error, Is.EqualTo(Errno.OK)));
        Assert.That(kernel.WaitReply(fourth).Error, Is.EqualTo(Errno.OK));
    }
}
