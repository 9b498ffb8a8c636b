using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;

namespace InSpatialFs.Storage.Tests.Contract;

// Names, parents and node types: EntryName, NodeKinds.
public abstract partial class BackendContractTests
{
    private static readonly object[] BadNames =
    [
        new object[] { "", Errno.EACCES },
        new object[] { ".", Errno.EACCES },
        new object[] { "..", Errno.EACCES },
        new object[] { "a/b", Errno.EACCES },
        new object[] { "a\0b", Errno.EACCES },
        new object[] { new string('x', 256), Errno.ENAMETOOLONG },
        new object[] { new string('x', 300) + "/", Errno.EACCES }, // the kernel refuses the '/' before the filesystem sees the length
    ];

    [TestCaseSource(nameof(BadNames))]
    public void Every_name_taking_operation_refuses_a_bad_name_with_the_kernels_errno(string name, Errno expected)
    {
        ulong file = Touch(RootIno, "file");
        MkDir(RootIno, "dir");
        byte[] bad = N(name);
        // A host-backed backend answers a name that would leave its tree ("..", '/', NUL) with the escape result; the
        // proxy records the escape and the kernel gets EACCES. What the kernel sees is what must match.
        static Errno Kernel(Errno e) => e == BackendResult.EscapeRefused ? Errno.EACCES : e;
        Assert.Multiple(() =>
        {
            Assert.That(Kernel(Fs.Lookup(RootIno, bad, out _)), Is.EqualTo(expected), "lookup");
            Assert.That(Kernel(Fs.MkDir(RootIno, bad, 0x1ED, Root, out _)), Is.EqualTo(expected), "mkdir");
            Assert.That(Kernel(Fs.MkNod(RootIno, bad, LibC.S_IFIFO | 0x1A4, 0, Root, out _)), Is.EqualTo(expected), "mkfifo");
            Assert.That(Kernel(Fs.MkNod(RootIno, bad, LibC.S_IFREG | 0x1A4, 0, Root, out _)), Is.EqualTo(expected), "mknod regular");
            Assert.That(Kernel(Fs.Create(RootIno, bad, LibC.O_RDWR | LibC.O_CREAT | LibC.O_EXCL, 0x1A4, Root, out _, out _, out _)), Is.EqualTo(expected), "create");
            Assert.That(Kernel(Fs.Symlink(RootIno, bad, N("target"), Root, out _)), Is.EqualTo(expected), "symlink");
            Assert.That(Kernel(Fs.Link(file, RootIno, bad, out _)), Is.EqualTo(expected), "link");
            Assert.That(Kernel(Fs.Unlink(RootIno, bad)), Is.EqualTo(expected), "unlink");
            Assert.That(Kernel(Fs.RmDir(RootIno, bad)), Is.EqualTo(expected), "rmdir");
            Assert.That(Kernel(Fs.Rename(RootIno, bad, RootIno, N("new"), 0)), Is.EqualTo(expected), "rename from");
            Assert.That(Kernel(Fs.Rename(RootIno, N("file"), RootIno, bad, 0)), Is.EqualTo(expected), "rename to");
        });

        // The positive control: the longest good name goes through every one of them.
        string longest = new('y', EntryName255), other = new('z', EntryName255);
        Assert.That(Fs.MkDir(RootIno, N(longest), 0x1ED, Root, out _), Is.EqualTo(Errno.OK));
        Assert.That(Lookup(RootIno, longest), Is.EqualTo(Errno.OK));
        Assert.That(Fs.Rename(RootIno, N(longest), RootIno, N(other), 0), Is.EqualTo(Errno.OK));
        Assert.That(Fs.RmDir(RootIno, N(other)), Is.EqualTo(Errno.OK));
        Assert.That(Fs.Link(file, RootIno, N(longest), out _), Is.EqualTo(Errno.OK));
        Assert.That(Fs.Unlink(RootIno, N(longest)), Is.EqualTo(Errno.OK));
        Assert.That(Fs.Symlink(RootIno, N(longest), N("target"), Root, out _), Is.EqualTo(Errno.OK));
        Assert.That(Lookup(RootIno, "file"), Is.EqualTo(Errno.OK));
    }

    private const int EntryName255 = 255;

