using System.Diagnostics;
using System.Text;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using static InSpatialFs.Storage.Tests.Host.HostSandbox;

namespace InSpatialFs.Storage.Tests.Host;

[TestFixture]
[NonParallelizable]
public sealed class HostScaleAndRaceTests
{
    [Test]
    [Category("Mount")]
    public void Walking_100000_files_without_forgets_keeps_the_descriptor_count_bounded()
    {
        const int Dirs = 100, PerDir = 1000, Cache = 512;
        using var box = new HostSandbox(cache: Cache);
        for (int d = 0; d < Dirs; d++)
        {
            string dir = box.Src($"d{d:D3}");
            Directory.CreateDirectory(dir);
            for (int f = 0; f < PerDir; f++) File.Create(Path.Combine(dir, $"f{f:D4}")).Dispose();
        }
        int baseline = OpenDescriptorCount();
        int maxSeen = baseline;
        long files = 0;
        ulong root = box.Fs.RootIno;
        Assert.That(box.Fs.OpenDir(root, out IOpenDirectory rootFh), Is.EqualTo(Errno.OK));
        var top = new ListingSink();
        rootFh.ReadDir(0, top);
        rootFh.Release();
        foreach (var dirEntry in top.Entries.Where(e => e.Name.StartsWith('d')))
        {
            Assert.That(box.Fs.Lookup(root, B(dirEntry.Name), out FuseAttr dir), Is.EqualTo(Errno.OK));
            Assert.That(box.Fs.Retain(dir.Ino), Is.True); // held, as the kernel would through the proxy
            Assert.That(box.Fs.OpenDir(dir.Ino, out IOpenDirectory fh), Is.EqualTo(Errno.OK));
            var listing = new ListingSink();
            fh.ReadDir(0, listing);
            fh.Release();
            foreach (var e in listing.Entries.Where(e => e.Name.StartsWith('f')))
            {
                Assert.That(box.Fs.Lookup(dir.Ino, B(e.Name), out FuseAttr fa), Is.EqualTo(Errno.OK));
                Assert.That(box.Fs.Retain(fa.Ino), Is.True);
                Assert.That(box.Fs.GetAttr(fa.Ino, out _), Is.EqualTo(Errno.OK));
                files++;
            }
            maxSeen = Math.Max(maxSeen, OpenDescriptorCount());
        }
        Assert.That(files, Is.EqualTo(Dirs * PerDir));
        Assert.That(box.Fs.NodeCount, Is.EqualTo(Dirs * PerDir + Dirs + 1), "every node is still referenced");
        Assert.That(box.Fs.CachedDescriptorCount, Is.LessThanOrEqualTo(Cache));
        Assert.That(maxSeen - baseline, Is.LessThanOrEqualTo(Cache + 16), "descriptors grow with the cache, not with the nodes");
        // Every node is still usable after its descriptor was evicted: the early ones reopen from their handles.
        Assert.That(box.Fs.Lookup(root, B("d000"), out FuseAttr d0), Is.EqualTo(Errno.OK));
        Assert.That(box.Fs.Lookup(d0.Ino, B("f0000"), out FuseAttr f0), Is.EqualTo(Errno.OK));
        for (int d = 1; d < 3; d++) box.Walk($"d{d:D3}/f0999"); // push d000's entries out of the cache again
        for (ulong id = f0.Ino; id < f0.Ino + 2 * Cache; id++)
            Assert.That(box.Fs.GetAttr(id, out _), Is.EqualTo(Errno.OK), $"node {id} after eviction");
        Assert.That(OpenDescriptorCount() - baseline, Is.LessThanOrEqualTo(Cache + 16));
    }

    [Test]
    public void Metadata_requests_racing_the_release_of_the_open_file_they_borrow_from_never_fail()
    {
        using var box = new HostSandbox();
        File.WriteAllText(box.Src("f"), "");
        ulong f = box.Lookup(box.Fs.RootIno, "f");
        // Descriptor churn: a closed descriptor's number is reused at once, so a borrow that used a released open
        // file's number would read this 12,345-byte file instead.
        string other = box.Src("other");
        File.WriteAllBytes(other, new byte[12345]);
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var deadline = Stopwatch.StartNew();
        bool Running() => deadline.ElapsedMilliseconds < 1500;
        long opens = 0, stats = 0;
        var writer = new Thread(() =>
        {
            while (Running())
            {
                // Each open lends its descriptor to the node until its release.
                if (box.Fs.Open(f, LibC.O_WRONLY, User, out IOpenFile w) != Errno.OK) { failures.Enqueue("open"); return; }
                w.Write(0, "x"u8, out _);
                w.Release();
                Interlocked.Increment(ref opens);
            }
        });
        var churn = new Thread(() =>
        {
            while (Running())
            {
                using var s = File.OpenRead(other);
            }
        });
        writer.Start();
        churn.Start();
        var buffer = new byte[64];
        while (Running())
        {
            Errno e = box.Fs.GetAttr(f, out FuseAttr a);
            if (e != Errno.OK) failures.Enqueue($"getattr {e}");
            else if (a.Size > 1) failures.Enqueue($"getattr read another file: size {a.Size}");
            e = box.Fs.GetXattr(f, B("user.none"), buffer, out _);
            if (e != Errno.ENODATA) failures.Enqueue($"getxattr {e}");
            stats++;
        }
        writer.Join();
        churn.Join();
        TestContext.Out.WriteLine($"{opens} open/release cycles against {stats} getattr+getxattr pairs");
        Assert.That(failures, Is.Empty);
        Assert.That(opens, Is.GreaterThan(100), "the release raced the borrows many times");
        Assert.That(stats, Is.GreaterThan(100));
    }

