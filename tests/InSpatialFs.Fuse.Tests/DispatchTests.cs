using System.Buffers.Binary;
using System.Text;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.TestKit;

namespace InSpatialFs.Fuse.Tests;

/// <summary>Every opcode through the fake kernel: what the file system is told, and what goes back on the wire.</summary>
public sealed class DispatchTests
{
    private RecordingFileSystem _fs = null!;
    private FakeKernel _kernel = null!;

    [SetUp]
    public void SetUp()
    {
        _fs = new RecordingFileSystem();
        _kernel = new FakeKernel(_fs);
        Assert.That(_kernel.Init().Error, Is.EqualTo(Errno.OK));
        _kernel.Call(FuseOpcode.StatFs, 1); // served after Initialized returned (one reader)
        _fs.Calls.Clear();
    }

    [TearDown]
    public void TearDown() => _kernel.Dispose();

    private string LastCall => _fs.Calls.Last();

    [Test]
    public void Lookup_passes_parent_name_and_caller_and_answers_entry_out()
    {
        FuseReply reply = _kernel.Call(FuseOpcode.Lookup, 1, FuseArgs.Empty.Name("etc"), uid: 1000, gid: 100, pid: 4242);
        Assert.That(LastCall, Is.EqualTo("Lookup 1 etc uid=1000 gid=100 pid=4242"));
        FuseEntryOut entry = reply.As<FuseEntryOut>();
        Assert.That((entry.NodeId, entry.Generation, entry.Attr.Ino), Is.EqualTo((RecordingFileSystem.LookupNode, 3UL, 1100UL)));
        Assert.That(reply.Header.Len, Is.EqualTo(16 + 128));
    }

    [Test]
    public void A_failed_lookup_is_a_bare_error_header()
    {
        FuseReply reply = _kernel.Call(FuseOpcode.Lookup, 1, FuseArgs.Empty.Name("missing"));
        Assert.That((reply.Error, reply.Body.Length, reply.Header.Len), Is.EqualTo((Errno.ENOENT, 0, 16u)));
    }

    [Test]
    public void Forget_and_batch_forget_reach_the_file_system_and_are_never_answered()
    {
        ulong forget = _kernel.Send(FuseOpcode.Forget, 7, FuseArgs.Of(new FuseForgetIn { Nlookup = 3 }));
        ulong batch = _kernel.Send(FuseOpcode.BatchForget, 0, FuseArgs.Of(new FuseBatchForgetIn { Count = 2 })
            .Struct(new FuseForgetOne { NodeId = 8, Nlookup = 1 }).Struct(new FuseForgetOne { NodeId = 9, Nlookup = 2 }));
        _kernel.Call(FuseOpcode.StatFs, 1); // one reader: once this is answered, both forgets were processed

        Assert.That(_fs.Calls, Does.Contain("Forget 7 3").And.Contain("Forget 8 1").And.Contain("Forget 9 2"));
        Assert.That(_kernel.RepliesTo(forget), Is.Empty);
        Assert.That(_kernel.RepliesTo(batch), Is.Empty);
    }

    [Test]
    public void GetAttr_passes_the_handle_only_when_GETATTR_FH_is_set()
    {
        FuseReply withFh = _kernel.Call(FuseOpcode.GetAttr, 5, FuseArgs.Of(new FuseGetattrIn { GetattrFlags = FuseConstants.GetattrFh, Fh = 9 }));
        Assert.That(LastCall, Is.EqualTo("GetAttr 5 fh=9"));
        _kernel.Call(FuseOpcode.GetAttr, 5, FuseArgs.Of(new FuseGetattrIn { Fh = 9 }));
        Assert.That(LastCall, Is.EqualTo("GetAttr 5 fh=none"));
        Assert.That(withFh.As<FuseAttrOut>().Attr.Ino, Is.EqualTo(1005UL));
    }

