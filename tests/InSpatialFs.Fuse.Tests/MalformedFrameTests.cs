using System.Buffers.Binary;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.TestKit;

namespace InSpatialFs.Fuse.Tests;

/// <summary>Frames the kernel would never send: each gets its error reply or is dropped, and serving goes on.</summary>
public sealed class MalformedFrameTests
{
    private RecordingFileSystem _fs = null!;
    private FakeKernel _kernel = null!;

    [SetUp]
    public void SetUp()
    {
        _fs = new RecordingFileSystem();
        _kernel = new FakeKernel(_fs);
        _kernel.Init();
        _kernel.Call(FuseOpcode.StatFs, 1);
        _fs.Calls.Clear();
    }

    [TearDown]
    public void TearDown()
    {
        // After every malformed frame the server still answers a valid request correctly.
        FuseReply reply = _kernel.Call(FuseOpcode.Lookup, 1, FuseArgs.Empty.Name("after"));
        Assert.That(reply.As<FuseEntryOut>().NodeId, Is.EqualTo(RecordingFileSystem.LookupNode));
        Assert.That(_kernel.Server.Completion.IsCompleted, Is.False);
        _kernel.Dispose();
    }

    private static byte[] Valid(FuseOpcode op, ulong unique, FuseArgs args) => FakeKernel.Frame((uint)op, unique, 1, args.ToArray());

    [TestCase(0)]
    [TestCase(15)]
    [TestCase(39)]
    public void A_frame_shorter_than_the_header_is_dropped(int length)
    {
        byte[] frame = Valid(FuseOpcode.GetAttr, 500, FuseArgs.Of(new FuseGetattrIn()))[..length];
        _kernel.SendRaw(frame);
        _kernel.Call(FuseOpcode.StatFs, 1);
        Assert.That(_kernel.RepliesTo(500), Is.Empty);
    }

    [TestCase(100u)]
    [TestCase(41u)]
    [TestCase(0u)]
    public void A_header_len_that_differs_from_the_bytes_read_gets_EIO(uint claimed)
    {
        byte[] frame = Valid(FuseOpcode.GetAttr, 502, FuseArgs.Of(new FuseGetattrIn()));
        BinaryPrimitives.WriteUInt32LittleEndian(frame, claimed);
        _kernel.SendRaw(frame);
        Assert.That(_kernel.WaitReply(502).Error, Is.EqualTo(Errno.EIO));
        Assert.That(_fs.Calls, Is.Empty);
    }

    [Test]
    public void A_total_extlen_reaching_past_the_frame_gets_EIO()
    {
        byte[] frame = Valid(FuseOpcode.Lookup, 504, FuseArgs.Empty.Name("x"));
        BinaryPrimitives.WriteUInt16LittleEndian(frame.AsSpan(36), ushort.MaxValue);
        _kernel.SendRaw(frame);
        Assert.That(_kernel.WaitReply(504).Error, Is.EqualTo(Errno.EIO));
    }

    [Test]
    public void The_extension_area_is_not_part_of_the_arguments()
    {
        byte[] extension = new byte[16];
        extension.AsSpan().Fill((byte)'Z'); // no NUL: a name must be found before the extension starts
        _kernel.SendRaw(FakeKernel.Frame((uint)FuseOpcode.Lookup, 506, 1, FuseArgs.Empty.Name("dir").ToArray(), extension: extension));
        Assert.That(_kernel.WaitReply(506).Error, Is.EqualTo(Errno.OK));
        Assert.That(_fs.Calls.Single(), Does.StartWith("Lookup 1 dir "));

        _kernel.SendRaw(FakeKernel.Frame((uint)FuseOpcode.Lookup, 508, 1, "dir"u8.ToArray(), extension: "\0\0\0\0\0\0\0\0"u8.ToArray()));
        Assert.That(_kernel.WaitReply(508).Error, Is.EqualTo(Errno.EINVAL), "the NUL inside the extension does not terminate the name");
    }

