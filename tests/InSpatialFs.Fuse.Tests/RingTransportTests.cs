using System.Diagnostics;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Fuse.Transport;
using InSpatialFs.Interop;
using InSpatialFs.TestKit;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.Fuse.Tests;

/// <summary>
/// FUSE over io_uring on the real kernel: after INIT the server registers ring entries, the kernel moves the connection's
/// requests to them, and ordinary programs get the same answers as over /dev/fuse, with INTERRUPT still working.
/// </summary>
[NonParallelizable]
[Category("Mount")]
public sealed class RingTransportTests
{
    /// <summary>
    /// "/" with "hello" (read-only text), "sink" (takes writes, counts the bytes), "slow" (a READ that waits to be
    /// interrupted) and "f0".."f1999" (empty files that can be unlinked; the kernel then forgets their nodes).
    /// </summary>
    private sealed class RingFileSystem : FuseFileSystemBase
    {
        private const ulong Hello = 2, Sink = 3, Slow = 4, FirstRemovable = 100;
        public const int Removables = 2000;
        public static readonly byte[] Content = "hello over the ring\n"u8.ToArray();

        public readonly ManualResetEventSlim SlowReadStarted = new();
        public volatile bool SlowReadInterrupted;
        public long BytesWritten;
        private readonly bool[] _removed = new bool[Removables];

        /// <summary>Nodes of removable files the kernel forgot.</summary>
        public int ForgottenRemovables;

        private static int RemovableIndex(ulong parent, ReadOnlySpan<byte> name) =>
            parent == FuseConstants.RootId && name.Length > 1 && name[0] == (byte)'f' &&
            int.TryParse(name[1..], System.Globalization.NumberStyles.None, null, out int i) && i < Removables ? i : -1;

        private static FuseAttr AttrOf(ulong node) => node switch
        {
            FuseConstants.RootId => new FuseAttr { Ino = 1, Mode = LibC.S_IFDIR | 0x1ED, Nlink = 2 },
            Hello => new FuseAttr { Ino = Hello, Mode = LibC.S_IFREG | 0x1A4, Nlink = 1, Size = (ulong)Content.Length },
            _ => new FuseAttr { Ino = node, Mode = LibC.S_IFREG | 0x1B6, Nlink = 1, Size = 0 },
        };

        public override Errno Lookup(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, out FuseEntryOut entry)
        {
            entry = default;
            int removable = RemovableIndex(parent, name);
            ulong node = removable >= 0 ? (Volatile.Read(ref _removed[removable]) ? 0 : FirstRemovable + (ulong)removable)
                : parent != FuseConstants.RootId ? 0
                : name.SequenceEqual("hello"u8) ? Hello : name.SequenceEqual("sink"u8) ? Sink : name.SequenceEqual("slow"u8) ? Slow : 0;
            if (node == 0)
            {
                return Errno.ENOENT;
            }

            entry = new FuseEntryOut { NodeId = node, Generation = 1, Attr = AttrOf(node) }; // no timeouts: every stat asks
            return Errno.OK;
        }

        public override Errno GetAttr(FuseRequest request, ulong nodeId, ulong? fh, out FuseAttrOut attr)
        {
            attr = new FuseAttrOut { Attr = AttrOf(nodeId) };
            return nodeId is >= FuseConstants.RootId and <= Slow or >= FirstRemovable and < FirstRemovable + Removables ? Errno.OK : Errno.ENOENT;
        }

        public override Errno Unlink(FuseRequest request, ulong parent, ReadOnlySpan<byte> name)
        {
            int removable = RemovableIndex(parent, name);
            if (removable < 0)
            {
                return Errno.EACCES;
            }

            Volatile.Write(ref _removed[removable], true);
            return Errno.OK;
        }

        public override void Forget(ulong nodeId, ulong lookupCount)
        {
            if (nodeId is >= FirstRemovable and < FirstRemovable + Removables)
            {
                Interlocked.Increment(ref ForgottenRemovables);
            }
        }

        public override Errno SetAttr(FuseRequest request, ulong nodeId, in FuseSetattrIn change, out FuseAttrOut attr)
        {
            attr = new FuseAttrOut { Attr = AttrOf(nodeId) }; // O_TRUNC of the sink
            return Errno.OK;
        }

