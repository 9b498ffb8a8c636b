using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Memory;
using InSpatialFs.TestKit.Runtime;

namespace InSpatialFs.Storage.Tests.Memory;

public sealed class MemoryNamespaceTests
{
    private MemoryFileSystem _fs = null!;

    [SetUp]
    public void SetUp() => _fs = new MemoryFileSystem();

    [TearDown]
    public void TearDown() => _fs.Dispose();

    [Test]
    public void Directory_nlink_is_two_plus_subdirectories()
    {
        ulong dir = _fs.MkDir(_fs.RootIno, "d");
        Assert.That(_fs.Attr(dir).Nlink, Is.EqualTo(2u));
        _fs.MkDir(dir, "a");
        _fs.MkDir(dir, "b");
        _fs.Touch(dir, "file");
        Assert.That(_fs.Attr(dir).Nlink, Is.EqualTo(4u));
        Assert.That(_fs.RmDir(dir, Fs.N("a")), Is.EqualTo(Errno.OK));
        Assert.That(_fs.Attr(dir).Nlink, Is.EqualTo(3u));
        Assert.That(_fs.Attr(_fs.RootIno).Nlink, Is.EqualTo(3u));
    }

    [Test]
    public void Hard_links_share_the_inode_and_count_names()
    {
        ulong file = _fs.Touch(_fs.RootIno, "a");
        ulong dir = _fs.MkDir(_fs.RootIno, "d");
        Assert.That(_fs.Link(file, dir, Fs.N("b"), out var attr), Is.EqualTo(Errno.OK));
        Assert.That(attr.Ino, Is.EqualTo(file));
        Assert.That(attr.Nlink, Is.EqualTo(2u));
        Assert.That(_fs.Unlink(_fs.RootIno, Fs.N("a")), Is.EqualTo(Errno.OK));
        Assert.That(_fs.Attr(file).Nlink, Is.EqualTo(1u));
        Assert.That(_fs.Link(file, dir, Fs.N("b"), out _), Is.EqualTo(Errno.EEXIST));
        Assert.That(_fs.Link(dir, _fs.RootIno, Fs.N("dirlink"), out _), Is.EqualTo(Errno.EPERM));
    }

    [Test]
    public void Symlinks_store_their_target_and_reject_targets_longer_than_4095()
    {
        Assert.That(_fs.Symlink(_fs.RootIno, Fs.N("l"), Fs.N("../some/where"), Fs.Root, out var attr), Is.EqualTo(Errno.OK));
        Assert.That(attr.Mode & LibC.S_IFMT, Is.EqualTo(LibC.S_IFLNK));
        Assert.That(attr.Size, Is.EqualTo(13UL));
        var buffer = new byte[100];
        Assert.That(_fs.ReadLink(attr.Ino, buffer, out int length), Is.EqualTo(Errno.OK));
        Assert.That(buffer[..length], Is.EqualTo(Fs.N("../some/where")));
        Assert.That(_fs.Symlink(_fs.RootIno, Fs.N("long"), new byte[4096], Fs.Root, out _), Is.EqualTo(Errno.ENAMETOOLONG));
        Assert.That(_fs.ReadLink(_fs.RootIno, buffer, out _), Is.EqualTo(Errno.EINVAL));
    }

    [TestCase(LibC.S_IFIFO, 0u)]
    [TestCase(LibC.S_IFSOCK, 0u)]
    [TestCase(LibC.S_IFCHR, 0x0103u)]
    [TestCase(LibC.S_IFBLK, 0x0801u)]
    [TestCase(LibC.S_IFREG, 0u)]
    public void Mknod_creates_special_files_with_their_device_number(uint type, uint rdev)
    {
        Assert.That(_fs.MkNod(_fs.RootIno, Fs.N("node"), type | 0x1A4, rdev, Fs.Root, out var attr), Is.EqualTo(Errno.OK));
        Assert.That(_fs.Lookup(_fs.RootIno, "node", out var looked), Is.EqualTo(Errno.OK));
        Assert.That(looked.Mode, Is.EqualTo(type | 0x1A4));
        Assert.That(looked.Rdev, Is.EqualTo(rdev));
        Assert.That(attr.Ino, Is.EqualTo(looked.Ino));
    }