    [TestCase(FuseOpcode.GetAttr, 8)]
    [TestCase(FuseOpcode.Read, 39)]
    [TestCase(FuseOpcode.Write, 24)]
    [TestCase(FuseOpcode.SetAttr, 80)]
    [TestCase(FuseOpcode.Create, 15)]
    [TestCase(FuseOpcode.Init, 8)]
    [TestCase(FuseOpcode.Interrupt, 4)]
    [TestCase(FuseOpcode.CopyFileRange, 48)]
    public void Arguments_shorter_than_the_opcodes_struct_get_EINVAL(FuseOpcode op, int argLength)
    {
        _kernel.SendRaw(FakeKernel.Frame((uint)op, 510, 1, new byte[argLength]));
        Assert.That(_kernel.WaitReply(510).Error, Is.EqualTo(Errno.EINVAL));
        Assert.That(_fs.Calls, Is.Empty);
    }

    [TestCase(FuseOpcode.Lookup)]
    [TestCase(FuseOpcode.Unlink)]
    [TestCase(FuseOpcode.RmDir)]
    [TestCase(FuseOpcode.RemoveXattr)]
    public void A_name_without_NUL_or_an_empty_name_gets_EINVAL(FuseOpcode op)
    {
        _kernel.SendRaw(FakeKernel.Frame((uint)op, 512, 1, "abc"u8.ToArray()));
        _kernel.SendRaw(FakeKernel.Frame((uint)op, 514, 1, "\0"u8.ToArray()));
        Assert.That(_kernel.WaitReply(512).Error, Is.EqualTo(Errno.EINVAL));
        Assert.That(_kernel.WaitReply(514).Error, Is.EqualTo(Errno.EINVAL));
        Assert.That(_fs.Calls, Is.Empty);
    }

    [Test]
    public void A_rename_with_only_one_name_gets_EINVAL()
    {
        _kernel.SendRaw(Valid(FuseOpcode.Rename, 516, FuseArgs.Of(new FuseRenameIn { NewDir = 1 }).Name("only")));
        Assert.That(_kernel.WaitReply(516).Error, Is.EqualTo(Errno.EINVAL));
    }

    [Test]
    public void A_write_whose_size_exceeds_its_payload_gets_EINVAL()
    {
        _kernel.SendRaw(Valid(FuseOpcode.Write, 518, FuseArgs.Of(new FuseWriteIn { Size = 100 }).Raw("short"u8)));
        Assert.That(_kernel.WaitReply(518).Error, Is.EqualTo(Errno.EINVAL));
        Assert.That(_fs.Calls, Is.Empty);
    }

    [Test]
    public void A_setxattr_value_longer_than_the_frame_gets_EINVAL()
    {
        _kernel.SendRaw(Valid(FuseOpcode.SetXattr, 520, FuseArgs.Of(new FuseSetxattrIn { Size = 1000 }).Name("user.a").Raw("v"u8)));
        Assert.That(_kernel.WaitReply(520).Error, Is.EqualTo(Errno.EINVAL));
    }

    [Test]
    public void A_short_forget_and_a_batch_forget_claiming_more_items_than_sent_are_dropped_unanswered()
    {
        _kernel.SendRaw(FakeKernel.Frame((uint)FuseOpcode.Forget, 522, 7, new byte[4]));
        _kernel.SendRaw(Valid(FuseOpcode.BatchForget, 524, FuseArgs.Of(new FuseBatchForgetIn { Count = 1000 }).Struct(new FuseForgetOne { NodeId = 8, Nlookup = 1 })));
        _kernel.SendRaw(Valid(FuseOpcode.BatchForget, 526, FuseArgs.Of(new FuseBatchForgetIn { Count = uint.MaxValue })));
        _kernel.Call(FuseOpcode.StatFs, 1);
        Assert.That(_kernel.RepliesTo(522).Concat(_kernel.RepliesTo(524)).Concat(_kernel.RepliesTo(526)), Is.Empty);
        Assert.That(_fs.Calls.Where(c => c.StartsWith("Forget", StringComparison.Ordinal)), Is.Empty);
    }

    [Test]
    public void An_unknown_opcode_gets_ENOSYS()
    {
        _kernel.SendRaw(FakeKernel.Frame(777, 528, 1, new byte[8]));
        Assert.That(_kernel.WaitReply(528).Error, Is.EqualTo(Errno.ENOSYS));
    }
}