    [Test]
    public void SetAttr_decodes_the_whole_setattr_in()
    {
        FuseReply reply = _kernel.Call(FuseOpcode.SetAttr, 5, FuseArgs.Of(new FuseSetattrIn { Valid = (uint)(FattrFlags.Size | FattrFlags.Mode), Size = 42, Mode = 0x1ED }));
        Assert.That(LastCall, Is.EqualTo("SetAttr 5 valid=9 size=42 mode=1ed"));
        Assert.That(reply.As<FuseAttrOut>().Attr.Size, Is.EqualTo(42UL));
    }

    [Test]
    public void ReadLink_offers_a_page_minus_one_and_answers_the_bytes_without_NUL()
    {
        FuseReply reply = _kernel.Call(FuseOpcode.ReadLink, 5);
        Assert.That(LastCall, Is.EqualTo("ReadLink 5 room=4095"));
        Assert.That(Encoding.UTF8.GetString(reply.Body), Is.EqualTo("../target"));
    }

    [Test]
    public void Name_creating_operations_decode_their_structs_and_names()
    {
        Assert.That(_kernel.Call(FuseOpcode.Symlink, 1, FuseArgs.Empty.Name("link").Name("/etc/passwd")).As<FuseEntryOut>().Attr.Mode, Is.EqualTo(0xA1FFu));
        Assert.That(LastCall, Is.EqualTo("Symlink 1 link -> /etc/passwd"));
        _kernel.Call(FuseOpcode.MkNod, 1, FuseArgs.Of(new FuseMknodIn { Mode = 0x1180, Rdev = 0, Umask = 0x12 }).Name("fifo"));
        Assert.That(LastCall, Is.EqualTo("MkNod 1 fifo mode=1180 rdev=0 umask=12"));
        _kernel.Call(FuseOpcode.MkDir, 1, FuseArgs.Of(new FuseMkdirIn { Mode = 0x1ED, Umask = 0x12 }).Name("d"));
        Assert.That(LastCall, Is.EqualTo("MkDir 1 d mode=1ed umask=12"));
        _kernel.Call(FuseOpcode.Link, 2, FuseArgs.Of(new FuseLinkIn { OldNodeId = 5 }).Name("hard"));
        Assert.That(LastCall, Is.EqualTo("Link 5 -> 2 hard"));
    }

    [Test]
    public void Unlink_rmdir_and_both_renames_pass_names_and_flags()
    {
        Assert.That(_kernel.Call(FuseOpcode.Unlink, 1, FuseArgs.Empty.Name("f")).Error, Is.EqualTo(Errno.OK));
        Assert.That(LastCall, Is.EqualTo("Unlink 1 f"));
        Assert.That(_kernel.Call(FuseOpcode.RmDir, 1, FuseArgs.Empty.Name("d")).Error, Is.EqualTo(Errno.ENOTEMPTY));
        _kernel.Call(FuseOpcode.Rename, 1, FuseArgs.Of(new FuseRenameIn { NewDir = 3 }).Name("a").Name("b"));
        Assert.That(LastCall, Is.EqualTo("Rename 1 a -> 3 b flags=0"));
        _kernel.Call(FuseOpcode.Rename2, 1, FuseArgs.Of(new FuseRename2In { NewDir = 3, Flags = 2 }).Name("a").Name("b"));
        Assert.That(LastCall, Is.EqualTo("Rename 1 a -> 3 b flags=2"));
    }

    [Test]
    public void Open_and_opendir_answer_open_out()
    {
        FuseOpenOut open = _kernel.Call(FuseOpcode.Open, 5, FuseArgs.Of(new FuseOpenIn { Flags = 0x8002 })).As<FuseOpenOut>();
        Assert.That(LastCall, Is.EqualTo("Open 5 flags=8002"));
        Assert.That((open.Fh, open.OpenFlags), Is.EqualTo((RecordingFileSystem.OpenFh, FopenFlags.KeepCache)));
        FuseOpenOut dir = _kernel.Call(FuseOpcode.OpenDir, 1, FuseArgs.Of(new FuseOpenIn { Flags = 0x10000 })).As<FuseOpenOut>();
        Assert.That((dir.Fh, dir.OpenFlags), Is.EqualTo((RecordingFileSystem.OpenFh + 1, FopenFlags.CacheDir)));
    }

