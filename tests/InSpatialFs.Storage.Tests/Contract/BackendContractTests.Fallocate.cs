using InSpatialFs.Interop;
using InSpatialFs.Storage.Posix;

namespace InSpatialFs.Storage.Tests.Contract;

// fallocate(2): FallocateMode.
public abstract partial class BackendContractTests
{
    private const int Keep = FallocateMode.KeepSize, Punch = FallocateMode.PunchHole, Zero = FallocateMode.ZeroRange;

    private static readonly object[] FallocateModes =
    [
        new object[] { 0, Errno.OK },
        new object[] { Keep, Errno.OK },
        new object[] { Punch | Keep, Errno.OK },
        new object[] { Zero, Errno.OK },
        new object[] { Zero | Keep, Errno.OK }, // the drift of issue 12: the host backend refused it, ext4 serves it
        new object[] { Punch, Errno.EOPNOTSUPP }, // a hole punch must keep the size
        new object[] { 0x04, Errno.EOPNOTSUPP }, // NO_HIDE_STALE
        new object[] { FallocateMode.CollapseRange, Errno.EOPNOTSUPP }, // valid to the VFS, not forwarded by FUSE
        new object[] { FallocateMode.InsertRange, Errno.EOPNOTSUPP },
        new object[] { FallocateMode.UnshareRange, Errno.EOPNOTSUPP },
        new object[] { FallocateMode.WriteZeroes, Errno.EOPNOTSUPP },
        new object[] { FallocateMode.CollapseRange | Keep, Errno.EOPNOTSUPP },
        new object[] { Punch | Zero | Keep, Errno.EOPNOTSUPP }, // two operations
        new object[] { 0x100, Errno.EOPNOTSUPP },
        new object[] { int.MinValue, Errno.EOPNOTSUPP },
    ];

    [TestCaseSource(nameof(FallocateModes))]
    public void Fallocate_serves_exactly_the_modes_fuse_forwards(int mode, Errno expected)
    {
        (ulong ino, IOpenFile fh) = Create(RootIno, "f");
        WriteAt(ino, fh, 0, Filled(65536, 0xAA));
        Assert.That(fh.Fallocate(mode, 4096, 8192), Is.EqualTo(expected));
        if (expected != Errno.OK)
        {
            Assert.That(ReadAt(ino, fh, 4096, 8192), Is.EqualTo(Filled(8192, 0xAA)), "a refused request changes nothing");
        }

        Assert.That(fh.Fallocate(Keep, 0, 4096), Is.EqualTo(Errno.OK), "the positive control");
        fh.Release();
    }

    [Test]
    public void Fallocate_checks_the_range_before_the_mode()
    {
        (ulong ino, IOpenFile fh) = Create(RootIno, "f");
        (_, IOpenFile released) = Create(RootIno, "released");
        Assert.That(released.Release(), Is.EqualTo(Errno.OK));
        Assert.Multiple(() =>
        {
            Assert.That(fh.Fallocate(0, -1, 10), Is.EqualTo(Errno.EINVAL), "negative offset");
            Assert.That(fh.Fallocate(0, 0, 0), Is.EqualTo(Errno.EINVAL), "empty range");
            Assert.That(fh.Fallocate(Punch, 0, 0), Is.EqualTo(Errno.EINVAL), "range before mode (drift: both said EOPNOTSUPP)");
            Assert.That(fh.Fallocate(0x100, -5, 10), Is.EqualTo(Errno.EINVAL), "range before unknown bits");
            Assert.That(released.Fallocate(0, 0, 10), Is.EqualTo(Errno.EBADF), "a released handle");
            Assert.That(released.Release(), Is.EqualTo(Errno.EBADF), "released twice");
        });
        Assert.That(fh.Fallocate(0, 0, 1), Is.EqualTo(Errno.OK), "the positive control");
        Assert.That(Attr(ino).Size, Is.EqualTo(1UL));
        fh.Release();
    }

