using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Memory;

namespace InSpatialFs.Storage.Tests.Memory;

public sealed class MemoryFileDataTests
{
    private MemoryFileSystem _fs = null!;

    [SetUp]
    public void SetUp() => _fs = new MemoryFileSystem();

    [TearDown]
    public void TearDown() => _fs.Dispose();

    [Test]
    public void Write_at_two_to_the_forty_costs_one_page_and_the_hole_reads_as_zeros()
    {
        var (ino, fh) = _fs.Create(_fs.RootIno, "sparse");
        long before = _fs.Usage.BytesUsed;
        _fs.WriteAt(ino, fh, 1L << 40, "tail"u8.ToArray());

        var attr = _fs.Attr(ino);
        Assert.That(attr.Size, Is.EqualTo((1UL << 40) + 4));
        Assert.That(attr.Blocks, Is.EqualTo(8UL), "one 4 KiB page in 512-byte blocks");
        Assert.That(_fs.Usage.BytesUsed - before, Is.EqualTo(4096));
        var hole = _fs.ReadAt(ino, fh, 12345, 100);
        Assert.That(hole, Has.Length.EqualTo(100));
        Assert.That(hole, Is.All.EqualTo((byte)0));
        Assert.That(_fs.ReadAt(ino, fh, (1L << 40) - 2, 10), Is.EqualTo(new byte[] { 0, 0, (byte)'t', (byte)'a', (byte)'i', (byte)'l' }));
    }

    [Test]
    public void Read_past_end_of_file_returns_nothing()
    {
        var (ino, fh) = _fs.Create(_fs.RootIno, "f");
        _fs.WriteAt(ino, fh, 0, [1, 2, 3]);
        Assert.That(_fs.ReadAt(ino, fh, 3, 10), Is.Empty);
        Assert.That(_fs.ReadAt(ino, fh, 1, 10), Is.EqualTo(new byte[] { 2, 3 }));
    }

    [Test]
    public void Seek_data_and_hole_follow_the_page_map_and_give_ENXIO_past_the_end()
    {
        var (ino, fh) = _fs.Create(_fs.RootIno, "f");
        _fs.WriteAt(ino, fh, 3 * 4096, new byte[4096]);   // page 3 holds data
        _fs.WriteAt(ino, fh, 10 * 4096 + 10, [1]);        // page 10 holds data, size ends inside it

        Assert.Multiple(() =>
        {
            Assert.That(Seek(ino, fh, 0, LibC.SEEK_DATA), Is.EqualTo(3 * 4096L));
            Assert.That(Seek(ino, fh, 3 * 4096 + 5, LibC.SEEK_DATA), Is.EqualTo(3 * 4096L + 5));
            Assert.That(Seek(ino, fh, 4 * 4096, LibC.SEEK_DATA), Is.EqualTo(10 * 4096L));
            Assert.That(Seek(ino, fh, 0, LibC.SEEK_HOLE), Is.EqualTo(0L));
            Assert.That(Seek(ino, fh, 3 * 4096, LibC.SEEK_HOLE), Is.EqualTo(4 * 4096L));
            Assert.That(Seek(ino, fh, 10 * 4096, LibC.SEEK_HOLE), Is.EqualTo(10 * 4096L + 11), "end of file is a hole");
            Assert.That(fh.Lseek(10 * 4096 + 11, LibC.SEEK_DATA, out _), Is.EqualTo(Errno.ENXIO));
            Assert.That(fh.Lseek(10 * 4096 + 11, LibC.SEEK_HOLE, out _), Is.EqualTo(Errno.ENXIO));
            Assert.That(Seek(ino, fh, 5, LibC.SEEK_END), Is.EqualTo(10 * 4096L + 16));
        });
    }

    [Test]
    public void Seek_data_in_a_file_that_is_all_hole_gives_ENXIO()
    {
        var (ino, fh) = _fs.Create(_fs.RootIno, "f");
        var change = new AttrChange { Size = 1 << 20 };
        Assert.That(_fs.SetAttr(ino, change, Fs.Root, out _), Is.EqualTo(Errno.OK));
        Assert.That(fh.Lseek(0, LibC.SEEK_DATA, out _), Is.EqualTo(Errno.ENXIO));
        Assert.That(Seek(ino, fh, 100, LibC.SEEK_HOLE), Is.EqualTo(100L));
    }