    [Test]
    public void Read_hands_a_buffer_of_the_requested_size_and_answers_what_was_filled()
    {
        FuseReply reply = _kernel.Call(FuseOpcode.Read, 5, FuseArgs.Of(new FuseReadIn { Fh = 77, Offset = 7, Size = 3 }));
        Assert.That(LastCall, Is.EqualTo("Read 5 fh=77 off=7 room=3"));
        Assert.That(Encoding.UTF8.GetString(reply.Body), Is.EqualTo("fus"));
        FuseReply tail = _kernel.Call(FuseOpcode.Read, 5, FuseArgs.Of(new FuseReadIn { Fh = 77, Offset = 7, Size = 4096 }));
        Assert.That(Encoding.UTF8.GetString(tail.Body), Is.EqualTo("fuse"), "a short read is EOF");
    }

    [Test]
    public void Write_passes_exactly_size_bytes_and_answers_write_out()
    {
        FuseReply reply = _kernel.Call(FuseOpcode.Write, 5, FuseArgs.Of(new FuseWriteIn { Fh = 77, Offset = 10, Size = 4, WriteFlags = 4 }).Raw("abcd"u8));
        Assert.That(LastCall, Is.EqualTo("Write 5 fh=77 off=10 flags=4 data=abcd"));
        Assert.That(reply.As<FuseWriteOut>().Size, Is.EqualTo(4u));
    }

    [Test]
    public void StatFs_answers_the_80_byte_statfs_out()
    {
        FuseStatfsOut st = _kernel.Call(FuseOpcode.StatFs, 1).As<FuseStatfsOut>();
        Assert.That((st.St.Blocks, st.St.Bavail, st.St.NameLen), Is.EqualTo((1000UL, 300UL, 255u)));
    }

    [Test]
    public void Release_flush_fsync_and_their_dir_forms_are_answered_empty()
    {
        Assert.That(_kernel.Call(FuseOpcode.Release, 5, FuseArgs.Of(new FuseReleaseIn { Fh = 77, Flags = 0x8001 })).Body, Is.Empty);
        Assert.That(LastCall, Is.EqualTo("Release 5 fh=77 flags=8001"));
        _kernel.Call(FuseOpcode.Flush, 5, FuseArgs.Of(new FuseFlushIn { Fh = 77 }));
        Assert.That(LastCall, Is.EqualTo("Flush 5 fh=77"));
        _kernel.Call(FuseOpcode.Fsync, 5, FuseArgs.Of(new FuseFsyncIn { Fh = 77, FsyncFlags = FuseConstants.FsyncFdatasync }));
        Assert.That(LastCall, Is.EqualTo("Fsync 5 fh=77 dataOnly=True"));
        _kernel.Call(FuseOpcode.FsyncDir, 1, FuseArgs.Of(new FuseFsyncIn { Fh = 78 }));
        Assert.That(LastCall, Is.EqualTo("FsyncDir 1 fh=78 dataOnly=False"));
        _kernel.Call(FuseOpcode.ReleaseDir, 1, FuseArgs.Of(new FuseReleaseIn { Fh = 78 }));
        Assert.That(LastCall, Is.EqualTo("ReleaseDir 1 fh=78"));
    }

    [Test]
    public void Access_returns_the_file_systems_verdict()
    {
        Assert.That(_kernel.Call(FuseOpcode.Access, 5, FuseArgs.Of(new FuseAccessIn { Mask = 2 })).Error, Is.EqualTo(Errno.EACCES));
        Assert.That(LastCall, Is.EqualTo("Access 5 mask=2"));
    }

    [Test]
    public void SetXattr_with_SETXATTR_EXT_parses_the_16_byte_struct()
    {
        _kernel.Call(FuseOpcode.SetXattr, 5, FuseArgs.Of(new FuseSetxattrIn { Size = 3, Flags = 1 }).Name("user.a").Raw("xyz"u8));
        Assert.That(LastCall, Is.EqualTo("SetXattr 5 user.a=xyz flags=1"));
    }