    [Test]
    public void Fallocate_modes_do_what_ext4_does_to_the_data_and_the_size()
    {
        (ulong ino, IOpenFile fh) = Create(RootIno, "f");
        WriteAt(ino, fh, 0, Filled(16384, 0xAA));

        Assert.That(fh.Fallocate(Zero | Keep, 4096, 65536), Is.EqualTo(Errno.OK));
        Assert.That(Attr(ino).Size, Is.EqualTo(16384UL), "ZERO_RANGE|KEEP_SIZE keeps the size");
        Assert.That(ReadAt(ino, fh, 0, 4096), Is.EqualTo(Filled(4096, 0xAA)), "before the range: untouched");
        Assert.That(ReadAt(ino, fh, 4096, 12288), Is.EqualTo(new byte[12288]), "inside: zeroes");

        WriteAt(ino, fh, 0, Filled(16384, 0xBB));
        Assert.That(fh.Fallocate(Punch | Keep, 8192, 4096), Is.EqualTo(Errno.OK));
        Assert.That(ReadAt(ino, fh, 8192, 4096), Is.EqualTo(new byte[4096]), "a punched hole reads as zeroes");
        Assert.That(ReadAt(ino, fh, 12288, 4096), Is.EqualTo(Filled(4096, 0xBB)));
        Assert.That(Attr(ino).Size, Is.EqualTo(16384UL));

        Assert.That(fh.Fallocate(Keep, 0, 1 << 20), Is.EqualTo(Errno.OK));
        Assert.That(Attr(ino).Size, Is.EqualTo(16384UL), "KEEP_SIZE allocates without growing");
        Assert.That(fh.Fallocate(Zero, 16384, 4096), Is.EqualTo(Errno.OK));
        Assert.That(Attr(ino).Size, Is.EqualTo(20480UL), "ZERO_RANGE grows the file");
        Assert.That(fh.Fallocate(0, 0, 32768), Is.EqualTo(Errno.OK));
        Assert.That(Attr(ino).Size, Is.EqualTo(32768UL), "plain allocation grows the file");
        Assert.That(ReadAt(ino, fh, 0, 4096), Is.EqualTo(Filled(4096, 0xBB)), "and keeps what was there");
        fh.Release();
    }

    [Test]
    public void A_handle_does_only_what_it_was_opened_for()
    {
        (ulong ino, IOpenFile fh) = Create(RootIno, "f");
        WriteAt(ino, fh, 0, Filled(4096, 0xCC));
        fh.Release();

        Assert.That(Fs.Open(ino, LibC.O_RDONLY, Root, out IOpenFile ro), Is.EqualTo(Errno.OK));
        Assert.That(Fs.Open(ino, LibC.O_WRONLY, Root, out IOpenFile wo), Is.EqualTo(Errno.OK));
        Assert.Multiple(() =>
        {
            Assert.That(ro.Write(0, "x"u8, out _), Is.EqualTo(Errno.EBADF), "write through a read-only handle (drift: memory wrote)");
            Assert.That(ro.Fallocate(0, 0, 8192), Is.EqualTo(Errno.EBADF), "allocate through a read-only handle");
            Assert.That(ro.Fallocate(Punch, 0, 4096), Is.EqualTo(Errno.EOPNOTSUPP), "the mode is checked before the handle");
            Assert.That(wo.Read(0, new byte[16], out _), Is.EqualTo(Errno.EBADF), "read through a write-only handle (drift: memory read)");
        });

        Assert.That(ReadAt(ino, ro, 0, 4096), Is.EqualTo(Filled(4096, 0xCC)), "the positive controls: each does its own");
        WriteAt(ino, wo, 0, "y"u8.ToArray());
        Assert.That(wo.Fallocate(0, 0, 8192), Is.EqualTo(Errno.OK));
        Assert.That(Attr(ino).Size, Is.EqualTo(8192UL));
        ro.Release();
        wo.Release();
    }

    private static byte[] Filled(int length, byte value)
    {
        var data = new byte[length];
        Array.Fill(data, value);
        return data;
    }
}