    [Test]
    public void A_missing_parent_is_ENOENT_and_a_file_as_parent_is_ENOTDIR()
    {
        ulong file = Touch(RootIno, "f");
        ulong other = Touch(RootIno, "g");
        foreach ((ulong parent, Errno expected) in new[] { (MissingIno, Errno.ENOENT), (file, Errno.ENOTDIR) })
        {
            Assert.Multiple(() =>
            {
                Assert.That(Fs.Lookup(parent, N("x"), out _), Is.EqualTo(expected), "lookup");
                Assert.That(Fs.MkDir(parent, N("x"), 0x1ED, Root, out _), Is.EqualTo(expected), "mkdir");
                Assert.That(Fs.MkNod(parent, N("x"), LibC.S_IFIFO | 0x1A4, 0, Root, out _), Is.EqualTo(expected), "mkfifo");
                Assert.That(Fs.Create(parent, N("x"), LibC.O_RDWR | LibC.O_CREAT | LibC.O_EXCL, 0x1A4, Root, out _, out _, out _), Is.EqualTo(expected), "create");
                Assert.That(Fs.Symlink(parent, N("x"), N("t"), Root, out _), Is.EqualTo(expected), "symlink");
                Assert.That(Fs.Link(other, parent, N("x"), out _), Is.EqualTo(expected), "link");
                Assert.That(Fs.Unlink(parent, N("x")), Is.EqualTo(expected), "unlink");
                Assert.That(Fs.RmDir(parent, N("x")), Is.EqualTo(expected), "rmdir");
                Assert.That(Fs.Rename(parent, N("x"), RootIno, N("y"), 0), Is.EqualTo(expected), "rename from");
                Assert.That(Fs.Rename(RootIno, N("g"), parent, N("y"), 0), Is.EqualTo(expected), "rename to");
            });
        }

        Assert.That(Fs.Link(MissingIno, RootIno, N("x"), out _), Is.EqualTo(Errno.ENOENT), "link of a missing node");
        Assert.That(Fs.Link(other, RootIno, N("x"), out _), Is.EqualTo(Errno.OK), "the positive control");
        Assert.That(Fs.MkDir(RootIno, N("d"), 0x1ED, Root, out _), Is.EqualTo(Errno.OK));
    }

    [Test]
    public void Nothing_is_created_in_a_removed_directory()
    {
        ulong dir = MkDir(RootIno, "d");
        Assert.That(Fs.MkDir(dir, N("before"), 0x1ED, Root, out _), Is.EqualTo(Errno.OK), "the positive control");
        Assert.That(Fs.RmDir(dir, N("before")), Is.EqualTo(Errno.OK));
        Assert.That(Fs.RmDir(RootIno, N("d")), Is.EqualTo(Errno.OK));
        Assert.Multiple(() =>
        {
            Assert.That(Fs.MkDir(dir, N("x"), 0x1ED, Root, out _), Is.EqualTo(Errno.ENOENT));
            Assert.That(Fs.Create(dir, N("x"), LibC.O_RDWR | LibC.O_CREAT | LibC.O_EXCL, 0x1A4, Root, out _, out _, out _), Is.EqualTo(Errno.ENOENT));
            Assert.That(Fs.Symlink(dir, N("x"), N("t"), Root, out _), Is.EqualTo(Errno.ENOENT));
        });
    }

    [Test]
    public void Unlink_and_rmdir_refuse_the_other_type_a_missing_name_and_a_non_empty_directory()
    {
        ulong dir = MkDir(RootIno, "d");
        Touch(dir, "inner");
        Touch(RootIno, "f");
        MkDir(RootIno, "empty");
        Assert.Multiple(() =>
        {
            Assert.That(Fs.Unlink(RootIno, N("d")), Is.EqualTo(Errno.EISDIR));
            Assert.That(Fs.RmDir(RootIno, N("f")), Is.EqualTo(Errno.ENOTDIR));
            Assert.That(Fs.RmDir(RootIno, N("d")), Is.EqualTo(Errno.ENOTEMPTY));
            Assert.That(Fs.Unlink(RootIno, N("missing")), Is.EqualTo(Errno.ENOENT));
            Assert.That(Fs.RmDir(RootIno, N("missing")), Is.EqualTo(Errno.ENOENT));
        });
        Assert.That(Fs.Unlink(RootIno, N("f")), Is.EqualTo(Errno.OK));
        Assert.That(Fs.RmDir(RootIno, N("empty")), Is.EqualTo(Errno.OK));
        Assert.That(Lookup(RootIno, "f"), Is.EqualTo(Errno.ENOENT));
        Assert.That(Lookup(RootIno, "d"), Is.EqualTo(Errno.OK));
    }

