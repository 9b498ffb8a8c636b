using System.Collections.Concurrent;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Memory;

namespace InSpatialFs.Storage.Tests.Memory;

public sealed class MemoryConcurrencyTests
{
    [Test]
    public void Parallel_creators_writers_renamers_and_deleters_leave_consistent_state()
    {
        using var fs = new MemoryFileSystem(sizeLimit: 256L << 20);
        int baselineNodes = fs.NodeCount;
        long baselineBytes = fs.Usage.BytesUsed;
        ulong shared = fs.MkDir(fs.RootIno, "shared");
        var errors = new ConcurrentQueue<string>();
        var deadline = DateTime.UtcNow.AddSeconds(3);
        var workers = Enumerable.Range(0, 6).Select(worker => Task.Run(() =>
        {
            var random = new Random(worker);
            var payload = new byte[10_000];
            random.NextBytes(payload);
            while (DateTime.UtcNow < deadline)
            {
                string name = $"f{random.Next(40)}";
                switch (random.Next(5))
                {
                    case 0:
                    case 1:
                        var error = fs.Create(shared, Fs.N(name), LibC.O_CREAT | LibC.O_RDWR, 0x1A4, Fs.Root, out var attr, out var open, out _);
                        if (error != Errno.OK)
                        {
                            if (error != Errno.EISDIR)
                            {
                                errors.Enqueue($"create {name}: {error}");
                            }
                            break;
                        }
                        if (open.Write(random.Next(1 << 20), payload, out int written) != Errno.OK || written != payload.Length)
                        {
                            errors.Enqueue($"write {name}");
                        }
                        open.Release();
                        break;
                    case 2:
                        var rename = fs.Rename(shared, Fs.N(name), shared, Fs.N($"f{random.Next(40)}"), 0);
                        if (rename is not (Errno.OK or Errno.ENOENT or Errno.EISDIR or Errno.ENOTDIR or Errno.ENOTEMPTY))
                        {
                            errors.Enqueue($"rename: {rename}");
                        }
                        break;
                    case 3:
                        var unlink = fs.Unlink(shared, Fs.N(name));
                        if (unlink is not (Errno.OK or Errno.ENOENT or Errno.EISDIR))
                        {
                            errors.Enqueue($"unlink: {unlink}");
                        }
                        break;
                    default:
                        fs.MkDir(shared, Fs.N("d" + name), 0x1ED, Fs.Root, out _);
                        fs.RmDir(shared, Fs.N("d" + name));
                        var sink = new CollectingSink();
                        fs.OpenDir(shared, out IOpenDirectory listing); // the directory lives through the test
                        listing.ReadDir(0, sink);
                        listing.Release();
                        if (sink.Entries.Select(e => e.Name).Distinct().Count() != sink.Entries.Count)
                        {
                            errors.Enqueue("duplicate names in listing");
                        }
                        break;
                }
            }
        })).ToArray();
        Task.WaitAll(workers);

        Assert.That(errors, Is.Empty);
        var names = fs.List(shared).Where(n => n is not ("." or "..")).ToList();
        int subdirs = 0;
        foreach (var name in names)
        {
            Assert.That(fs.Lookup(shared, name, out var attr), Is.EqualTo(Errno.OK));
            Assert.That(attr.Nlink, Is.EqualTo((attr.Mode & LibC.S_IFMT) == LibC.S_IFDIR ? 2u : 1u), name);
            subdirs += (attr.Mode & LibC.S_IFMT) == LibC.S_IFDIR ? 1 : 0;
        }
        Assert.That(fs.Attr(shared).Nlink, Is.EqualTo(2u + (uint)subdirs));
        Assert.That(fs.NodeCount, Is.EqualTo(baselineNodes + 1 + names.Count), "no node outlives its names and references");

        foreach (var name in names)
        {
            if (fs.Unlink(shared, Fs.N(name)) == Errno.EISDIR)
            {
                fs.RmDir(shared, Fs.N(name));
            }
        }
        fs.RmDir(fs.RootIno, Fs.N("shared"));
        Assert.That(fs.NodeCount, Is.EqualTo(baselineNodes));
        Assert.That(fs.Usage.BytesUsed, Is.EqualTo(baselineBytes), "every page and overhead byte returned");
    }

    [Test]
    public void Parallel_writers_to_one_file_never_lose_or_tear_whole_pages()
    {
        using var fs = new MemoryFileSystem();
        var (ino, fh) = fs.Create(fs.RootIno, "f");
        Parallel.For(0, 8, worker =>
        {
            var page = Enumerable.Repeat((byte)(worker + 1), 4096).ToArray();
            for (int i = 0; i < 200; i++)
            {
                Assert.That(fh.Write(((i * 8) + worker) * 4096L, page, out _), Is.EqualTo(Errno.OK));
            }
        });
        Assert.That(fs.Attr(ino).Size, Is.EqualTo(1600UL * 4096));
        for (int index = 0; index < 1600; index++)
        {
            var data = fs.ReadAt(ino, fh, index * 4096L, 4096);
            Assert.That(data, Is.All.EqualTo((byte)((index % 8) + 1)));
        }
    }
}