    [Test]
    public void Names_longer_than_255_bytes_are_ENAMETOOLONG()
    {
        var name = new string('n', 256);
        Assert.That(_fs.MkDir(_fs.RootIno, Fs.N(name), 0x1ED, Fs.Root, out _), Is.EqualTo(Errno.ENAMETOOLONG));
        Assert.That(_fs.Lookup(_fs.RootIno, name), Is.EqualTo(Errno.ENAMETOOLONG));
        Assert.That(_fs.MkDir(_fs.RootIno, Fs.N(new string('n', 255)), 0x1ED, Fs.Root, out _), Is.EqualTo(Errno.OK));
    }

    [Test]
    public void Errors_for_wrong_types_and_missing_names()
    {
        ulong dir = _fs.MkDir(_fs.RootIno, "d");
        ulong file = _fs.Touch(dir, "f");
        Assert.Multiple(() =>
        {
            Assert.That(_fs.Lookup(_fs.RootIno, "missing"), Is.EqualTo(Errno.ENOENT));
            Assert.That(_fs.MkDir(_fs.RootIno, Fs.N("d"), 0x1ED, Fs.Root, out _), Is.EqualTo(Errno.EEXIST));
            Assert.That(_fs.Lookup(file, "x"), Is.EqualTo(Errno.ENOTDIR));
            Assert.That(_fs.Unlink(_fs.RootIno, Fs.N("d")), Is.EqualTo(Errno.EISDIR));
            Assert.That(_fs.RmDir(dir, Fs.N("f")), Is.EqualTo(Errno.ENOTDIR));
            Assert.That(_fs.RmDir(_fs.RootIno, Fs.N("d")), Is.EqualTo(Errno.ENOTEMPTY));
            Assert.That(_fs.Create(_fs.RootIno, Fs.N("d"), LibC.O_CREAT | LibC.O_EXCL | LibC.O_RDWR, 0x1A4, Fs.Root, out _, out _, out _), Is.EqualTo(Errno.EEXIST));
        });
    }

    [Test]
    public void New_nodes_belong_to_the_caller_and_setgid_directories_pass_on_their_group()
    {
        ulong plain = _fs.MkDir(_fs.RootIno, "plain", 0x1FF, Fs.Root);
        var (file, _) = _fs.Create(plain, "mine", caller: Fs.User);
        Assert.That(_fs.Attr(file).Uid, Is.EqualTo(1000u));
        Assert.That(_fs.Attr(file).Gid, Is.EqualTo(1000u));

        Assert.That(_fs.MkDir(_fs.RootIno, Fs.N("shared"), 0x5FF /* 02777 */, new Caller(0, 50, 1), out var shared), Is.EqualTo(Errno.OK));
        Assert.That(shared.Mode & LibC.S_ISGID, Is.Zero, "mkdir keeps only rwx and the sticky bit (vfs_mkdir)");
        var setgid = new AttrChange { Mode = LibC.S_IFDIR | 0x5FF };
        Assert.That(_fs.SetAttr(shared.Ino, setgid, Fs.Root, out _), Is.EqualTo(Errno.OK));
        var (inShared, _) = _fs.Create(shared.Ino, "f", caller: Fs.User);
        ulong sub = _fs.MkDir(shared.Ino, "sub", 0x1ED, Fs.User);
        Assert.That(_fs.Attr(inShared).Gid, Is.EqualTo(50u));
        Assert.That(_fs.Attr(inShared).Mode & LibC.S_ISGID, Is.Zero, "files do not inherit S_ISGID");
        Assert.That(_fs.Attr(sub).Gid, Is.EqualTo(50u));
        Assert.That(_fs.Attr(sub).Mode & LibC.S_ISGID, Is.EqualTo(LibC.S_ISGID), "subdirectories inherit S_ISGID");
        Assert.That(_fs.Attr(sub).Uid, Is.EqualTo(1000u));
    }

    [Test]
    public void Readdir_lists_dot_entries_first_with_nonzero_cookies()
    {
        ulong dir = _fs.MkDir(_fs.RootIno, "d");
        _fs.Touch(dir, "a");
        _fs.MkDir(dir, "b");
        Assert.That(_fs.OpenDir(dir, out IOpenDirectory fh), Is.EqualTo(Errno.OK));
        var sink = new CollectingSink();
        Assert.That(fh.ReadDir(0, sink), Is.EqualTo(Errno.OK));
        Assert.That(sink.Entries.Select(e => e.Name), Is.EqualTo(new[] { ".", "..", "a", "b" }));
        Assert.That(sink.Entries[0].Ino, Is.EqualTo(dir));
        Assert.That(sink.Entries[1].Ino, Is.EqualTo(_fs.RootIno));
        Assert.That(sink.Entries[3].Mode, Is.EqualTo(LibC.S_IFDIR));
        Assert.That(sink.Entries.Select(e => e.Next), Is.All.Not.Zero);
        Assert.That(sink.Entries.Select(e => e.Next), Is.Unique);
    }

