using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Memory;

namespace InSpatialFs.Storage.Tests.Memory;

/// <summary>
/// Random writes, truncates, hole punches and zero ranges on one file, checked after every step against a
/// plain byte array that models what POSIX says the file holds.
/// </summary>
public sealed class MemoryFileModelTests
{
    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    public void Random_data_operations_match_a_flat_byte_model(int seed)
    {
        using var fs = new MemoryFileSystem();
        var (ino, fh) = fs.Create(fs.RootIno, "f");
        var random = new Random(seed);
        const int span = 64 * 1024; // small enough to model, several pages wide
        var model = new byte[span];
        long size = 0;

        for (int step = 0; step < 400; step++)
        {
            long offset = random.Next(span - 1);
            int length = random.Next(1, Math.Min(12_000, span - (int)offset));
            string what;
            switch (random.Next(5))
            {
                case 0:
                case 1:
                    var data = new byte[length];
                    random.NextBytes(data);
                    fs.WriteAt(ino, fh, offset, data);
                    data.CopyTo(model, offset);
                    size = Math.Max(size, offset + length);
                    what = $"write {offset}+{length}";
                    break;
                case 2:
                    var change = new AttrChange { Size = (ulong)offset };
                    Assert.That(fs.SetAttr(ino, change, Fs.Root, out _), Is.EqualTo(Errno.OK));
                    if (offset < size)
                    {
                        Array.Clear(model, (int)offset, (int)(size - offset));
                    }
                    size = offset;
                    what = $"truncate {offset}";
                    break;
                case 3:
                    Assert.That(fh.Fallocate(LibC.FALLOC_FL_PUNCH_HOLE | LibC.FALLOC_FL_KEEP_SIZE, offset, length), Is.EqualTo(Errno.OK));
                    Array.Clear(model, (int)offset, length);
                    what = $"punch {offset}+{length}";
                    break;
                default:
                    Assert.That(fh.Fallocate(LibC.FALLOC_FL_ZERO_RANGE, offset, length), Is.EqualTo(Errno.OK));
                    Array.Clear(model, (int)offset, length);
                    size = Math.Max(size, offset + length);
                    what = $"zero {offset}+{length}";
                    break;
            }

            Assert.That(fs.Attr(ino).Size, Is.EqualTo((ulong)size), $"step {step}: {what}");
            var content = fs.ReadAt(ino, fh, 0, span);
            // SequenceEqual instead of Is.EqualTo: NUnit compares arrays element by element through object.
            if (!content.AsSpan().SequenceEqual(model.AsSpan(0, (int)size)))
            {
                Assert.That(content, Is.EqualTo(model[..(int)size]), $"step {step}: {what}");
            }
            CheckSeekAgreesWithContent(fs, ino, fh, size);
        }
    }

    /// <summary>SEEK_DATA/SEEK_HOLE may report zeros as data, but never data as a hole.</summary>
    private static void CheckSeekAgreesWithContent(MemoryFileSystem fs, ulong ino, IOpenFile fh, long size)
    {
        if (size == 0)
        {
            return;
        }
        var content = fs.ReadAt(ino, fh, 0, (int)size);
        long position = 0;
        while (position < size)
        {
            Assert.That(fh.Lseek(position, LibC.SEEK_HOLE, out long hole), Is.EqualTo(Errno.OK));
            Assert.That(hole, Is.InRange(position, size));
            var result = fh.Lseek(hole, LibC.SEEK_DATA, out long data);
            long holeEnd = result == Errno.ENXIO ? size : data;
            Assert.That(result, Is.EqualTo(Errno.OK).Or.EqualTo(Errno.ENXIO));
            Assert.That(content.AsSpan((int)hole, (int)(holeEnd - hole)).ContainsAnyExcept((byte)0), Is.False, $"hole [{hole},{holeEnd}) holds data");
            if (result == Errno.ENXIO)
            {
                break;
            }
            Assert.That(data, Is.GreaterThan(hole));
            position = data;
        }
    }
}