    [Test]
    public void GetXattr_size_zero_asks_for_the_length_and_a_small_buffer_gets_ERANGE()
    {
        FuseReply size = _kernel.Call(FuseOpcode.GetXattr, 5, FuseArgs.Of(new FuseGetxattrIn { Size = 0 }).Name("user.a"));
        Assert.That(size.As<FuseGetxattrOut>().Size, Is.EqualTo(5u));
        Assert.That(LastCall, Is.EqualTo("GetXattr 5 user.a room=0"));
        FuseReply value = _kernel.Call(FuseOpcode.GetXattr, 5, FuseArgs.Of(new FuseGetxattrIn { Size = 100 }).Name("user.a"));
        Assert.That(Encoding.UTF8.GetString(value.Body), Is.EqualTo("value"));
        Assert.That(_kernel.Call(FuseOpcode.GetXattr, 5, FuseArgs.Of(new FuseGetxattrIn { Size = 2 }).Name("user.a")).Error, Is.EqualTo(Errno.ERANGE));
    }

    [Test]
    public void ListXattr_and_RemoveXattr()
    {
        Assert.That(_kernel.Call(FuseOpcode.ListXattr, 5, FuseArgs.Of(new FuseGetxattrIn { Size = 0 })).As<FuseGetxattrOut>().Size, Is.EqualTo(14u));
        Assert.That(_kernel.Call(FuseOpcode.ListXattr, 5, FuseArgs.Of(new FuseGetxattrIn { Size = 64 })).Body, Is.EqualTo("user.a\0user.b\0"u8.ToArray()));
        Assert.That(_kernel.Call(FuseOpcode.RemoveXattr, 5, FuseArgs.Empty.Name("user.a")).Error, Is.EqualTo(Errno.ENODATA));
    }

    [Test]
    public void ReadDir_fills_dirents_up_to_the_requested_size_and_resumes_at_the_cookie()
    {
        FuseReply all = _kernel.Call(FuseOpcode.ReadDir, 1, FuseArgs.Of(new FuseReadIn { Fh = 78, Size = 4096 }));
        Assert.That(Dirents(all.Body, plus: false), Is.EqualTo(new[] { ("alpha", 1L), ("beta", 2L), ("gamma", 3L) }));
        FuseReply small = _kernel.Call(FuseOpcode.ReadDir, 1, FuseArgs.Of(new FuseReadIn { Fh = 78, Size = 40 }));
        Assert.That(Dirents(small.Body, plus: false), Is.EqualTo(new[] { ("alpha", 1L) }), "records are never split");
        FuseReply resumed = _kernel.Call(FuseOpcode.ReadDir, 1, FuseArgs.Of(new FuseReadIn { Fh = 78, Offset = 2, Size = 4096 }));
        Assert.That(Dirents(resumed.Body, plus: false), Is.EqualTo(new[] { ("gamma", 3L) }));
    }

    [Test]
    public void ReadDirPlus_writes_entry_out_before_each_dirent()
    {
        FuseReply reply = _kernel.Call(FuseOpcode.ReadDirPlus, 1, FuseArgs.Of(new FuseReadIn { Fh = 78, Size = 4096 }));
        Assert.That(LastCall, Is.EqualTo("ReadDir 1 fh=78 off=0 plus=True"));
        Assert.That(Dirents(reply.Body, plus: true), Is.EqualTo(new[] { ("alpha", 1L), ("beta", 2L), ("gamma", 3L) }));
        Assert.That(reply.At<FuseEntryOut>(0).NodeId, Is.EqualTo(200UL));
    }

    [Test]
    public void Create_and_tmpfile_answer_entry_out_followed_by_open_out()
    {
        FuseReply create = _kernel.Call(FuseOpcode.Create, 1, FuseArgs.Of(new FuseCreateIn { Flags = 0xC1, Mode = 0x81A4, Umask = 0x12 }).Name("new"));
        Assert.That(LastCall, Is.EqualTo("Create 1 new flags=c1 mode=81a4 umask=12"));
        Assert.That(create.Body, Has.Length.EqualTo(144));
        Assert.That(create.At<FuseEntryOut>(0).NodeId, Is.EqualTo(RecordingFileSystem.LookupNode));
        FuseOpenOut open = create.At<FuseOpenOut>(128);
        Assert.That((open.Fh, open.OpenFlags, open.BackingId), Is.EqualTo((RecordingFileSystem.OpenFh, FopenFlags.Passthrough, 9)));

        FuseReply tmp = _kernel.Call(FuseOpcode.TmpFile, 1, FuseArgs.Of(new FuseCreateIn { Flags = 0x410002, Mode = 0x8180 }).Name("/"));
        Assert.That(LastCall, Is.EqualTo("TmpFile 1 flags=410002 mode=8180"));
        Assert.That(tmp.Body, Has.Length.EqualTo(144));
    }