    [Test]
    public void Readdir_cookies_survive_creates_and_deletes_between_calls()
    {
        ulong dir = _fs.MkDir(_fs.RootIno, "d");
        for (int i = 0; i < 10; i++)
        {
            _fs.Touch(dir, $"f{i}");
        }
        Assert.That(_fs.OpenDir(dir, out IOpenDirectory fh), Is.EqualTo(Errno.OK));
        var seen = new List<string>();
        var first = new CollectingSink(6);
        fh.ReadDir(0, first);
        seen.AddRange(first.Entries.Select(e => e.Name));
        long cookie = first.Entries[^1].Next;

        // Between calls: delete an entry already returned (even the one whose cookie we resume from),
        // one not yet returned, and add a new one.
        Assert.That(_fs.Unlink(dir, Fs.N("f1")), Is.EqualTo(Errno.OK));
        Assert.That(_fs.Unlink(dir, Fs.N("f3")), Is.EqualTo(Errno.OK));
        Assert.That(_fs.Unlink(dir, Fs.N("f7")), Is.EqualTo(Errno.OK));
        _fs.Touch(dir, "late");

        var rest = new CollectingSink();
        fh.ReadDir(cookie, rest);
        seen.AddRange(rest.Entries.Select(e => e.Name));

        Assert.That(seen, Is.Unique);
        Assert.That(seen, Is.EquivalentTo(new[] { ".", "..", "f0", "f1", "f2", "f3", "f4", "f5", "f6", "f8", "f9", "late" }));
        Assert.That(rest.Entries.Select(e => e.Name), Is.EqualTo(new[] { "f4", "f5", "f6", "f8", "f9", "late" }), "resumed right after the deleted cookie, in creation order");
    }

    [Test]
    public void Lookup_of_an_existing_name_does_not_allocate()
    {
        ulong dir = _fs.MkDir(_fs.RootIno, "d");
        for (int i = 0; i < 100; i++)
        {
            _fs.Touch(dir, $"file-{i}");
        }
        var name = Fs.N("file-42");
        Assert.That(_fs.Lookup(dir, name, out _), Is.EqualTo(Errno.OK)); // warm up the lock's per-thread state
        long least = SteadyAllocation.LeastBytesPerRound(() =>
        {
            for (int i = 0; i < 1000; i++)
            {
                _fs.Lookup(dir, name, out _);
            }
        });
        Assert.That(least, Is.Zero);
    }

    [Test]
    public void Statfs_reports_usage_against_the_limit()
    {
        using var fs = new MemoryFileSystem(sizeLimit: 1 << 20, inodeLimit: 100);
        fs.StatFs(out var before);
        Assert.That(before.Bsize, Is.EqualTo(4096u));
        Assert.That(before.NameLen, Is.EqualTo(255u));
        Assert.That(before.Blocks, Is.EqualTo(256UL));
        Assert.That(before.Files, Is.EqualTo(100UL));
        Assert.That(before.Ffree, Is.EqualTo(99UL));
        var (ino, fh) = fs.Create(fs.RootIno, "f");
        fs.WriteAt(ino, fh, 0, new byte[40_000]);
        fs.StatFs(out var after);
        Assert.That(before.Bfree - after.Bfree, Is.InRange(10UL, 11UL), "10 pages plus one node's overhead");
        Assert.That(after.Ffree, Is.EqualTo(98UL));
    }