    [Test]
    public void Every_create_over_an_existing_name_is_EEXIST_but_a_create_without_O_EXCL_opens_it()
    {
        ulong file = Touch(RootIno, "f");
        MkDir(RootIno, "d");
        foreach (string name in new[] { "f", "d" })
        {
            Assert.Multiple(() =>
            {
                Assert.That(Fs.MkDir(RootIno, N(name), 0x1ED, Root, out _), Is.EqualTo(Errno.EEXIST), $"mkdir {name}");
                Assert.That(Fs.MkNod(RootIno, N(name), LibC.S_IFIFO | 0x1A4, 0, Root, out _), Is.EqualTo(Errno.EEXIST), $"mkfifo {name}");
                Assert.That(Fs.MkNod(RootIno, N(name), LibC.S_IFREG | 0x1A4, 0, Root, out _), Is.EqualTo(Errno.EEXIST), $"mknod {name}");
                Assert.That(Fs.Symlink(RootIno, N(name), N("t"), Root, out _), Is.EqualTo(Errno.EEXIST), $"symlink {name}");
                Assert.That(Fs.Link(file, RootIno, N(name), out _), Is.EqualTo(Errno.EEXIST), $"link {name}");
                Assert.That(Fs.Create(RootIno, N(name), LibC.O_RDWR | LibC.O_CREAT | LibC.O_EXCL, 0x1A4, Root, out _, out _, out _), Is.EqualTo(Errno.EEXIST), $"create {name}");
            });
        }

        // Drift fixed: the host backend refused these with EEXIST; open(2) without O_EXCL opens what is there.
        Assert.That(Fs.Create(RootIno, N("d"), LibC.O_RDWR | LibC.O_CREAT, 0x1A4, User, out _, out _, out _), Is.EqualTo(Errno.EISDIR));
        Assert.That(Fs.Create(RootIno, N("f"), LibC.O_RDWR | LibC.O_CREAT, 0x1FF, User, out FuseAttr again, out IOpenFile r, out bool created), Is.EqualTo(Errno.OK));
        Assert.Multiple(() =>
        {
            Assert.That(created, Is.False, "an existing file opened by create is not reported as made (rules see a truncation)");
            Assert.That(again.Ino, Is.EqualTo(file));
            Assert.That(again.Uid, Is.Zero, "an existing file is not given to the caller");
            Assert.That(again.Mode & 0xFFF, Is.EqualTo(0x1A4u), "nor re-moded");
        });
        Assert.That(r.Release(), Is.EqualTo(Errno.OK));
    }

    [Test]
    public void Node_kinds_refuse_what_the_kernel_refuses()
    {
        ulong dir = MkDir(RootIno, "d");
        ulong file = Touch(RootIno, "f");
        Assert.Multiple(() =>
        {
            Assert.That(Fs.Link(dir, RootIno, N("dl"), out _), Is.EqualTo(Errno.EPERM), "hard link to a directory");
            Assert.That(Fs.MkNod(RootIno, N("x"), LibC.S_IFDIR | 0x1ED, 0, Root, out _), Is.EqualTo(Errno.EPERM), "mknod S_IFDIR (drift: host said EINVAL)");
            Assert.That(Fs.MkNod(RootIno, N("y"), 0xE000 | 0x1A4, 0, Root, out _), Is.EqualTo(Errno.EINVAL), "mknod of no type");
            Assert.That(Fs.Symlink(RootIno, N("s"), N(""), Root, out _), Is.EqualTo(Errno.ENOENT), "empty target (drift: host said EINVAL)");
            Assert.That(Fs.Symlink(RootIno, N("s"), N(new string('t', 4096)), Root, out _), Is.EqualTo(Errno.ENAMETOOLONG), "target of PATH_MAX (drift: host said EINVAL)");
            Assert.That(Fs.Symlink(RootIno, N("s"), N("a\0b"), Root, out _), Is.EqualTo(Errno.EINVAL), "NUL in the target (drift: memory stored it)");
            Assert.That(Fs.ReadLink(file, new byte[64], out _), Is.EqualTo(Errno.EINVAL), "readlink of a file");
            Assert.That(Fs.OpenDir(file, out _), Is.EqualTo(Errno.ENOTDIR), "opendir of a file");
            Assert.That(Fs.SetAttr(dir, new AttrChange { Size = 0 }, Root, out _), Is.EqualTo(Errno.EISDIR), "truncate of a directory");
            Assert.That(Fs.Open(MissingIno, LibC.O_RDONLY, Root, out _), Is.EqualTo(Errno.ENOENT), "open of a missing node");
            Assert.That(Fs.GetAttr(MissingIno, out _), Is.EqualTo(Errno.ENOENT), "getattr of a missing node");
        });

        Assert.That(Fs.Link(file, RootIno, N("f2"), out FuseAttr linked), Is.EqualTo(Errno.OK));
        Assert.That(linked.Nlink, Is.EqualTo(2u));
        Assert.That(Fs.MkNod(RootIno, N("r"), 0x1A4, 0, Root, out FuseAttr regular), Is.EqualTo(Errno.OK), "type 0 is a regular file");
        Assert.That(regular.Mode & LibC.S_IFMT, Is.EqualTo(LibC.S_IFREG));
        string longest = new('t', 4095);
        ulong link = Symlink(RootIno, "s", longest);
        var buffer = new byte[4096];
        Assert.That(Fs.ReadLink(link, buffer, out int length), Is.EqualTo(Errno.OK));
        Assert.That(length, Is.EqualTo(4095));
        Assert.That(Fs.OpenDir(dir, out IOpenDirectory dfh), Is.EqualTo(Errno.OK));
        Assert.That(dfh.Release(), Is.EqualTo(Errno.OK));
    }
}