        public override Errno Open(FuseRequest request, ulong nodeId, int flags, uint openFlags, out FuseOpenOut open)
        {
            open = new FuseOpenOut { Fh = nodeId, OpenFlags = FopenFlags.DirectIo }; // every read and write comes to us
            return Errno.OK;
        }

        public override Errno Read(FuseRequest request, ulong nodeId, ulong fh, long offset, Span<byte> buffer, out int bytesRead)
        {
            bytesRead = 0;
            if (nodeId == Slow)
            {
                SlowReadStarted.Set();
                SlowReadInterrupted = request.WaitForInterrupt(TimeSpan.FromSeconds(20));
                return Errno.EINTR;
            }

            ReadOnlySpan<byte> rest = offset < Content.Length ? Content.AsSpan((int)offset) : default;
            bytesRead = Math.Min(rest.Length, buffer.Length);
            rest[..bytesRead].CopyTo(buffer);
            return Errno.OK;
        }

        public override Errno Write(FuseRequest request, ulong nodeId, ulong fh, long offset, ReadOnlySpan<byte> data, uint writeFlags, out int bytesWritten)
        {
            Interlocked.Add(ref BytesWritten, data.Length);
            bytesWritten = data.Length;
            return nodeId == Sink ? Errno.OK : Errno.EROFS;
        }

        public override Errno OpenDir(FuseRequest request, ulong nodeId, int flags, out FuseOpenOut open)
        {
            open = default;
            return Errno.OK;
        }
    }

    private FuseIoUringSwitch? _switch;

    [SetUp]
    public void TurnRingsOn()
    {
        TestMount.RequireRootAndFuse();
        _switch = FuseIoUringSwitch.Set(on: true);
    }

    [TearDown]
    public void PutSwitchBack() => _switch?.Dispose();

    private static TestMount StartOnRings(RingFileSystem fs)
    {
        var mount = TestMount.Start(fs, serverOptions: new ProtocolServerOptions { IoUring = true });
        // The rings register after INIT, on their own threads; the kernel moves requests to them once every queue has
        // an entry. Until then requests still come on /dev/fuse.
        var clock = Stopwatch.StartNew();
        while (mount.Server.RingRequests == 0 && clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            Assert.That(TestMount.Run("stat", Path.Combine(mount.Path, "hello")).ExitCode, Is.Zero);
        }

        Assert.That(mount.Server.RingRequests, Is.Positive, "requests reach the ring entries");
        return mount;
    }

    [Test]
    public void Programs_are_answered_through_the_ring_entries_once_every_queue_has_one()
    {
        var fs = new RingFileSystem();
        using TestMount mount = StartOnRings(fs);
        int queues = FuseRingChannel.PossibleCpus();
        int entries = queues * mount.Server.Options.RingThreadsPerQueue;
        SpinWait.SpinUntil(() => mount.Server.RingEntries == entries, TimeSpan.FromSeconds(5)); // the later rounds may still be starting
        Assert.That(mount.Server.RingEntries, Is.EqualTo(entries));
        Assert.That(mount.Server.RingQueues, Is.EqualTo(queues));
        Assert.That(mount.Server.RingUnavailable, Is.Null);

        long before = mount.Server.RingRequests;
        string hello = Path.Combine(mount.Path, "hello");
        for (int i = 0; i < 20; i++)
        {
            (int exit, string text, string err) = TestMount.Run("cat", hello);
            Assert.That(exit, Is.Zero, err);
            Assert.That(text, Is.EqualTo("hello over the ring\n"));
        }

        // 20 × (LOOKUP or GETATTR, OPEN, READ ×2, FLUSH, RELEASE): all of them on the rings, none left on /dev/fuse.
        long onRings = mount.Server.RingRequests - before;
        Assert.That(onRings, Is.GreaterThanOrEqualTo(20 * 4), "requests served by the ring entries");
        long[] counts = mount.Server.RequestCounts();
        Assert.That(counts[(int)FuseOpcode.Read], Is.GreaterThanOrEqualTo(40));
    }