    [Test]
    public void Writes_beyond_the_size_limit_get_ENOSPC_and_change_nothing()
    {
        // Managed pages reserve a whole write before applying it; data in kernel memory fills up as tmpfs does
        // (MemoryKernelDataTests).
        using var fs = new MemoryFileSystem(sizeLimit: 64 * 1024, kernelData: false);
        var (ino, fh) = fs.Create(fs.RootIno, "f");
        fs.WriteAt(ino, fh, 0, Enumerable.Repeat((byte)1, 8192).ToArray());
        long used = fs.Usage.BytesUsed;

        Assert.That(fh.Write(4096, new byte[128 * 1024], out int written), Is.EqualTo(Errno.ENOSPC));
        Assert.That(written, Is.Zero);
        Assert.That(fh.Fallocate(0, 0, 1 << 20), Is.EqualTo(Errno.ENOSPC));
        Assert.That(fh.Fallocate(0, 0, 1L << 40), Is.EqualTo(Errno.ENOSPC));
        Assert.That(fs.SetXattr(ino, Fs.N("user.big"), new byte[65536], 0), Is.EqualTo(Errno.ENOSPC));

        Assert.That(fs.Usage.BytesUsed, Is.EqualTo(used));
        Assert.That(fs.Attr(ino).Size, Is.EqualTo(8192UL));
        Assert.That(fs.ReadAt(ino, fh, 0, 8192), Is.All.EqualTo((byte)1));
        Assert.That(fs.GetXattr(ino, Fs.N("user.big"), [], out _), Is.EqualTo(Errno.ENODATA));
    }

    [Test]
    public void Creating_beyond_the_inode_limit_gets_ENOSPC()
    {
        using var fs = new MemoryFileSystem(inodeLimit: 3);
        fs.Touch(fs.RootIno, "a");
        fs.Touch(fs.RootIno, "b");
        Assert.That(fs.MkDir(fs.RootIno, Fs.N("c"), 0x1ED, Fs.Root, out _), Is.EqualTo(Errno.ENOSPC));
        Assert.That(fs.Lookup(fs.RootIno, "c"), Is.EqualTo(Errno.ENOENT));
    }

    [Test]
    public void Unlinked_open_file_stays_readable_and_is_freed_after_release_and_forget()
    {
        int baseline = _fs.NodeCount;
        long usedBaseline = _fs.Usage.BytesUsed;
        var (ino, fh) = _fs.Create(_fs.RootIno, "f");
        Assert.That(_fs.Retain(ino), Is.True); // the kernel's reference, through the proxy
        _fs.WriteAt(ino, fh, 0, "still here"u8.ToArray());
        Assert.That(_fs.Unlink(_fs.RootIno, Fs.N("f")), Is.EqualTo(Errno.OK));

        Assert.That(_fs.Lookup(_fs.RootIno, "f"), Is.EqualTo(Errno.ENOENT));
        Assert.That(_fs.ReadAt(ino, fh, 0, 100), Is.EqualTo("still here"u8.ToArray()));
        Assert.That(_fs.Attr(ino).Nlink, Is.Zero);
        _fs.WriteAt(ino, fh, 10, "!"u8.ToArray());

        Assert.That(fh.Release(), Is.EqualTo(Errno.OK));
        Assert.That(_fs.GetAttr(ino, out _), Is.EqualTo(Errno.OK), "the kernel still holds a reference");
        _fs.Release(ino);
        Assert.That(_fs.GetAttr(ino, out _), Is.EqualTo(Errno.ENOENT));
        Assert.That(_fs.NodeCount, Is.EqualTo(baseline));
        Assert.That(_fs.Usage.BytesUsed, Is.EqualTo(usedBaseline));
    }

    [Test]
    public void Release_of_a_named_node_keeps_it()
    {
        ulong file = _fs.Touch(_fs.RootIno, "f");
        Assert.That(_fs.Retain(file), Is.True);
        _fs.Release(file);
        Assert.That(_fs.Lookup(_fs.RootIno, "f", out var attr), Is.EqualTo(Errno.OK));
        Assert.That(attr.Ino, Is.EqualTo(file));
    }

    [Test]
    public void Removed_directory_still_open_lists_only_dots_and_refuses_creates()
    {
        ulong dir = _fs.MkDir(_fs.RootIno, "d");
        Assert.That(_fs.Retain(dir), Is.True);
        Assert.That(_fs.OpenDir(dir, out IOpenDirectory fh), Is.EqualTo(Errno.OK));
        Assert.That(_fs.RmDir(_fs.RootIno, Fs.N("d")), Is.EqualTo(Errno.OK));
        Assert.That(_fs.Attr(dir).Nlink, Is.Zero);
        Assert.That(_fs.Create(dir, Fs.N("x"), LibC.O_CREAT | LibC.O_RDWR, 0x1A4, Fs.Root, out _, out _, out _), Is.EqualTo(Errno.ENOENT));
        var sink = new CollectingSink();
        Assert.That(fh.ReadDir(0, sink), Is.EqualTo(Errno.OK));
        Assert.That(sink.Entries.Select(e => e.Name), Is.EqualTo(new[] { ".", ".." }));
        int count = _fs.NodeCount;
        fh.Release();
        Assert.That(_fs.NodeCount, Is.EqualTo(count), "held");
        _fs.Release(dir);
        Assert.That(_fs.NodeCount, Is.EqualTo(count - 1));
    }

