using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;

namespace InSpatialFs.Storage.Tests.Contract;

// Open files and directories are objects: each call goes to the object, a released one answers EBADF, and the node
// stays readable through an open file after its last name is gone.
public abstract partial class BackendContractTests
{
    [Test]
    public void A_released_file_answers_EBADF_to_every_call_and_a_second_release()
    {
        (_, IOpenFile fh) = Create(RootIno, "f");
        WriteAt(0, fh, 0, "data"u8.ToArray());
        Assert.That(fh.Release(), Is.EqualTo(Errno.OK), "the positive control");
        Assert.Multiple(() =>
        {
            Assert.That(fh.Read(0, new byte[4], out _), Is.EqualTo(Errno.EBADF), "read");
            Assert.That(fh.Write(0, "x"u8, out _), Is.EqualTo(Errno.EBADF), "write");
            Assert.That(fh.Fsync(dataOnly: false), Is.EqualTo(Errno.EBADF), "fsync");
            Assert.That(fh.Flush(), Is.EqualTo(Errno.EBADF), "flush");
            Assert.That(fh.Fallocate(0, 0, 1), Is.EqualTo(Errno.EBADF), "fallocate");
            Assert.That(fh.Lseek(0, LibC.SEEK_SET, out _), Is.EqualTo(Errno.EBADF), "lseek");
            Assert.That(fh.Release(), Is.EqualTo(Errno.EBADF), "release twice");
        });
    }

    [Test]
    public void A_released_directory_answers_EBADF_and_an_open_one_lists_its_entries()
    {
        Touch(RootIno, "f");
        Assert.That(Fs.OpenDir(RootIno, out IOpenDirectory dir), Is.EqualTo(Errno.OK));
        var names = new List<string>();
        Assert.That(dir.ReadDir(0, new NameList(names)), Is.EqualTo(Errno.OK));
        Assert.That(names, Does.Contain("f").And.Contain("."), "the positive control");
        Assert.That(dir.Release(), Is.EqualTo(Errno.OK));
        Assert.Multiple(() =>
        {
            Assert.That(dir.ReadDir(0, new NameList([])), Is.EqualTo(Errno.EBADF), "readdir");
            Assert.That(dir.FsyncDir(dataOnly: false), Is.EqualTo(Errno.EBADF), "fsyncdir");
            Assert.That(dir.Release(), Is.EqualTo(Errno.EBADF), "release twice");
        });
    }

    [Test]
    public void An_unlinked_file_stays_readable_and_writable_through_its_open_file()
    {
        (ulong ino, IOpenFile fh) = Create(RootIno, "f");
        WriteAt(ino, fh, 0, "before"u8.ToArray());
        Assert.That(Fs.Unlink(RootIno, N("f")), Is.EqualTo(Errno.OK));
        Assert.That(Lookup(RootIno, "f"), Is.EqualTo(Errno.ENOENT), "the name is gone");
        WriteAt(ino, fh, 6, "+after"u8.ToArray());
        Assert.That(ReadAt(ino, fh, 0, 64), Is.EqualTo("before+after"u8.ToArray()));
        Assert.That(Attr(ino).Nlink, Is.Zero);
        Assert.That(fh.Release(), Is.EqualTo(Errno.OK));
    }

    [Test]
    public void A_truncate_through_the_open_file_the_kernel_named_changes_that_file()
    {
        (ulong ino, IOpenFile fh) = Create(RootIno, "f");
        WriteAt(ino, fh, 0, "0123456789"u8.ToArray());
        FuseAttr a = SetAttr(ino, new AttrChange { Size = 4, File = fh });
        Assert.That(a.Size, Is.EqualTo(4UL));
        Assert.That(ReadAt(ino, fh, 0, 64), Is.EqualTo("0123"u8.ToArray()));
        a = SetAttr(ino, new AttrChange { Size = 2 });
        Assert.That(a.Size, Is.EqualTo(2UL), "the control: by node, without a file");
        Assert.That(fh.Release(), Is.EqualTo(Errno.OK));
    }

    private sealed class NameList(List<string> names) : IDirectoryEntrySink
    {
        public bool TryAdd(ReadOnlySpan<byte> name, ulong ino, uint mode, long nextOffset)
        {
            names.Add(System.Text.Encoding.UTF8.GetString(name));
            return true;
        }
    }
}
