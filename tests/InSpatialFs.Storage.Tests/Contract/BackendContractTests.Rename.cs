using InSpatialFs.Interop;

namespace InSpatialFs.Storage.Tests.Contract;

// rename(2) and renameat2(2): RenameFlags.
public abstract partial class BackendContractTests
{
    private const uint NoReplace = LibC.RENAME_NOREPLACE, Exchange = LibC.RENAME_EXCHANGE, Whiteout = LibC.RENAME_WHITEOUT;

    private static readonly uint[] RefusedRenameFlags =
        [Whiteout, NoReplace | Exchange, Exchange | Whiteout, NoReplace | Whiteout, NoReplace | Exchange | Whiteout, 8, 0x8000_0000];

    [TestCaseSource(nameof(RefusedRenameFlags))]
    public void Rename_flags_the_backends_do_not_serve_are_EINVAL_before_any_name_is_looked_at(uint flags)
    {
        ulong a = Touch(RootIno, "a");
        ulong b = Touch(RootIno, "b");
        Assert.Multiple(() =>
        {
            Assert.That(Fs.Rename(RootIno, N("a"), RootIno, N("b"), flags), Is.EqualTo(Errno.EINVAL));
            Assert.That(Fs.Rename(RootIno, N("a"), RootIno, N("c"), flags), Is.EqualTo(Errno.EINVAL));
            Assert.That(Fs.Rename(RootIno, N("missing"), RootIno, N("c"), flags), Is.EqualTo(Errno.EINVAL), "flags first, as do_renameat2");
            Assert.That(Fs.Rename(MissingIno, N(".."), RootIno, N("c"), flags), Is.EqualTo(Errno.EINVAL), "before the names too");
        });
        Assert.That(Fs.Lookup(RootIno, N("a"), out var stillA), Is.EqualTo(Errno.OK));
        Assert.That(stillA.Ino, Is.EqualTo(a), "nothing moved");

        // The positive controls: each flag the backends serve, alone.
        Assert.That(Fs.Rename(RootIno, N("a"), RootIno, N("c"), NoReplace), Is.EqualTo(Errno.OK));
        Assert.That(Fs.Rename(RootIno, N("c"), RootIno, N("b"), Exchange), Is.EqualTo(Errno.OK));
        Assert.That(Fs.Lookup(RootIno, N("b"), out var nowB), Is.EqualTo(Errno.OK));
        Assert.That(nowB.Ino, Is.EqualTo(a));
        Assert.That(Fs.Rename(RootIno, N("c"), RootIno, N("b"), 0), Is.EqualTo(Errno.OK));
        Assert.That(Fs.Lookup(RootIno, N("b"), out nowB), Is.EqualTo(Errno.OK));
        Assert.That(nowB.Ino, Is.EqualTo(b));
    }

    [Test]
    public void Rename_refuses_what_rename_refuses()
    {
        ulong full = MkDir(RootIno, "full");
        Touch(full, "inner");
        ulong dir = MkDir(RootIno, "dir");
        ulong sub = MkDir(dir, "sub");
        MkDir(RootIno, "empty");
        Touch(RootIno, "f");
        Touch(RootIno, "g");
        Assert.Multiple(() =>
        {
            Assert.That(Fs.Rename(RootIno, N("missing"), RootIno, N("x"), 0), Is.EqualTo(Errno.ENOENT), "missing source");
            Assert.That(Fs.Rename(RootIno, N("f"), RootIno, N("g"), NoReplace), Is.EqualTo(Errno.EEXIST), "NOREPLACE onto a name");
            Assert.That(Fs.Rename(RootIno, N("f"), RootIno, N("x"), Exchange), Is.EqualTo(Errno.ENOENT), "EXCHANGE with nothing");
            Assert.That(Fs.Rename(RootIno, N("dir"), RootIno, N("f"), 0), Is.EqualTo(Errno.ENOTDIR), "directory onto a file");
            Assert.That(Fs.Rename(RootIno, N("f"), RootIno, N("dir"), 0), Is.EqualTo(Errno.EISDIR), "file onto a directory");
            Assert.That(Fs.Rename(RootIno, N("dir"), RootIno, N("full"), 0), Is.EqualTo(Errno.ENOTEMPTY), "onto a non-empty directory");
            Assert.That(Fs.Rename(RootIno, N("dir"), sub, N("x"), 0), Is.EqualTo(Errno.EINVAL), "into itself");
        });

        Assert.That(Fs.Rename(RootIno, N("dir"), RootIno, N("empty"), 0), Is.EqualTo(Errno.OK), "onto an empty directory");
        Assert.That(Fs.Lookup(RootIno, N("empty"), out var moved), Is.EqualTo(Errno.OK));
        Assert.That(moved.Ino, Is.EqualTo(dir));
        Assert.That(Fs.Rename(RootIno, N("f"), RootIno, N("g"), 0), Is.EqualTo(Errno.OK), "a file replaces a file");
        Assert.That(Lookup(RootIno, "f"), Is.EqualTo(Errno.ENOENT));
    }
}
