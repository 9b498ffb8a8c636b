using System.Text;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Memory;

namespace InSpatialFs.Storage.Tests.Memory;

public sealed class MemoryXattrTests
{
    private MemoryFileSystem _fs = null!;
    private ulong _file;

    [SetUp]
    public void SetUp()
    {
        _fs = new MemoryFileSystem();
        _file = _fs.Touch(_fs.RootIno, "f");
    }

    [TearDown]
    public void TearDown() => _fs.Dispose();

    [TestCase("user.a")]
    [TestCase("trusted.b")]
    [TestCase("security.selinux")]
    public void Known_namespaces_store_and_return_values(string name)
    {
        Assert.That(_fs.SetXattr(_file, Fs.N(name), "value"u8, 0), Is.EqualTo(Errno.OK));
        var buffer = new byte[16];
        Assert.That(_fs.GetXattr(_file, Fs.N(name), buffer, out int size), Is.EqualTo(Errno.OK));
        Assert.That(buffer[..size], Is.EqualTo("value"u8.ToArray()));
    }

    [TestCase("system.posix_acl_access")]
    [TestCase("other.x")]
    public void Other_namespaces_are_EOPNOTSUPP(string name)
    {
        Assert.That(_fs.SetXattr(_file, Fs.N(name), "v"u8, 0), Is.EqualTo(Errno.EOPNOTSUPP));
        Assert.That(_fs.GetXattr(_file, Fs.N(name), new byte[4], out _), Is.EqualTo(Errno.EOPNOTSUPP));
    }

    [Test]
    public void Create_and_replace_flags_check_existence()
    {
        Assert.That(_fs.SetXattr(_file, Fs.N("user.x"), "1"u8, LibC.XATTR_REPLACE), Is.EqualTo(Errno.ENODATA));
        Assert.That(_fs.SetXattr(_file, Fs.N("user.x"), "1"u8, LibC.XATTR_CREATE), Is.EqualTo(Errno.OK));
        Assert.That(_fs.SetXattr(_file, Fs.N("user.x"), "2"u8, LibC.XATTR_CREATE), Is.EqualTo(Errno.EEXIST));
        Assert.That(_fs.SetXattr(_file, Fs.N("user.x"), "three"u8, LibC.XATTR_REPLACE), Is.EqualTo(Errno.OK));
        Assert.That(_fs.GetXattr(_file, Fs.N("user.x"), [], out int size), Is.EqualTo(Errno.OK));
        Assert.That(size, Is.EqualTo(5));
    }

    [Test]
    public void Size_queries_and_small_buffers()
    {
        _fs.SetXattr(_file, Fs.N("user.long"), "0123456789"u8, 0);
        Assert.That(_fs.GetXattr(_file, Fs.N("user.long"), [], out int size), Is.EqualTo(Errno.OK));
        Assert.That(size, Is.EqualTo(10));
        Assert.That(_fs.GetXattr(_file, Fs.N("user.long"), new byte[3], out _), Is.EqualTo(Errno.ERANGE));
        Assert.That(_fs.GetXattr(_file, Fs.N("user.none"), new byte[3], out _), Is.EqualTo(Errno.ENODATA));
    }

    [Test]
    public void List_returns_nul_separated_names_and_remove_drops_one()
    {
        _fs.SetXattr(_file, Fs.N("user.a"), "1"u8, 0);
        _fs.SetXattr(_file, Fs.N("trusted.bb"), "2"u8, 0);
        Assert.That(_fs.ListXattr(_file, [], out int size), Is.EqualTo(Errno.OK));
        Assert.That(size, Is.EqualTo("user.a\0trusted.bb\0".Length));
        Assert.That(_fs.ListXattr(_file, new byte[size - 1], out _), Is.EqualTo(Errno.ERANGE));
        var buffer = new byte[size];
        Assert.That(_fs.ListXattr(_file, buffer, out _), Is.EqualTo(Errno.OK));
        Assert.That(Encoding.ASCII.GetString(buffer).Split('\0', StringSplitOptions.RemoveEmptyEntries), Is.EquivalentTo(new[] { "user.a", "trusted.bb" }));

        Assert.That(_fs.RemoveXattr(_file, Fs.N("user.a")), Is.EqualTo(Errno.OK));
        Assert.That(_fs.RemoveXattr(_file, Fs.N("user.a")), Is.EqualTo(Errno.ENODATA));
        Assert.That(_fs.ListXattr(_file, [], out size), Is.EqualTo(Errno.OK));
        Assert.That(size, Is.EqualTo("trusted.bb\0".Length));
    }

    [Test]
    public void Xattr_bytes_are_charged_and_released()
    {
        long before = _fs.Usage.BytesUsed;
        _fs.SetXattr(_file, Fs.N("user.v"), new byte[1000], 0);
        Assert.That(_fs.Usage.BytesUsed - before, Is.EqualTo(1006));
        _fs.SetXattr(_file, Fs.N("user.v"), new byte[10], 0);
        Assert.That(_fs.Usage.BytesUsed - before, Is.EqualTo(16));
        _fs.RemoveXattr(_file, Fs.N("user.v"));
        Assert.That(_fs.Usage.BytesUsed, Is.EqualTo(before));
    }

    [Test]
    public void Oversized_names_and_values_are_refused()
    {
        Assert.That(_fs.SetXattr(_file, Fs.N("user." + new string('x', 251)), "v"u8, 0), Is.EqualTo(Errno.ERANGE));
        Assert.That(_fs.SetXattr(_file, Fs.N("user.big"), new byte[65537], 0), Is.EqualTo(Errno.E2BIG));
    }
}