    [Test]
    public void Truncate_down_then_up_reads_zeros_where_data_was_cut()
    {
        var (ino, fh) = _fs.Create(_fs.RootIno, "f");
        _fs.WriteAt(ino, fh, 0, Enumerable.Repeat((byte)0xAB, 10000).ToArray());
        SetSize(ino, 5000);
        Assert.That(_fs.Attr(ino).Blocks, Is.EqualTo(16UL), "pages 0 and 1 remain, page 2 was dropped");
        SetSize(ino, 10000);
        var data = _fs.ReadAt(ino, fh, 0, 10000);
        Assert.That(data[..5000], Is.All.EqualTo((byte)0xAB));
        Assert.That(data[5000..], Is.All.EqualTo((byte)0));
    }

    [Test]
    public void Truncate_beyond_the_maximum_file_size_is_EFBIG_and_writes_there_too()
    {
        var (ino, fh) = _fs.Create(_fs.RootIno, "f");
        var change = new AttrChange { Size = (ulong)MemoryFileSystem.MaxFileSize + 1 };
        Assert.That(_fs.SetAttr(ino, change, Fs.Root, out _), Is.EqualTo(Errno.EFBIG));
        Assert.That(fh.Write(MemoryFileSystem.MaxFileSize - 1, "ab"u8, out _), Is.EqualTo(Errno.EFBIG));
        Assert.That(_fs.Attr(ino).Size, Is.Zero);
    }

    [Test]
    public void Fallocate_allocates_pages_and_extends_size_unless_keep_size()
    {
        var (ino, fh) = _fs.Create(_fs.RootIno, "f");
        Assert.That(fh.Fallocate(0, 0, 8192), Is.EqualTo(Errno.OK));
        Assert.That(_fs.Attr(ino).Size, Is.EqualTo(8192UL));
        Assert.That(fh.Fallocate(LibC.FALLOC_FL_KEEP_SIZE, 8192, 8192), Is.EqualTo(Errno.OK));
        var attr = _fs.Attr(ino);
        Assert.That(attr.Size, Is.EqualTo(8192UL));
        Assert.That(attr.Blocks, Is.EqualTo(32UL));
        Assert.That(_fs.ReadAt(ino, fh, 0, 8192), Is.All.EqualTo((byte)0));
    }

    [Test]
    public void Punch_hole_frees_whole_pages_and_zeroes_partial_ones_keeping_the_size()
    {
        var (ino, fh) = _fs.Create(_fs.RootIno, "f");
        _fs.WriteAt(ino, fh, 0, Enumerable.Repeat((byte)7, 4 * 4096).ToArray());
        long before = _fs.Usage.BytesUsed;
        Assert.That(fh.Fallocate(LibC.FALLOC_FL_PUNCH_HOLE | LibC.FALLOC_FL_KEEP_SIZE, 100, 2 * 4096), Is.EqualTo(Errno.OK));

        Assert.That(_fs.Attr(ino).Size, Is.EqualTo(4 * 4096UL));
        Assert.That(before - _fs.Usage.BytesUsed, Is.EqualTo(4096), "only page 1 lies wholly inside the hole");
        var data = _fs.ReadAt(ino, fh, 0, 4 * 4096);
        Assert.That(data[..100], Is.All.EqualTo((byte)7));
        Assert.That(data[100..(100 + 2 * 4096)], Is.All.EqualTo((byte)0));
        Assert.That(data[(100 + 2 * 4096)..], Is.All.EqualTo((byte)7));
        Assert.That(Seek(ino, fh, 0, LibC.SEEK_HOLE), Is.EqualTo(4096L));
    }

    [Test]
    public void Zero_range_zeroes_and_allocates()
    {
        var (ino, fh) = _fs.Create(_fs.RootIno, "f");
        _fs.WriteAt(ino, fh, 0, Enumerable.Repeat((byte)9, 4096).ToArray());
        Assert.That(fh.Fallocate(LibC.FALLOC_FL_ZERO_RANGE, 10, 8192), Is.EqualTo(Errno.OK));
        Assert.That(_fs.Attr(ino).Size, Is.EqualTo(8202UL));
        var data = _fs.ReadAt(ino, fh, 0, 8202);
        Assert.That(data[..10], Is.All.EqualTo((byte)9));
        Assert.That(data[10..], Is.All.EqualTo((byte)0));
        Assert.That(_fs.Attr(ino).Blocks, Is.EqualTo(24UL));
    }

    [TestCase(LibC.FALLOC_FL_PUNCH_HOLE)]
    [TestCase(0x08)] // FALLOC_FL_COLLAPSE_RANGE
    [TestCase(0x20)] // FALLOC_FL_INSERT_RANGE
    public void Unsupported_fallocate_modes_are_EOPNOTSUPP(int mode)
    {
        var (ino, fh) = _fs.Create(_fs.RootIno, "f");
        Assert.That(fh.Fallocate(mode, 0, 4096), Is.EqualTo(Errno.EOPNOTSUPP));
    }

