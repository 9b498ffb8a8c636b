using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.TestKit;

namespace InSpatialFs.Fuse.Tests;

/// <summary>The per-opcode request counters the daemon's status and metrics report (requests per benchmark phase).</summary>
public sealed class RequestCountTests
{
    [Test]
    public void Every_request_read_is_counted_under_its_opcode_including_unanswered_and_unknown_ones()
    {
        using var kernel = new FakeKernel(new RecordingFileSystem());
        Assert.That(kernel.Init().Error, Is.EqualTo(Errno.OK));
        long[] before = kernel.Server.RequestCounts();
        for (int i = 0; i < 3; i++) kernel.Call(FuseOpcode.Lookup, 1, FuseArgs.Empty.Name("etc"));
        kernel.Send(FuseOpcode.Forget, 7, FuseArgs.Of(new FuseForgetIn { Nlookup = 1 }));
        kernel.SendRaw(FakeKernel.Frame(9999, kernel.NextUnique(), 1, default));
        kernel.Call(FuseOpcode.StatFs, 1); // one reader: once this is answered, everything before it was read

        long[] after = kernel.Server.RequestCounts();
        long Delta(int slot) => after[slot] - before[slot];
        Assert.Multiple(() =>
        {
            Assert.That(Delta((int)FuseOpcode.Lookup), Is.EqualTo(3));
            Assert.That(Delta((int)FuseOpcode.Forget), Is.EqualTo(1), "counted though never answered");
            Assert.That(Delta((int)FuseOpcode.StatFs), Is.EqualTo(1));
            Assert.That(Delta(after.Length - 1), Is.EqualTo(1), "an opcode beyond the table lands in the last slot");
            Assert.That(ProtocolServer.RequestCountName(after.Length - 1), Is.EqualTo("UNKNOWN"));
            Assert.That(ProtocolServer.RequestCountName((int)FuseOpcode.Lookup), Is.EqualTo("LOOKUP"));
            Assert.That(Delta((int)FuseOpcode.GetAttr), Is.Zero, "no request, no count");
            Assert.That(after.Sum() - before.Sum(), Is.EqualTo(6));
        });
    }
}