    [Test]
    public void Fallocate_lseek_and_both_copy_file_ranges()
    {
        _kernel.Call(FuseOpcode.Fallocate, 5, FuseArgs.Of(new FuseFallocateIn { Fh = 77, Offset = 10, Length = 20, Mode = 1 }));
        Assert.That(LastCall, Is.EqualTo("Fallocate 5 fh=77 mode=1 off=10 len=20"));
        Assert.That(_kernel.Call(FuseOpcode.Lseek, 5, FuseArgs.Of(new FuseLseekIn { Fh = 77, Offset = 100, Whence = 3 })).As<FuseLseekOut>().Offset, Is.EqualTo(4196UL));
        Assert.That(LastCall, Is.EqualTo("Lseek 5 fh=77 off=100 whence=3"));
        var range = new FuseCopyFileRangeIn { FhIn = 1, OffIn = 2, NodeIdOut = 6, FhOut = 3, OffOut = 4, Len = 1000 };
        Assert.That(_kernel.Call(FuseOpcode.CopyFileRange, 5, FuseArgs.Of(range)).As<FuseWriteOut>().Size, Is.EqualTo(500u));
        Assert.That(LastCall, Is.EqualTo("CopyFileRange 5/1@2 -> 6/3@4 len=1000"));
        Assert.That(_kernel.Call(FuseOpcode.CopyFileRange64, 5, FuseArgs.Of(range)).As<FuseCopyFileRangeOut>().BytesCopied, Is.EqualTo(500UL));
    }

    [TestCase(FuseOpcode.Ioctl, Errno.ENOTTY)]
    [TestCase(FuseOpcode.Poll, Errno.ENOSYS)]
    [TestCase(FuseOpcode.GetLk, Errno.ENOSYS)]
    [TestCase(FuseOpcode.SetLkW, Errno.ENOSYS)]
    [TestCase(FuseOpcode.Bmap, Errno.ENOSYS)]
    [TestCase(FuseOpcode.Statx, Errno.ENOSYS)]
    [TestCase(FuseOpcode.SyncFs, Errno.ENOSYS)]
    [TestCase(FuseOpcode.CuseInit, Errno.ENOSYS)]
    [TestCase((FuseOpcode)54, Errno.ENOSYS)]
    [TestCase((FuseOpcode)0, Errno.ENOSYS)]
    [TestCase((FuseOpcode)0xFFFFFFFF, Errno.ENOSYS)]
    public void Unserved_opcodes_get_their_fixed_error(FuseOpcode opcode, Errno expected)
    {
        int before = _fs.Calls.Count;
        FuseReply reply = _kernel.Call(opcode, 5, FuseArgs.Empty.Raw(new byte[64]));
        Assert.That((reply.Error, reply.Body.Length), Is.EqualTo((expected, 0)));
        Assert.That(_fs.Calls, Has.Count.EqualTo(before), "the file system is not called");
    }

    [Test]
    public void Notify_reply_is_dropped_and_destroy_is_acknowledged()
    {
        ulong notifyReply = _kernel.Send(FuseOpcode.NotifyReply, 5, FuseArgs.Of(new FuseNotifyRetrieveIn { Size = 0 }));
        Assert.That(_kernel.Call(FuseOpcode.Destroy, 0).Error, Is.EqualTo(Errno.OK));
        Assert.That(_kernel.RepliesTo(notifyReply), Is.Empty);
    }

