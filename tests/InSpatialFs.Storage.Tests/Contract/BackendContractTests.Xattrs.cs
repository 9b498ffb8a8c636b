using System.Text;
using InSpatialFs.Interop;

namespace InSpatialFs.Storage.Tests.Contract;

// Extended attributes: XattrName.
public abstract partial class BackendContractTests
{
    private static readonly object[] BadXattrNames =
    [
        new object[] { "", Errno.ERANGE }, // drift: memory said EINVAL
        new object[] { "user." + new string('a', 251), Errno.ERANGE },
        new object[] { "user.", Errno.EINVAL }, // drift: the host said EINVAL, memory stored it
        new object[] { "trusted.", Errno.EINVAL },
        new object[] { "foo.bar", Errno.EOPNOTSUPP },
        new object[] { "user", Errno.EOPNOTSUPP },
        new object[] { "system.foo", Errno.EOPNOTSUPP },
        new object[] { "system.posix_acl_access", Errno.EOPNOTSUPP }, // drift: the host stored ACLs the mount never enforced
        new object[] { "user.a\0b", Errno.EINVAL },
    ];

    [TestCaseSource(nameof(BadXattrNames))]
    public void Xattr_names_are_refused_as_the_kernel_refuses_them(string name, Errno expected)
    {
        ulong file = Touch(RootIno, "f");
        Assert.Multiple(() =>
        {
            Assert.That(Fs.SetXattr(file, N(name), "v"u8, 0), Is.EqualTo(expected), "set");
            Assert.That(Fs.GetXattr(file, N(name), new byte[16], out _), Is.EqualTo(expected), "get");
            Assert.That(Fs.RemoveXattr(file, N(name)), Is.EqualTo(expected), "remove");
        });

        string longest = "user." + new string('a', 250);
        Assert.That(Fs.SetXattr(file, N(longest), "v"u8, 0), Is.EqualTo(Errno.OK), "the positive control: 255 bytes");
        Assert.That(Fs.GetXattr(file, N(longest), new byte[16], out int size), Is.EqualTo(Errno.OK));
        Assert.That(size, Is.EqualTo(1));
    }

    [TestCase("user.k")]
    [TestCase("trusted.k")]
    [TestCase("security.k")]
    public void Xattr_flags_and_existence_answer_like_setxattr(string name)
    {
        ulong file = Touch(RootIno, "f");
        Assert.Multiple(() =>
        {
            Assert.That(Fs.SetXattr(file, N(name), "v"u8, 4), Is.EqualTo(Errno.EINVAL), "unknown flag");
            Assert.That(Fs.SetXattr(file, N(name), "v"u8, LibC.XATTR_REPLACE), Is.EqualTo(Errno.ENODATA), "replace of nothing");
            Assert.That(Fs.SetXattr(file, N(name), "v"u8, LibC.XATTR_CREATE | LibC.XATTR_REPLACE), Is.EqualTo(Errno.ENODATA), "both, of nothing");
            Assert.That(Fs.GetXattr(file, N(name), new byte[4], out _), Is.EqualTo(Errno.ENODATA), "get of nothing");
            Assert.That(Fs.RemoveXattr(file, N(name)), Is.EqualTo(Errno.ENODATA), "remove of nothing");
            Assert.That(Fs.SetXattr(file, N(name), new byte[65537], 0), Is.EqualTo(Errno.E2BIG), "over XATTR_SIZE_MAX");
        });

        Assert.That(Fs.SetXattr(file, N(name), "one"u8, LibC.XATTR_CREATE), Is.EqualTo(Errno.OK));
        Assert.That(Fs.SetXattr(file, N(name), "two"u8, LibC.XATTR_CREATE), Is.EqualTo(Errno.EEXIST), "create of something");
        Assert.That(Fs.SetXattr(file, N(name), "three"u8, LibC.XATTR_REPLACE), Is.EqualTo(Errno.OK));
        var buffer = new byte[16];
        Assert.That(Fs.GetXattr(file, N(name), buffer, out int size), Is.EqualTo(Errno.OK));
        Assert.That(Encoding.ASCII.GetString(buffer, 0, size), Is.EqualTo("three"));
        Assert.That(Fs.RemoveXattr(file, N(name)), Is.EqualTo(Errno.OK));
        Assert.That(Fs.GetXattr(file, N(name), buffer, out _), Is.EqualTo(Errno.ENODATA));
    }

    [Test]
    public void Small_xattr_buffers_are_ERANGE_and_size_queries_are_exact()
    {
        ulong file = Touch(RootIno, "f");
        Assert.That(Fs.SetXattr(file, N("user.a"), "0123456789"u8, 0), Is.EqualTo(Errno.OK));
        Assert.That(Fs.SetXattr(file, N("trusted.bb"), "x"u8, 0), Is.EqualTo(Errno.OK));

        Assert.That(Fs.GetXattr(file, N("user.a"), [], out int size), Is.EqualTo(Errno.OK));
        Assert.That(size, Is.EqualTo(10));
        Assert.That(Fs.GetXattr(file, N("user.a"), new byte[9], out _), Is.EqualTo(Errno.ERANGE));
        Assert.That(Fs.GetXattr(file, N("user.a"), new byte[10], out size), Is.EqualTo(Errno.OK));
        Assert.That(size, Is.EqualTo(10));

        Assert.That(Fs.ListXattr(file, [], out int listSize), Is.EqualTo(Errno.OK));
        Assert.That(listSize, Is.EqualTo("user.a\0trusted.bb\0".Length));
        Assert.That(Fs.ListXattr(file, new byte[listSize - 1], out _), Is.EqualTo(Errno.ERANGE));
        var list = new byte[listSize];
        Assert.That(Fs.ListXattr(file, list, out size), Is.EqualTo(Errno.OK));
        Assert.That(Encoding.ASCII.GetString(list, 0, size).Split('\0', StringSplitOptions.RemoveEmptyEntries),
            Is.EquivalentTo(new[] { "user.a", "trusted.bb" }));
    }

    [Test]
    public void User_xattrs_live_only_on_regular_files_and_directories()
    {
        ulong link = Symlink(RootIno, "l");
        ulong fifo = Fifo(RootIno, "p");
        foreach (ulong ino in new[] { link, fifo })
        {
            Assert.Multiple(() =>
            {
                Assert.That(Fs.SetXattr(ino, N("user.x"), "v"u8, 0), Is.EqualTo(Errno.EPERM), "set (drift: memory stored it)");
                Assert.That(Fs.GetXattr(ino, N("user.x"), new byte[4], out _), Is.EqualTo(Errno.ENODATA), "get");
                Assert.That(Fs.RemoveXattr(ino, N("user.x")), Is.EqualTo(Errno.EPERM), "remove");
            });
            Assert.That(Fs.SetXattr(ino, N("trusted.x"), "v"u8, 0), Is.EqualTo(Errno.OK), "other namespaces are not limited");
        }

        ulong dir = MkDir(RootIno, "d");
        Assert.That(Fs.SetXattr(dir, N("user.x"), "v"u8, 0), Is.EqualTo(Errno.OK), "the positive control: a directory");
        Assert.That(Fs.SetXattr(Touch(RootIno, "f"), N("user.x"), "v"u8, 0), Is.EqualTo(Errno.OK), "and a file");
    }
}