    [Test]
    public void Write_payloads_of_a_mebibyte_arrive_whole_through_the_ring_payload()
    {
        var fs = new RingFileSystem();
        using TestMount mount = StartOnRings(fs);
        (int exit, _, string err) = TestMount.Run("dd", "if=/dev/urandom", "of=" + Path.Combine(mount.Path, "sink"), "bs=1M", "count=8", "conv=notrunc");
        Assert.That(exit, Is.Zero, err);
        Assert.That(Interlocked.Read(ref fs.BytesWritten), Is.EqualTo(8L << 20));
    }

    [Test]
    public void Killing_a_caller_interrupts_its_request_on_the_ring_and_the_entry_serves_again()
    {
        var fs = new RingFileSystem();
        using TestMount mount = StartOnRings(fs);
        using var cat = Process.Start(new ProcessStartInfo("cat", Path.Combine(mount.Path, "slow")) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        Assert.That(fs.SlowReadStarted.Wait(TimeSpan.FromSeconds(10)), Is.True, "the slow READ reached the file system");

        var clock = Stopwatch.StartNew();
        cat.Kill(); // SIGKILL: the kernel sends INTERRUPT (on /dev/fuse) for the request held by a ring entry
        Assert.That(cat.WaitForExit(10_000), Is.True, "the killed reader exits");
        SpinWait.SpinUntil(() => fs.SlowReadInterrupted, TimeSpan.FromSeconds(10));
        Assert.That(fs.SlowReadInterrupted, Is.True, "the handler saw the interrupt");
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)), "interrupted, not timed out");

        // Every entry is back: more parallel callers than entries all get their answer.
        Parallel.For(0, 4 * mount.Server.RingEntries, _ => Assert.That(TestMount.Run("cat", Path.Combine(mount.Path, "hello")).ExitCode, Is.Zero));
    }

    [Test]
    public void Forgets_of_an_unlink_loop_reach_the_file_system_in_batches_once_the_rings_serve()
    {
        var fs = new RingFileSystem();
        using TestMount mount = StartOnRings(fs);
        long[] before = mount.Server.RequestCounts();

        // One rm of 2,000 names: a LOOKUP and an UNLINK each (on the rings), then the kernel forgets the node (on
        // /dev/fuse). Read as they come, that is a FORGET frame and a reader woken per file.
        string[] names = Enumerable.Range(0, RingFileSystem.Removables).Select(i => Path.Combine(mount.Path, "f" + i)).ToArray();
        (int exit, _, string err) = TestMount.Run("rm", ["--", .. names]);
        Assert.That(exit, Is.Zero, err);
        SpinWait.SpinUntil(() => Volatile.Read(ref fs.ForgottenRemovables) == RingFileSystem.Removables, TimeSpan.FromSeconds(10));
        Assert.That(Volatile.Read(ref fs.ForgottenRemovables), Is.EqualTo(RingFileSystem.Removables), "every unlinked node is forgotten");

        long[] after = mount.Server.RequestCounts();
        long frames = after[(int)FuseOpcode.Forget] - before[(int)FuseOpcode.Forget] +
                      after[(int)FuseOpcode.BatchForget] - before[(int)FuseOpcode.BatchForget];
        Assert.That(after[(int)FuseOpcode.Unlink] - before[(int)FuseOpcode.Unlink], Is.EqualTo(RingFileSystem.Removables));
        Assert.That(frames, Is.LessThan(RingFileSystem.Removables / 4), "forget frames for 2,000 forgotten nodes");
    }

    [Test]
    public void Without_the_kernel_switch_the_connection_stays_on_dev_fuse_and_says_why()
    {
        _switch!.Dispose();
        _switch = FuseIoUringSwitch.Set(on: false);
        var fs = new RingFileSystem();
        using var mount = TestMount.Start(fs, serverOptions: new ProtocolServerOptions { IoUring = true });
        (int exit, string text, _) = TestMount.Run("cat", Path.Combine(mount.Path, "hello"));
        Assert.That(exit, Is.Zero);
        Assert.That(text, Is.EqualTo("hello over the ring\n"));
        Assert.That(mount.Server.RingEntries, Is.Zero);
        Assert.That(mount.Server.RingRequests, Is.Zero);
        Assert.That(mount.Server.RingUnavailable, Does.Contain("FUSE_OVER_IO_URING"));
    }
}