    [Test]
    public void Tmpfile_has_no_name_until_linked()
    {
        ulong dir = _fs.MkDir(_fs.RootIno, "d");
        Assert.That(_fs.TmpFile(dir, LibC.O_RDWR, 0x180, Fs.User, out var attr, out var open), Is.EqualTo(Errno.OK));
        Assert.That(attr.Nlink, Is.Zero);
        Assert.That(attr.Uid, Is.EqualTo(1000u));
        Assert.That(_fs.List(dir), Is.EqualTo(new[] { ".", ".." }));
        _fs.WriteAt(attr.Ino, open, 0, "data"u8.ToArray());

        Assert.That(_fs.Link(attr.Ino, dir, Fs.N("named"), out var linked), Is.EqualTo(Errno.OK));
        Assert.That(linked.Nlink, Is.EqualTo(1u));
        Assert.That(_fs.Lookup(dir, "named", out var looked), Is.EqualTo(Errno.OK));
        Assert.That(looked.Ino, Is.EqualTo(attr.Ino));
        Assert.That(looked.Size, Is.EqualTo(4UL));
    }

    [Test]
    public void Tmpfile_opened_with_O_EXCL_can_never_be_linked_and_vanishes_after_release()
    {
        int baseline = _fs.NodeCount;
        Assert.That(_fs.TmpFile(_fs.RootIno, LibC.O_RDWR | LibC.O_EXCL, 0x180, Fs.Root, out var attr, out var open), Is.EqualTo(Errno.OK));
        Assert.That(_fs.Link(attr.Ino, _fs.RootIno, Fs.N("named"), out _), Is.EqualTo(Errno.ENOENT));
        open.Release();
        Assert.That(_fs.NodeCount, Is.EqualTo(baseline), "neither open nor held");
    }

    [Test]
    public void Setattr_applies_mode_owner_times_and_ctime_follows()
    {
        ulong file = _fs.Touch(_fs.RootIno, "f");
        var change = new AttrChange
        {
            Mode = LibC.S_IFREG | 0x1C0, Uid = 7, Gid = 8, Atime = new TimeChange(1000, 5), Mtime = new TimeChange(2000, 6),
        };
        Assert.That(_fs.SetAttr(file, change, Fs.Root, out var attr), Is.EqualTo(Errno.OK));
        Assert.That(attr.Mode, Is.EqualTo(LibC.S_IFREG | 0x1C0));
        Assert.That((attr.Uid, attr.Gid), Is.EqualTo((7u, 8u)));
        Assert.That((attr.Atime, attr.AtimeNsec), Is.EqualTo((1000UL, 5u)));
        Assert.That((attr.Mtime, attr.MtimeNsec), Is.EqualTo((2000UL, 6u)));
        Assert.That(attr.Ctime, Is.GreaterThan(1_700_000_000UL), "ctime is now, not the given times");

        var now = new AttrChange { Atime = TimeChange.AtNow, Mtime = TimeChange.AtNow };
        Assert.That(_fs.SetAttr(file, now, Fs.Root, out attr), Is.EqualTo(Errno.OK));
        Assert.That(attr.Atime, Is.GreaterThan(1_700_000_000UL));
        Assert.That(attr.Mtime, Is.GreaterThan(1_700_000_000UL));
    }

    [Test]
    public void Kill_suidgid_clears_setuid_and_group_executable_setgid()
    {
        var (file, _) = _fs.Create(_fs.RootIno, "f", mode: 0xDED); // 06755
        var (noGroupExec, _) = _fs.Create(_fs.RootIno, "g", mode: 0xDE4); // 06744: sgid without g+x
        var change = new AttrChange { Uid = 1000, KillSetId = true };
        Assert.That(_fs.SetAttr(file, change, Fs.User, out var attr), Is.EqualTo(Errno.OK));
        Assert.That(attr.Mode & 0xFFF, Is.EqualTo(0x1EDu));
        Assert.That(_fs.SetAttr(noGroupExec, change, Fs.User, out attr), Is.EqualTo(Errno.OK));
        Assert.That(attr.Mode & 0xFFF, Is.EqualTo(0x5E4u), "S_ISGID without S_IXGRP stays");
    }

