using System.Text;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Memory;
using NUnit.Framework;

namespace InSpatialFs.Storage.Tests.Memory;

/// <summary>
/// File data in the private detached tmpfs: the kernel's size limit, space returned on delete, the managed-page
/// fallback, and that the volume is reachable by no path (the mounted checks are in the integration tests).
/// </summary>
[TestFixture]
public sealed class MemoryKernelDataTests
{
    [Test]
    [Category("Mount")]
    public void Data_lives_in_kernel_memory_when_the_kernel_allows_it_and_in_managed_pages_when_asked()
    {
        using var kernel = new MemoryFileSystem(sizeLimit: 1 << 20);
        using var managed = new MemoryFileSystem(sizeLimit: 1 << 20, kernelData: false);
        Assert.That(kernel.KernelData, Is.True, $"fsopen(tmpfs) refused: {kernel.KernelDataError}");
        Assert.That(managed.KernelData, Is.False);
        foreach (var fs in new[] { kernel, managed })
        {
            var (ino, fh) = fs.Create(fs.RootIno, "f");
            fs.WriteAt(ino, fh, 8192, "data"u8.ToArray());
            Assert.That(fs.ReadAt(ino, fh, 0, 8196), Is.EqualTo(new byte[8192].Concat("data"u8.ToArray()).ToArray()));
            Assert.That(fs.Attr(ino).Size, Is.EqualTo(8196UL));
            Assert.That(fs.Attr(ino).Blocks, Is.EqualTo(8UL), "one 4 KiB page: the hole before it holds nothing");
        }
    }

    [Test]
    [Category("Mount")]
    public void Writes_beyond_the_size_limit_stop_there_with_ENOSPC_and_the_space_comes_back()
    {
        using var fs = new MemoryFileSystem(sizeLimit: 64 * 1024);
        Assert.That(fs.KernelData, Is.True, fs.KernelDataError.ToString());
        var (ino, fh) = fs.Create(fs.RootIno, "f");
        fs.WriteAt(ino, fh, 0, Enumerable.Repeat((byte)1, 8192).ToArray());

        // As on tmpfs: a write fills what fits (a short count) and the next one gets ENOSPC.
        Assert.That(fh.Write(8192, Enumerable.Repeat((byte)2, 128 * 1024).ToArray(), out int written), Is.EqualTo(Errno.OK));
        Assert.That(written, Is.InRange(4096, (64 * 1024) - 8192));
        Assert.That(fh.Write(8192 + written, new byte[4096], out int more), Is.EqualTo(Errno.ENOSPC));
        Assert.That(more, Is.Zero);
        Assert.That(fh.Fallocate(0, 0, 1 << 20), Is.EqualTo(Errno.ENOSPC));
        Assert.That(fs.SetXattr(ino, Fs.N("user.big"), new byte[65536], 0), Is.EqualTo(Errno.ENOSPC));
        Assert.That(fs.Attr(ino).Size, Is.EqualTo((ulong)(8192 + written)));
        Assert.That(fs.ReadAt(ino, fh, 0, 8192), Is.All.EqualTo((byte)1));
        Assert.That(fs.ReadAt(ino, fh, 8192, written), Is.All.EqualTo((byte)2));
        fs.StatFs(out var full);
        Assert.That(full.Bfree, Is.LessThanOrEqualTo(1UL));

        // Truncating gives the pages back to the kernel: the same write now fits.
        Assert.That(fs.SetAttr(ino, new AttrChange { Size = 0 }, Fs.Root, out _), Is.EqualTo(Errno.OK));
        fs.StatFs(out var emptied);
        Assert.That(emptied.Bfree, Is.GreaterThanOrEqualTo(14UL));
        Assert.That(fh.Write(0, new byte[32 * 1024], out written), Is.EqualTo(Errno.OK));
        Assert.That(written, Is.EqualTo(32 * 1024));
    }