    [Test]
    public void Append_handle_writes_at_the_end_whatever_offset_arrives()
    {
        var (ino, fh) = _fs.Create(_fs.RootIno, "f");
        _fs.WriteAt(ino, fh, 0, "abc"u8.ToArray());
        Assert.That(_fs.Open(ino, LibC.O_WRONLY | LibC.O_APPEND, Fs.Root, out var open), Is.EqualTo(Errno.OK));
        _fs.WriteAt(ino, open, 0, "de"u8.ToArray());
        Assert.That(_fs.ReadAt(ino, fh, 0, 10), Is.EqualTo("abcde"u8.ToArray()));
    }

    [Test]
    public void Open_with_O_TRUNC_empties_the_file_and_kill_suidgid_then_clears_the_set_id_bits()
    {
        // Whether an O_TRUNC clears set-id bits is the kernel's call (FUSE_OPEN_KILL_SUIDGID, acted on by the proxy for
        // every backend); the backend truncates, and FATTR_KILL_SUIDGID clears with the kernel's rule.
        var (ino, fh) = _fs.Create(_fs.RootIno, "f", mode: 0xDED); // 06755
        _fs.WriteAt(ino, fh, 0, new byte[5000]);
        Assert.That(_fs.Open(ino, LibC.O_WRONLY | LibC.O_TRUNC, Fs.User, out _), Is.EqualTo(Errno.OK));
        var attr = _fs.Attr(ino);
        Assert.That(attr.Size, Is.Zero);
        Assert.That(attr.Blocks, Is.Zero);
        Assert.That(attr.Mode & 0xFFF, Is.EqualTo(0xDEDu), "the truncation alone keeps the bits");
        var kill = new AttrChange { KillSetId = true };
        Assert.That(_fs.SetAttr(ino, kill, Fs.User, out attr), Is.EqualTo(Errno.OK));
        Assert.That(attr.Mode & 0xFFF, Is.EqualTo(0x1EDu), "suid and sgid (group-executable) cleared");
    }

    [Test]
    public void Copy_file_range_copies_bytes_and_stops_at_end_of_source()
    {
        var (src, fhIn) = _fs.Create(_fs.RootIno, "src");
        var (dst, fhOut) = _fs.Create(_fs.RootIno, "dst");
        var payload = Enumerable.Range(0, 300_000).Select(i => (byte)(i * 31)).ToArray();
        _fs.WriteAt(src, fhIn, 0, payload);
        Assert.That(_fs.CopyFileRange(fhIn, 1000, fhOut, 5, 1_000_000, out long copied), Is.EqualTo(Errno.OK));
        Assert.That(copied, Is.EqualTo(299_000));
        Assert.That(_fs.ReadAt(dst, fhOut, 5, 299_000), Is.EqualTo(payload[1000..]));
        Assert.That(_fs.CopyFileRange(fhIn, 0, fhIn, 100, 200, out _), Is.EqualTo(Errno.EINVAL), "overlap in one file");
    }

    [Test]
    public void Read_and_write_on_a_directory_handle_or_released_handle_fail()
    {
        Assert.That(_fs.Open(_fs.RootIno, LibC.O_RDONLY, Fs.Root, out IOpenFile dirFile), Is.EqualTo(Errno.OK));
        Assert.That(dirFile.Read(0, new byte[4], out _), Is.EqualTo(Errno.EISDIR));
        Assert.That(dirFile.Release(), Is.EqualTo(Errno.OK));
        var (_, released) = _fs.Create(_fs.RootIno, "f");
        Assert.That(released.Write(0, "x"u8, out _), Is.EqualTo(Errno.OK), "the positive control");
        Assert.That(released.Release(), Is.EqualTo(Errno.OK));
        Assert.That(released.Write(0, "x"u8, out _), Is.EqualTo(Errno.EBADF));
    }

    private long Seek(ulong ino, IOpenFile fh, long offset, int whence)
    {
        Assert.That(fh.Lseek(offset, whence, out long result), Is.EqualTo(Errno.OK), $"lseek {offset} {whence}");
        return result;
    }

    private void SetSize(ulong ino, ulong size)
    {
        var change = new AttrChange { Size = size };
        Assert.That(_fs.SetAttr(ino, change, Fs.Root, out var attr), Is.EqualTo(Errno.OK));
        Assert.That(attr.Size, Is.EqualTo(size));
    }
}