    [Test]
    public void A_handler_that_throws_gets_EIO_and_the_server_keeps_serving()
    {
        _fs.ThrowOn = "Open";
        Assert.That(_kernel.Call(FuseOpcode.Open, 5, FuseArgs.Of(new FuseOpenIn())).Error, Is.EqualTo(Errno.EIO));
        _fs.ThrowOn = null;
        Assert.That(_kernel.Call(FuseOpcode.Open, 5, FuseArgs.Of(new FuseOpenIn())).Error, Is.EqualTo(Errno.OK));
        Assert.That(_kernel.Server.Completion.IsCompleted, Is.False);
    }

    [Test]
    public void Every_opcode_of_a_complete_file_system_has_a_handler()
    {
        FuseOpcode[] required =
        [
            FuseOpcode.Lookup, FuseOpcode.Forget, FuseOpcode.GetAttr, FuseOpcode.SetAttr, FuseOpcode.ReadLink, FuseOpcode.Symlink,
            FuseOpcode.MkNod, FuseOpcode.MkDir, FuseOpcode.Unlink, FuseOpcode.RmDir, FuseOpcode.Rename, FuseOpcode.Rename2, FuseOpcode.Link,
            FuseOpcode.Open, FuseOpcode.Read, FuseOpcode.Write, FuseOpcode.StatFs, FuseOpcode.Release, FuseOpcode.Fsync, FuseOpcode.SetXattr,
            FuseOpcode.GetXattr, FuseOpcode.ListXattr, FuseOpcode.RemoveXattr, FuseOpcode.Flush, FuseOpcode.Init, FuseOpcode.OpenDir,
            FuseOpcode.ReadDir, FuseOpcode.ReadDirPlus, FuseOpcode.ReleaseDir, FuseOpcode.FsyncDir, FuseOpcode.Access, FuseOpcode.Create,
            FuseOpcode.Interrupt, FuseOpcode.BatchForget, FuseOpcode.Fallocate, FuseOpcode.Lseek, FuseOpcode.CopyFileRange,
            FuseOpcode.CopyFileRange64, FuseOpcode.TmpFile,
        ];
        Assert.That(required.Where(op => !ProtocolServer.DescribeOpcode((uint)op).Handled), Is.Empty);
        Assert.That(ProtocolServer.DescribeOpcode(9999).Handled, Is.False, "the control: an opcode no kernel sends has no handler");
        Assert.That(new[] { FuseOpcode.Forget, FuseOpcode.BatchForget, FuseOpcode.NotifyReply }.All(op => ProtocolServer.DescribeOpcode((uint)op).NeverReplied));
    }

    [Test]
    public void With_several_readers_every_reply_goes_back_on_the_channel_its_request_was_read_from()
    {
        using var kernel = new FakeKernel(new RecordingFileSystem(), new ProtocolServerOptions { ReaderThreads = 3 });
        kernel.Init();
        var uniques = Enumerable.Range(0, 300).Select(i => kernel.Send(FuseOpcode.GetAttr, (ulong)i + 1, FuseArgs.Of(new FuseGetattrIn()))).ToList();
        foreach (ulong u in uniques)
        {
            FuseReply reply = kernel.WaitReply(u);
            Assert.That(reply.Channel, Is.EqualTo(kernel.Transport.ChannelThatRead(u)), $"unique {u}");
        }

        Assert.That(kernel.Transport.ChannelCount, Is.InRange(2, 3), "two readers from INIT, a third only when both were busy");
    }

    private static List<(string Name, long Next)> Dirents(byte[] body, bool plus)
    {
        var result = new List<(string, long)>();
        int at = 0;
        int skip = plus ? 128 : 0;
        while (at < body.Length)
        {
            ReadOnlySpan<byte> d = body.AsSpan(at + skip);
            long next = BinaryPrimitives.ReadInt64LittleEndian(d[8..]);
            int nameLen = (int)BinaryPrimitives.ReadUInt32LittleEndian(d[16..]);
            result.Add((Encoding.UTF8.GetString(d.Slice(24, nameLen)), next));
            at += skip + ((24 + nameLen + 7) & ~7);
        }

        Assert.That(at, Is.EqualTo(body.Length), "records end exactly at the body end");
        return result;
    }
}