    [Test]
    public void Deleting_a_file_returns_its_pages_once_the_last_reference_goes()
    {
        using var fs = new MemoryFileSystem(sizeLimit: 16 << 20);
        long baseline = fs.Usage.BytesUsed;
        var (ino, fh) = fs.Create(fs.RootIno, "big");
        Assert.That(fs.Retain(ino), Is.True); // the kernel's reference, through the proxy
        fs.WriteAt(ino, fh, 0, new byte[4 << 20]);
        Assert.That(fs.Usage.BytesUsed - baseline, Is.InRange(4L << 20, (4L << 20) + 4096));
        Assert.That(fs.Unlink(fs.RootIno, Fs.N("big")), Is.EqualTo(Errno.OK));
        Assert.That(fs.Usage.BytesUsed - baseline, Is.GreaterThanOrEqualTo(4L << 20), "still open and referenced");
        Assert.That(fh.Release(), Is.EqualTo(Errno.OK));
        Assert.That(fs.Usage.BytesUsed - baseline, Is.GreaterThanOrEqualTo(4L << 20), "still held");
        fs.Release(ino);
        Assert.That(fs.Usage.BytesUsed, Is.EqualTo(baseline));
    }

    [Test]
    public void Sparse_files_answer_SEEK_DATA_and_SEEK_HOLE_from_the_kernel_and_ZERO_RANGE_is_served()
    {
        using var fs = new MemoryFileSystem(sizeLimit: 16 << 20);
        var (ino, fh) = fs.Create(fs.RootIno, "sparse");
        fs.WriteAt(ino, fh, 1 << 20, Enumerable.Repeat((byte)7, 4096).ToArray());
        Assert.That(fh.Lseek(0, LibC.SEEK_DATA, out long data), Is.EqualTo(Errno.OK));
        Assert.That(data, Is.EqualTo(1 << 20));
        Assert.That(fh.Lseek(1 << 20, LibC.SEEK_HOLE, out long hole), Is.EqualTo(Errno.OK));
        Assert.That(hole, Is.EqualTo((1 << 20) + 4096));
        Assert.That(fh.Lseek((1 << 20) + 4096, LibC.SEEK_DATA, out _), Is.EqualTo(Errno.ENXIO));

        // tmpfs has no FALLOC_FL_ZERO_RANGE of its own: the backend zeroes and keeps the range allocated.
        Assert.That(fh.Fallocate(LibC.FALLOC_FL_ZERO_RANGE, 1 << 20, 4096), Is.EqualTo(Errno.OK));
        Assert.That(fs.ReadAt(ino, fh, 1 << 20, 4096), Is.All.EqualTo((byte)0));
        // Still allocated (tmpfs, like ext4's unwritten extents, may report such a range as a hole to SEEK_DATA).
        Assert.That(fs.Attr(ino).Blocks, Is.EqualTo(8UL), "the zeroed range keeps its page");
        Assert.That(fh.Fallocate(LibC.FALLOC_FL_PUNCH_HOLE | LibC.FALLOC_FL_KEEP_SIZE, 1 << 20, 4096), Is.EqualTo(Errno.OK));
        Assert.That(fs.Attr(ino).Blocks, Is.Zero);
        Assert.That(fh.Lseek(0, LibC.SEEK_DATA, out _), Is.EqualTo(Errno.ENXIO));
        Assert.That(fs.Attr(ino).Size, Is.EqualTo((ulong)((1 << 20) + 4096)));
    }