    [Test]
    public void Chown_of_a_file_drops_set_id_bits_unless_the_kernel_sends_the_mode()
    {
        var (file, _) = _fs.Create(_fs.RootIno, "f", mode: 0xDED); // 06755
        var chown = new AttrChange { Uid = 5, Gid = 5 };
        Assert.That(_fs.SetAttr(file, chown, Fs.Root, out var attr), Is.EqualTo(Errno.OK));
        Assert.That(attr.Mode & 0xFFF, Is.EqualTo(0x1EDu));

        var withMode = new AttrChange { Uid = 6, Mode = LibC.S_IFREG | 0xDED };
        Assert.That(_fs.SetAttr(file, withMode, Fs.Root, out attr), Is.EqualTo(Errno.OK));
        Assert.That(attr.Mode & 0xFFF, Is.EqualTo(0xDEDu));

        ulong dir = _fs.MkDir(_fs.RootIno, "d", 0x1ED);
        var setgid = new AttrChange { Mode = LibC.S_IFDIR | 0x5ED }; // 02755
        Assert.That(_fs.SetAttr(dir, setgid, Fs.Root, out _), Is.EqualTo(Errno.OK));
        Assert.That(_fs.SetAttr(dir, chown, Fs.Root, out attr), Is.EqualTo(Errno.OK));
        Assert.That(attr.Mode & LibC.S_ISGID, Is.EqualTo(LibC.S_ISGID), "directories keep S_ISGID");
    }

    [Test]
    public void Setattr_with_only_a_file_handle_changes_nothing()
    {
        var (file, fh) = _fs.Create(_fs.RootIno, "f");
        var before = _fs.Attr(file);
        Thread.Sleep(5);
        Assert.That(_fs.SetAttr(file, new AttrChange { File = fh }, Fs.Root, out var after), Is.EqualTo(Errno.OK));
        fh.Release();
        Assert.That((after.Ctime, after.CtimeNsec), Is.EqualTo((before.Ctime, before.CtimeNsec)));
    }

    [Test]
    public void Timestamps_follow_posix_for_write_truncate_chmod_link_and_unlink()
    {
        ulong dir = _fs.MkDir(_fs.RootIno, "d");
        var (file, fh) = _fs.Create(dir, "f");
        var created = _fs.Attr(file);
        var dirBefore = _fs.Attr(dir);

        Pause();
        _fs.WriteAt(file, fh, 0, "x"u8.ToArray());
        var written = _fs.Attr(file);
        Assert.That(Time(written.Mtime, written.MtimeNsec), Is.GreaterThan(Time(created.Mtime, created.MtimeNsec)), "write moves mtime");
        Assert.That(Time(written.Ctime, written.CtimeNsec), Is.GreaterThan(Time(created.Ctime, created.CtimeNsec)), "write moves ctime");

        Pause();
        var chmod = new AttrChange { Mode = 0x180 };
        _fs.SetAttr(file, chmod, Fs.Root, out var changed);
        Assert.That(Time(changed.Mtime, changed.MtimeNsec), Is.EqualTo(Time(written.Mtime, written.MtimeNsec)), "chmod leaves mtime");
        Assert.That(Time(changed.Ctime, changed.CtimeNsec), Is.GreaterThan(Time(written.Ctime, written.CtimeNsec)), "chmod moves ctime");

        Pause();
        _fs.Link(file, dir, Fs.N("g"), out var linked);
        Assert.That(Time(linked.Ctime, linked.CtimeNsec), Is.GreaterThan(Time(changed.Ctime, changed.CtimeNsec)), "link moves ctime");
        var dirAfter = _fs.Attr(dir);
        Assert.That(Time(dirAfter.Mtime, dirAfter.MtimeNsec), Is.GreaterThan(Time(dirBefore.Mtime, dirBefore.MtimeNsec)), "a new name moves the directory's mtime");

        Pause();
        _fs.Unlink(dir, Fs.N("g"));
        var unlinked = _fs.Attr(file);
        Assert.That(Time(unlinked.Ctime, unlinked.CtimeNsec), Is.GreaterThan(Time(linked.Ctime, linked.CtimeNsec)), "unlink moves ctime");

        Pause();
        var truncate = new AttrChange { Size = 0 };
        _fs.SetAttr(file, truncate, Fs.Root, out var truncated);
        Assert.That(Time(truncated.Mtime, truncated.MtimeNsec), Is.GreaterThan(Time(unlinked.Mtime, unlinked.MtimeNsec)), "truncate moves mtime");
    }

