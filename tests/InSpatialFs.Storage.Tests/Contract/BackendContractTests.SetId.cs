using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;

namespace InSpatialFs.Storage.Tests.Contract;

// Set-id bits, file capabilities and what a new node inherits: SetIdBits.
public abstract partial class BackendContractTests
{
    private const uint SetUid = LibC.S_ISUID, SetGid = LibC.S_ISGID;

    /// <summary>A valid VFS_CAP_REVISION_2 security.capability value (effective, cap_net_raw permitted).</summary>
    private static readonly byte[] CapNetRaw = [0x01, 0, 0, 0x02, 0x00, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

    [Test]
    public void A_write_or_truncate_kill_drops_setuid_always_and_setgid_only_with_group_execute()
    {
        ulong both = Touch(RootIno, "both");
        ulong sgidNoExec = Touch(RootIno, "locking");
        ulong fifo = Fifo(RootIno, "p");
        ulong kept = Touch(RootIno, "kept");
        Chmod(both, 0xDED); // 06755
        Chmod(sgidNoExec, 0xDE5); // 06745
        Chmod(fifo, 0xDFF); // 06777
        Chmod(kept, 0xDED);

        Assert.Multiple(() =>
        {
            Assert.That(SetAttr(both, new() { KillSetId = true }).Mode & 0xFFF, Is.EqualTo(0x1EDu), "06755 -> 0755");
            Assert.That(SetAttr(sgidNoExec, new() { KillSetId = true }).Mode & 0xFFF, Is.EqualTo(0x5E5u), "06745 -> 02745: mandatory locking stays");
            Assert.That(SetAttr(fifo, new() { KillSetId = true }).Mode & 0xFFF, Is.EqualTo(0xDFFu), "only regular files (drift: memory cleared a fifo)");
            Assert.That(SetAttr(kept, new() { Atime = TimeChange.AtNow }).Mode & 0xFFF, Is.EqualTo(0xDEDu), "the positive control: no kill, no change");
        });
    }

    [Test]
    public void A_chown_drops_setuid_even_for_root_and_leaves_directories_alone()
    {
        ulong file = Touch(RootIno, "f");
        ulong sgidNoExec = Touch(RootIno, "locking");
        ulong fifo = Fifo(RootIno, "p");
        ulong dir = MkDir(RootIno, "d");
        Chmod(file, 0xDED);
        Chmod(sgidNoExec, 0xDE5);
        Chmod(fifo, 0xDFF);
        Chmod(dir, 0xDFF);
        Assert.Multiple(() =>
        {
            Assert.That(SetAttr(file, new() { Uid = 5 }).Mode & 0xFFF, Is.EqualTo(0x1EDu), "06755 -> 0755");
            Assert.That(SetAttr(sgidNoExec, new() { Gid = 5 }).Mode & 0xFFF, Is.EqualTo(0x5E5u), "06745 -> 02745");
            Assert.That(SetAttr(fifo, new() { Uid = 5 }).Mode & 0xFFF, Is.EqualTo(0x1FFu), "every type but directories");
            Assert.That(SetAttr(dir, new() { Uid = 5, Gid = 5 }).Mode & 0xFFF, Is.EqualTo(0xDFFu), "the positive control: a directory keeps its bits");
        });
        Assert.That(Attr(file).Uid, Is.EqualTo(5u));
    }

    [Test]
    public void A_mode_sent_with_the_chown_is_the_kernels_own_and_wins()
    {
        ulong file = Touch(RootIno, "f");
        FuseAttr a = SetAttr(file, new() { Uid = 6, Mode = LibC.S_IFREG | 0xDED });
        Assert.That(a.Mode & 0xFFF, Is.EqualTo(0xDEDu), "drift: the host chowned after the chmod and lost S_ISUID");
        Assert.That(a.Uid, Is.EqualTo(6u));
    }

    [Test]
    public void A_write_truncate_or_chown_drops_file_capabilities()
    {
        (ulong ino, IOpenFile fh) = Create(RootIno, "f");
        WriteAt(ino, fh, 0, "payload"u8.ToArray());
        var value = new byte[64];

        Assert.That(Fs.SetXattr(ino, N("security.capability"), CapNetRaw, 0), Is.EqualTo(Errno.OK));
        Assert.That(Fs.GetXattr(ino, N("security.capability"), value, out _), Is.EqualTo(Errno.OK), "the positive control");
        Assert.That(Fs.SetAttr(ino, new AttrChange { Atime = TimeChange.AtNow }, Root, out _), Is.EqualTo(Errno.OK));
        Assert.That(Fs.GetXattr(ino, N("security.capability"), value, out _), Is.EqualTo(Errno.OK), "a touch keeps it");
        WriteAt(ino, fh, 0, "x"u8.ToArray());
        Assert.That(Fs.GetXattr(ino, N("security.capability"), value, out _), Is.EqualTo(Errno.ENODATA), "a write drops it (drift: memory kept it)");

        Assert.That(Fs.SetXattr(ino, N("security.capability"), CapNetRaw, 0), Is.EqualTo(Errno.OK));
        SetAttr(ino, new() { Size = 3 });
        Assert.That(Fs.GetXattr(ino, N("security.capability"), value, out _), Is.EqualTo(Errno.ENODATA), "a truncate drops it");

        Assert.That(Fs.SetXattr(ino, N("security.capability"), CapNetRaw, 0), Is.EqualTo(Errno.OK));
        SetAttr(ino, new() { Uid = 7 });
        Assert.That(Fs.GetXattr(ino, N("security.capability"), value, out _), Is.EqualTo(Errno.ENODATA), "a chown drops it");
        fh.Release();
    }

    [Test]
    public void New_nodes_in_a_setgid_directory_take_its_group_and_new_directories_its_bit()
    {
        ulong plain = MkDir(RootIno, "plain", 0x1FF);
        ulong shared = MkDir(RootIno, "shared", 0x1FF);
        SetAttr(shared, new() { Gid = 55 });
        Chmod(shared, SetGid | 0x1FF);

        ulong file = Touch(shared, "f", 0x1ED, User);
        ulong sub = MkDir(shared, "sub", 0x1ED, User);
        Assert.That(Fs.MkNod(shared, N("p"), LibC.S_IFIFO | 0x1A4, 0, User, out FuseAttr fifo), Is.EqualTo(Errno.OK));
        Assert.That(Fs.Symlink(shared, N("l"), N("t"), User, out FuseAttr link), Is.EqualTo(Errno.OK));
        Assert.That(Fs.TmpFile(shared, LibC.O_RDWR, 0x1A4, User, out FuseAttr tmp, out IOpenFile tmpOpen), Is.EqualTo(Errno.OK));
        Assert.Multiple(() =>
        {
            Assert.That(Attr(file).Gid, Is.EqualTo(55u), "file");
            Assert.That(Attr(file).Uid, Is.EqualTo(1000u));
            Assert.That(Attr(file).Mode & SetGid, Is.Zero, "files do not take the bit");
            Assert.That(Attr(sub).Gid, Is.EqualTo(55u), "directory");
            Assert.That(Attr(sub).Mode & 0xFFF, Is.EqualTo(SetGid | 0x1ED), "directories do");
            Assert.That(fifo.Gid, Is.EqualTo(55u), "fifo");
            Assert.That(link.Gid, Is.EqualTo(55u), "symlink");
            Assert.That(tmp.Gid, Is.EqualTo(55u), "O_TMPFILE");
        });
        tmpOpen.Release();

        // A caller with the daemon's own ids (a container's root): the host backend reads no parent mode then, and the
        // group and a directory's bit still come from the setgid directory.
        ulong rootFile = Touch(shared, "rf", 0x1A4, Root);
        ulong rootSub = MkDir(shared, "rsub", 0x1ED, Root);
        Assert.Multiple(() =>
        {
            Assert.That((Attr(rootFile).Gid, Attr(rootFile).Mode & 0xFFF), Is.EqualTo((55u, 0x1A4u)), "root's file");
            Assert.That((Attr(rootSub).Gid, Attr(rootSub).Mode & 0xFFF), Is.EqualTo((55u, SetGid | 0x1EDu)), "root's directory");
            Assert.That(Attr(MkDir(plain, "rd", 0x1ED, Root)).Mode & 0xFFF, Is.EqualTo(0x1EDu), "and no bit elsewhere");
        });

        ulong mine = Touch(plain, "f", 0x1A4, User);
        ulong mineDir = MkDir(plain, "d", 0x1ED, User);
        Assert.That(Attr(mine).Gid, Is.EqualTo(1000u), "the positive control: elsewhere the caller's group");
        Assert.That(Attr(mineDir).Mode & 0xFFF, Is.EqualTo(0x1EDu));
    }

    [Test]
    public void Mkdir_keeps_only_the_permission_and_sticky_bits()
    {
        ulong all = MkDir(RootIno, "all", 0xFFF);
        Assert.That(Attr(all).Mode & 0xFFF, Is.EqualTo(0x3FFu), "07777 -> 01777 as vfs_mkdir (drift: both kept set-id bits)");
        Assert.That(Fs.MkNod(RootIno, N("f"), LibC.S_IFREG | 0xDED, 0, Root, out FuseAttr file), Is.EqualTo(Errno.OK));
        Assert.That(file.Mode & 0xFFF, Is.EqualTo(0xDEDu), "the positive control: mknod keeps all twelve bits");
    }
}
