using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.TestKit;

namespace InSpatialFs.Fuse.Tests;

/// <summary>INTERRUPT: marks the in-flight request (its handler answers EINTR); EAGAIN when the target is unknown.</summary>
public sealed class InterruptTests
{
    /// <summary>READ blocks until interrupted (or 10 s), then answers EINTR.</summary>
    private sealed class BlockingReadFileSystem : RecordingFileSystem
    {
        public ManualResetEventSlim Entered { get; } = new();

        public override Errno Read(FuseRequest request, ulong nodeId, ulong fh, long offset, Span<byte> buffer, out int bytesRead)
        {
            bytesRead = 0;
            Entered.Set();
            return request.WaitForInterrupt(TimeSpan.FromSeconds(10)) ? Errno.EINTR : Errno.OK;
        }
    }

    [Test]
    public void Interrupt_marks_the_in_flight_request_which_answers_EINTR_and_the_interrupt_itself_is_not_answered()
    {
        var fs = new BlockingReadFileSystem();
        using var kernel = new FakeKernel(fs, new ProtocolServerOptions { ReaderThreads = 2 });
        kernel.Init();
        ulong read = kernel.Send(FuseOpcode.Read, 5, FuseArgs.Of(new FuseReadIn { Fh = 1, Size = 10 }));
        Assert.That(fs.Entered.Wait(TimeSpan.FromSeconds(10)), Is.True, "the READ handler started");

        ulong interrupt = read | FuseConstants.UniqueInterruptBit;
        kernel.SendRaw(FakeKernel.Frame((uint)FuseOpcode.Interrupt, interrupt, 0, FuseArgs.Of(new FuseInterruptIn { Unique = read }).ToArray()));

        FuseReply reply = kernel.WaitReply(read);
        Assert.That(reply.Error, Is.EqualTo(Errno.EINTR));
        Assert.That(kernel.RepliesTo(interrupt), Is.Empty);
    }

    [Test]
    public void Interrupt_of_an_unknown_request_is_answered_EAGAIN_so_the_kernel_requeues_it()
    {
        using var kernel = new FakeKernel(new RecordingFileSystem());
        kernel.Init();
        const ulong unknown = 1000;
        kernel.SendRaw(FakeKernel.Frame((uint)FuseOpcode.Interrupt, unknown | 1, 0, FuseArgs.Of(new FuseInterruptIn { Unique = unknown }).ToArray()));
        Assert.That(kernel.WaitReply(unknown | 1).Error, Is.EqualTo(Errno.EAGAIN));
    }

    [Test]
    public void An_interrupt_does_not_leak_into_the_next_request_of_the_same_reader()
    {
        var fs = new BlockingReadFileSystem();
        using var kernel = new FakeKernel(fs, new ProtocolServerOptions { ReaderThreads = 2 });
        kernel.Init();
        ulong first = kernel.Send(FuseOpcode.Read, 5, FuseArgs.Of(new FuseReadIn { Size = 10 }));
        fs.Entered.Wait(TimeSpan.FromSeconds(10));
        kernel.SendRaw(FakeKernel.Frame((uint)FuseOpcode.Interrupt, first | 1, 0, FuseArgs.Of(new FuseInterruptIn { Unique = first }).ToArray()));
        Assert.That(kernel.WaitReply(first).Error, Is.EqualTo(Errno.EINTR));

        fs.Entered.Reset();
        ulong second = kernel.Send(FuseOpcode.Read, 5, FuseArgs.Of(new FuseReadIn { Size = 10 }));
        Assert.That(fs.Entered.Wait(TimeSpan.FromSeconds(10)), Is.True);
        Assert.That(kernel.TryWaitReply(second, TimeSpan.FromMilliseconds(300)), Is.Null, "the second READ is still waiting, not pre-interrupted");
        kernel.SendRaw(FakeKernel.Frame((uint)FuseOpcode.Interrupt, second | 1, 0, FuseArgs.Of(new FuseInterruptIn { Unique = second }).ToArray()));
        Assert.That(kernel.WaitReply(second).Error, Is.EqualTo(Errno.EINTR));
    }
}