    [Test]
    public void Hard_links_share_one_data_file_and_times_set_by_utimensat_stick()
    {
        using var fs = new MemoryFileSystem(sizeLimit: 1 << 20);
        var (ino, fh) = fs.Create(fs.RootIno, "a");
        fs.WriteAt(ino, fh, 0, "shared"u8.ToArray());
        Assert.That(fs.Link(ino, fs.RootIno, Fs.N("b"), out var linked), Is.EqualTo(Errno.OK));
        Assert.That(linked.Ino, Is.EqualTo(ino));
        Assert.That(fs.Open(ino, LibC.O_RDONLY, Fs.Root, out var other), Is.EqualTo(Errno.OK));
        Assert.That(fs.ReadAt(ino, other, 0, 6), Is.EqualTo("shared"u8.ToArray()));

        var change = new AttrChange { Mtime = new TimeChange(1_000_000, 5), Atime = new TimeChange(2_000_000, 0) };
        Assert.That(fs.SetAttr(ino, change, Fs.Root, out var set), Is.EqualTo(Errno.OK));
        Assert.That((set.Mtime, set.MtimeNsec, set.Atime), Is.EqualTo((1_000_000UL, 5u, 2_000_000UL)));
        fs.WriteAt(ino, fh, 0, "S"u8.ToArray());
        Assert.That(fs.Attr(ino).Mtime, Is.GreaterThan(1_000_000UL), "a write moves mtime again");
        Assert.That(Encoding.ASCII.GetString(fs.ReadAt(ino, other, 0, 6)), Is.EqualTo("Shared"));
    }

    [Test]
    public void Copy_file_range_between_files_in_kernel_memory_copies_the_bytes_and_keeps_the_refusals()
    {
        using var fs = new MemoryFileSystem(sizeLimit: 16 << 20);
        var (src, srcFh) = fs.Create(fs.RootIno, "src");
        var (dst, dstFh) = fs.Create(fs.RootIno, "dst");
        byte[] data = new byte[3 << 20];
        new Random(14).NextBytes(data);
        fs.WriteAt(src, srcFh, 0, data);

        Assert.That(fs.CopyFileRange(srcFh, 4096, dstFh, 0, 2 << 20, out long copied), Is.EqualTo(Errno.OK));
        Assert.That(copied, Is.EqualTo(2L << 20));
        Assert.That(fs.ReadAt(dst, dstFh, 0, 2 << 20), Is.EqualTo(data.AsSpan(4096, 2 << 20).ToArray()));
        Assert.That(fs.CopyFileRange(srcFh, (3 << 20) - 10, dstFh, 0, 100, out copied), Is.EqualTo(Errno.OK));
        Assert.That(copied, Is.EqualTo(10), "stops at the end of the source");

        // A destination open read-only is refused as by a write (the chunked path answers it).
        Assert.That(fs.Open(dst, LibC.O_RDONLY, Fs.Root, out var readOnly), Is.EqualTo(Errno.OK));
        Assert.That(fs.CopyFileRange(srcFh, 0, readOnly, 0, 100, out copied), Is.EqualTo(Errno.EBADF));
        Assert.That(copied, Is.Zero);
    }

    [Test]
    [Category("Mount")]
    public void The_data_volume_is_attached_nowhere()
    {
        using var fs = new MemoryFileSystem(sizeLimit: 1 << 20);
        Assert.That(fs.KernelData, Is.True, fs.KernelDataError.ToString());
        var (ino, fh) = fs.Create(fs.RootIno, "secret");
        fs.WriteAt(ino, fh, 0, "needle-7f3a"u8.ToArray());
        string mountinfo = File.ReadAllText("/proc/self/mountinfo");
        // Positive control: the mount table is readable and lists tmpfs mounts of the host (/dev/shm or /run usually).
        Assert.That(mountinfo, Does.Contain(" / "));
        int sizeMounts = mountinfo.Split('\n').Count(l => l.Contains(" tmpfs ", StringComparison.Ordinal) && l.Contains("size=1024k", StringComparison.Ordinal) && l.Contains("nr_inodes=", StringComparison.Ordinal) && l.Contains("mode=700", StringComparison.Ordinal));
        Assert.That(sizeMounts, Is.Zero, "no 1 MiB mode-700 tmpfs is attached anywhere");
    }
}