    [Test]
    public void Lookups_hold_nothing_and_an_unlinked_node_lives_exactly_while_held()
    {
        var (ino, fh) = _fs.Create(_fs.RootIno, "f");
        _fs.Lookup(_fs.RootIno, "f");
        Assert.That(_fs.Retain(ino), Is.True);
        Assert.That(_fs.Retain(ino), Is.True);
        fh.Release();
        _fs.Unlink(_fs.RootIno, Fs.N("f"));
        _fs.Release(ino);
        Assert.That(_fs.GetAttr(ino, out _), Is.EqualTo(Errno.OK), "one holder remains");
        _fs.Release(ino);
        Assert.That(_fs.GetAttr(ino, out _), Is.EqualTo(Errno.ENOENT));
        Assert.That(_fs.Retain(ino), Is.False, "a dropped node cannot be retained: the proxy looks the name up again");

        var (unheld, fh2) = _fs.Create(_fs.RootIno, "g");
        fh2.Release();
        _fs.Lookup(_fs.RootIno, "g");
        _fs.Unlink(_fs.RootIno, Fs.N("g"));
        Assert.That(_fs.GetAttr(unheld, out _), Is.EqualTo(Errno.ENOENT), "lookups took no reference: unlinked, closed and unheld, it goes at once");
    }

    private static decimal Time(ulong seconds, uint nanoseconds) => seconds + (nanoseconds / 1_000_000_000m);

    private static void Pause() => Thread.Sleep(5);
}

public sealed class MemoryNameChargeTests
{
    [Test]
    public void Every_hard_link_costs_space_and_300000_of_them_do_not_fit_in_8_MiB()
    {
        using var fs = new MemoryFileSystem(sizeLimit: 8L << 20);
        long baseline = fs.Usage.BytesUsed;
        var (ino, fh) = fs.Create(fs.RootIno, "f");
        fh.Release();
        int made = 0;
        Errno last = Errno.OK;
        for (int i = 0; i < 300_000; i++)
        {
            last = fs.Link(ino, fs.RootIno, System.Text.Encoding.ASCII.GetBytes("link-" + i), out _);
            if (last != Errno.OK) break;
            made++;
        }

        Assert.That(last, Is.EqualTo(Errno.ENOSPC));
        Assert.That(made, Is.InRange(50_000, (8 << 20) / MemoryFileSystem.EntryOverheadBytes), "names are charged, the limit holds");
        Assert.That(fs.Usage.BytesUsed, Is.LessThanOrEqualTo(8L << 20));
        for (int i = 0; i < made; i++)
        {
            Assert.That(fs.Unlink(fs.RootIno, System.Text.Encoding.ASCII.GetBytes("link-" + i)), Is.EqualTo(Errno.OK));
        }

        Assert.That(fs.Unlink(fs.RootIno, "f"u8), Is.EqualTo(Errno.OK));
        Assert.That(fs.Usage.BytesUsed, Is.EqualTo(baseline), "every name's charge came back");
    }

    [Test]
    public void A_rename_to_a_longer_name_on_a_full_filesystem_is_refused_whole()
    {
        using var fs = new MemoryFileSystem(sizeLimit: 4096);
        var (ino, fh) = fs.Create(fs.RootIno, "a");
        fh.Release();
        int i = 0;
        while (fs.Link(ino, fs.RootIno, System.Text.Encoding.ASCII.GetBytes("l" + i), out _) == Errno.OK) i++;
        byte[] longName = new byte[200];
        Array.Fill(longName, (byte)'x');
        Assert.That(fs.Rename(fs.RootIno, "a"u8, fs.RootIno, longName, 0), Is.EqualTo(Errno.ENOSPC));
        Assert.That(fs.Lookup(fs.RootIno, "a"u8, out _), Is.EqualTo(Errno.OK), "nothing moved");
        Assert.That(fs.Rename(fs.RootIno, "a"u8, fs.RootIno, "b"u8, 0), Is.EqualTo(Errno.OK), "positive control: same-length name");
    }
}