    [Test]
    public void Lookup_and_open_racing_a_dir_symlink_swap_never_yield_an_outside_file()
    {
        using var box = new HostSandbox();
        Directory.CreateDirectory(box.Src("swap"));
        File.WriteAllText(box.Src("swap/secret"), "INSIDE");
        File.CreateSymbolicLink(box.Src("alt"), box.Outside);
        string racer = FindNativeRacer();
        using var stop = new CancellationTokenSource();
        Process? native = null;
        Thread? swapper = null;
        long swaps = 0;
        if (racer.Length > 0)
        {
            native = Process.Start(new ProcessStartInfo(racer, [box.Src("swap"), box.Src("alt"), "3"]) { RedirectStandardOutput = true })!;
        }
        else
        {
            swapper = new Thread(() =>
            {
                while (!stop.IsCancellationRequested)
                {
                    if (Exchange(box.Src("swap"), box.Src("alt")) == 0) Interlocked.Increment(ref swaps);
                }
            });
            swapper.Start();
        }
        int insideReads = 0, links = 0, attempts = 0;
        var watch = Stopwatch.StartNew();
        var buf = new byte[64];
        while (watch.Elapsed < TimeSpan.FromSeconds(2.5))
        {
            attempts++;
            if (box.Fs.Lookup(box.Fs.RootIno, B("swap"), out FuseAttr sw) != Errno.OK) continue;
            if ((sw.Mode & LibC.S_IFMT) == LibC.S_IFLNK)
            {
                links++;
                Assert.That(box.Fs.Lookup(sw.Ino, B("secret"), out _), Is.Not.EqualTo(Errno.OK));
                Assert.That(box.Fs.Open(sw.Ino, LibC.O_RDONLY, User, out _), Is.Not.EqualTo(Errno.OK));
                continue;
            }
            if (box.Fs.Lookup(sw.Ino, B("secret"), out FuseAttr secret) == Errno.OK)
            {
                if (box.Fs.Open(secret.Ino, LibC.O_RDONLY, User, out IOpenFile r) == Errno.OK)
                {
                    Assert.That(r.Read(0, buf, out int n), Is.EqualTo(Errno.OK));
                    Assert.That(Encoding.UTF8.GetString(buf, 0, n), Is.EqualTo("INSIDE"));
                    insideReads++;
                    r.Release();
                }
            }
        }
        stop.Cancel();
        swapper?.Join();
        if (native != null)
        {
            string output = native.StandardOutput.ReadToEnd();
            native.WaitForExit();
            Assert.That(native.ExitCode, Is.Zero, output);
            Assert.That(output, Does.Match(@"swaps=[1-9]"));
        }
        else
        {
            Assert.That(Interlocked.Read(ref swaps), Is.GreaterThan(0));
        }
        Assert.That(insideReads, Is.GreaterThan(0), "the race really alternated");
        Assert.That(links, Is.GreaterThan(0), "the race really alternated");
        Assert.That(File.ReadAllText(Path.Combine(box.Outside, "secret")), Is.EqualTo("OUTSIDE-SECRET"));
        TestContext.Out.WriteLine($"attempts={attempts} insideReads={insideReads} links={links} racer={(racer.Length > 0 ? racer : "managed")}");
    }

    private static unsafe int Exchange(string a, string b)
    {
        byte[] az = Encoding.UTF8.GetBytes(a + "\0");
        byte[] bz = Encoding.UTF8.GetBytes(b + "\0");
        fixed (byte* pa = az)
        fixed (byte* pb = bz)
        {
            return LibC.renameat2(LibC.AT_FDCWD, pa, LibC.AT_FDCWD, pb, (uint)LibC.RENAME_EXCHANGE);
        }
    }

    /// <summary>The C racer built by `make native`, when present (the managed swapper stands in otherwise).</summary>
    private static string FindNativeRacer()
    {
        for (var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); dir != null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "native", "build", "symlink-racer");
            if (File.Exists(candidate)) return candidate;
        }
        return "";
    }
}
