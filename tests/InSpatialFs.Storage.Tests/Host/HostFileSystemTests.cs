using System.Text;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using static InSpatialFs.Storage.Tests.Host.HostSandbox;

namespace InSpatialFs.Storage.Tests.Host;

[TestFixture]
public sealed class HostFileSystemTests
{
    private static readonly string[] ExpectedListing = [".", "..", "fifo", "reg", "ln"];
    private static readonly string[] OnlyB = ["b"];
    private HostSandbox _box = null!;

    [SetUp]
    public void SetUp() => _box = new HostSandbox();

    [TearDown]
    public void TearDown() => _box.Dispose();

    [Test]
    public void Lookup_gives_host_attributes_under_the_backends_own_node_id()
    {
        File.WriteAllText(_box.Src("a.txt"), "hello");
        Assert.That(_box.Fs.Lookup(_box.Fs.RootIno, B("a.txt"), out FuseAttr a), Is.EqualTo(Errno.OK));
        Assert.Multiple(() =>
        {
            Assert.That(a.Ino, Is.Not.EqualTo(_box.Fs.RootIno));
            Assert.That(a.Size, Is.EqualTo(5UL));
            Assert.That(a.Mode & LibC.S_IFMT, Is.EqualTo(LibC.S_IFREG));
            Assert.That(_box.Fs.Lookup(_box.Fs.RootIno, B("a.txt"), out FuseAttr again), Is.EqualTo(Errno.OK));
            Assert.That(again.Ino, Is.EqualTo(a.Ino), "same (dev, ino) gives the same node");
            Assert.That(_box.Fs.Lookup(_box.Fs.RootIno, B("missing"), out _), Is.EqualTo(Errno.ENOENT));
        });
    }

    [Test]
    public void A_cold_lookup_takes_its_handle_by_name_and_keeps_no_descriptor_with_the_answers_of_a_warm_one()
    {
        for (int i = 0; i < 40; i++) File.WriteAllText(_box.Src($"f{i}"), new string('x', i));
        Directory.CreateDirectory(_box.Src("d"));
        File.CreateSymbolicLink(_box.Src("out"), "/etc");
        int cached = _box.Fs.CachedDescriptorCount;
        int open = HostSandbox.OpenDescriptorCount();

        // A cold walk: every name is new to the backend.
        var first = new ulong[40];
        for (int i = 0; i < 40; i++)
        {
            Assert.That(_box.Fs.Lookup(_box.Fs.RootIno, B($"f{i}"), out FuseAttr a), Is.EqualTo(Errno.OK));
            Assert.That(a.Size, Is.EqualTo((ulong)i));
            first[i] = a.Ino;
        }

        Assert.Multiple(() =>
        {
            Assert.That(_box.Fs.CachedDescriptorCount, Is.EqualTo(cached), "no O_PATH descriptor opened and cached per new name");
            Assert.That(HostSandbox.OpenDescriptorCount(), Is.EqualTo(open), "nor any other descriptor");
            Assert.That(_box.Fs.Lookup(_box.Fs.RootIno, B("missing"), out _), Is.EqualTo(Errno.ENOENT));
            Assert.That(_box.Fs.Lookup(_box.Fs.RootIno, B("d"), out FuseAttr dir), Is.EqualTo(Errno.OK));
            Assert.That(dir.Mode & LibC.S_IFMT, Is.EqualTo(LibC.S_IFDIR));
            Assert.That(_box.Fs.Lookup(_box.Fs.RootIno, B("out"), out FuseAttr link), Is.EqualTo(Errno.OK));
            Assert.That(link.Mode & LibC.S_IFMT, Is.EqualTo(LibC.S_IFLNK), "a symlink is the link itself, never followed out of the tree");
            var target = new byte[64];
            Assert.That(_box.Fs.ReadLink(link.Ino, target, out int length), Is.EqualTo(Errno.OK));
            Assert.That(Encoding.UTF8.GetString(target, 0, length), Is.EqualTo("/etc"));
        });

        // A warm walk finds the same nodes, and each handle opens its own file.
        for (int i = 0; i < 40; i++)
        {
            Assert.That(_box.Fs.Lookup(_box.Fs.RootIno, B($"f{i}"), out FuseAttr a), Is.EqualTo(Errno.OK));
            Assert.That(a.Ino, Is.EqualTo(first[i]), $"f{i} keeps its node");
            Assert.That(_box.ReadAll(a.Ino), Is.EqualTo(new string('x', i)));
        }
    }

    /// <summary>The statx of a cold lookup of "a" sees one file; the handle is then taken of the other, moved there.</summary>
    private bool SwapAAndBBetweenStatAndHandle(out FuseAttr raced)
    {
        File.WriteAllText(_box.Src("a"), "A");
        File.WriteAllText(_box.Src("b"), "BB");
        bool swapped = false;
        _box.Fs.BetweenStatAndHandle = () =>
        {
            if (swapped) return;
            swapped = true;
            File.Move(_box.Src("a"), _box.Src("tmp"));
            File.Move(_box.Src("b"), _box.Src("a"));
            File.Move(_box.Src("tmp"), _box.Src("b"));
        };
        Assert.That(_box.Fs.Lookup(_box.Fs.RootIno, B("a"), out raced), Is.EqualTo(Errno.OK));
        _box.Fs.BetweenStatAndHandle = null;
        return swapped;
    }

    [Test]
    public void On_ext4_or_tmpfs_a_name_replaced_while_a_cold_lookup_takes_its_handle_is_seen_at_once_and_looked_up_afresh()
    {
        Assert.That(_box.Fs.DecodesRootMountHandles, Is.True, "the sandbox is on ext4 or tmpfs, whose handles hold the inode number");
        Assert.That(SwapAAndBBetweenStatAndHandle(out FuseAttr looked), Is.True, "the name was replaced between the two calls");
        Assert.Multiple(() =>
        {
            Assert.That(looked.Size, Is.EqualTo(2UL), "the lookup answers the file the name holds now (BB), with its own attributes");
            Assert.That(_box.ReadAll(looked.Ino), Is.EqualTo("BB"));
            Assert.That(_box.ReadAll(_box.Lookup(_box.Fs.RootIno, "b")), Is.EqualTo("A"));
        });
    }

    [Test]
    public void Elsewhere_a_name_replaced_while_a_cold_lookup_takes_its_handle_leaves_a_stale_node_and_never_opens_the_other_file()
    {
        _box.Fs.StopDecodingRootMountHandles(); // as on a filesystem whose handle layout is not known (XFS, btrfs)
        Assert.That(SwapAAndBBetweenStatAndHandle(out FuseAttr raced), Is.True, "the name was replaced between the two calls");
        Assert.That(raced.Size, Is.EqualTo(1UL), "the attributes are those the statx saw: the file first named a");
        Assert.That(_box.Fs.Retain(raced.Ino), Is.True);

        Assert.Multiple(() =>
        {
            // The handle names the other file (BB): nothing may reach it through this node.
            Assert.That(_box.Fs.Open(raced.Ino, LibC.O_WRONLY | LibC.O_TRUNC, User, out _), Is.EqualTo(Errno.ESTALE), "never truncates the other file");
            Assert.That(_box.Fs.GetAttr(raced.Ino, out _), Is.EqualTo(Errno.ESTALE));
            Assert.That(_box.Fs.IdentityOf(raced.Ino), Is.EqualTo(default(InodeIdentity)), "no identity mixing one inode's number and the other's handle");
            Assert.That(File.ReadAllText(_box.Src("a")), Is.EqualTo("BB"), "the other file is untouched");
        });

        // Each inode gets a node of its own at its new name, with a handle proven by its first descriptor.
        ulong a = _box.Lookup(_box.Fs.RootIno, "a");
        ulong b = _box.Lookup(_box.Fs.RootIno, "b");
        Assert.Multiple(() =>
        {
            Assert.That(new[] { a, b }, Has.None.EqualTo(raced.Ino));
            Assert.That(_box.ReadAll(a), Is.EqualTo("BB"));
            Assert.That(_box.ReadAll(b), Is.EqualTo("A"));
            Assert.That(_box.Fs.IdentityOf(b).IsNone, Is.False);
        });

        // Positive control: without the swap the handle is proven by its first descriptor and the node serves.
        File.WriteAllText(_box.Src("c"), "CCC");
        ulong c = _box.Lookup(_box.Fs.RootIno, "c");
        Assert.That(_box.Fs.GetAttr(c, out FuseAttr ca), Is.EqualTo(Errno.OK));
        Assert.That(ca.Size, Is.EqualTo(3UL));
    }

    [Test]
    [Category("Mount")]
    public void Create_write_read_and_release_round_trip_with_caller_ownership()
    {
        Assert.That(_box.Fs.Create(_box.Fs.RootIno, B("new.txt"), LibC.O_RDWR, 0x1A4, User, out FuseAttr a, out IOpenFile r, out _), Is.EqualTo(Errno.OK));
        Assert.That(_box.Fs.Retain(a.Ino), Is.True); // held past its release, as the proxy holds what the kernel has
        Assert.That(r.Write(0, B("payload"), out int w), Is.EqualTo(Errno.OK));
        Assert.That(w, Is.EqualTo(7));
        var buf = new byte[16];
        Assert.That(r.Read(3, buf, out int n), Is.EqualTo(Errno.OK));
        Assert.That(Encoding.UTF8.GetString(buf, 0, n), Is.EqualTo("load"));
        Assert.That(r.Release(), Is.EqualTo(Errno.OK));
        Assert.That(_box.Fs.GetAttr(a.Ino, out FuseAttr st), Is.EqualTo(Errno.OK));
        Assert.Multiple(() =>
        {
            Assert.That(st.Uid, Is.EqualTo(1000u));
            Assert.That(st.Gid, Is.EqualTo(1000u));
            Assert.That(st.Mode & 0xFFF, Is.EqualTo(0x1A4u), "exact mode despite the daemon's umask");
            Assert.That(File.ReadAllText(_box.Src("new.txt")), Is.EqualTo("payload"));
            Assert.That(_box.Fs.Create(_box.Fs.RootIno, B("new.txt"), LibC.O_RDWR | LibC.O_EXCL, 0x1A4, User, out _, out _, out _), Is.EqualTo(Errno.EEXIST));
        });
        // Without O_EXCL an existing name is opened (a racing creator was first), untouched and not re-owned.
        Assert.That(_box.Fs.Create(_box.Fs.RootIno, B("new.txt"), LibC.O_RDWR, 0x1A4, new Caller(2000, 2000, 1), out FuseAttr again, out IOpenFile r2, out _), Is.EqualTo(Errno.OK));
        Assert.Multiple(() =>
        {
            Assert.That(again.Ino, Is.EqualTo(a.Ino));
            Assert.That(again.Uid, Is.EqualTo(1000u));
            Assert.That(File.ReadAllText(_box.Src("new.txt")), Is.EqualTo("payload"));
        });
        Assert.That(r2.Release(), Is.EqualTo(Errno.OK));
    }

    [Test]
    [Category("Mount")]
    public void Setuid_bit_survives_the_chown_to_the_caller()
    {
        Assert.That(_box.Fs.Create(_box.Fs.RootIno, B("suid"), LibC.O_RDWR, 0x9ED, User, out FuseAttr a, out IOpenFile r, out _), Is.EqualTo(Errno.OK));
        Assert.That(_box.Fs.Retain(a.Ino), Is.True);
        r.Release();
        Assert.That(_box.Fs.GetAttr(a.Ino, out FuseAttr st), Is.EqualTo(Errno.OK));
        Assert.That(st.Mode & 0xFFF, Is.EqualTo(0x9EDu));
    }

    [Test]
    public void Open_with_trunc_truncates_and_append_appends()
    {
        File.WriteAllText(_box.Src("f"), "0123456789");
        ulong ino = _box.Lookup(_box.Fs.RootIno, "f");
        Assert.That(_box.Fs.Open(ino, LibC.O_WRONLY | LibC.O_TRUNC, User, out IOpenFile r), Is.EqualTo(Errno.OK));
        r.Release();
        Assert.That(new FileInfo(_box.Src("f")).Length, Is.Zero);
    }

    [Test]
    [Category("Mount")]
    public void Mkdir_mknod_symlink_readlink_and_readdir()
    {
        ulong root = _box.Fs.RootIno;
        Assert.That(_box.Fs.MkDir(root, B("d"), 0x1ED, User, out FuseAttr d), Is.EqualTo(Errno.OK));
        Assert.That(d.Mode & LibC.S_IFMT, Is.EqualTo(LibC.S_IFDIR));
        Assert.That(d.Uid, Is.EqualTo(1000u));
        Assert.That(_box.Fs.MkNod(d.Ino, B("fifo"), LibC.S_IFIFO | 0x180, 0, User, out FuseAttr f), Is.EqualTo(Errno.OK));
        Assert.That(f.Mode & LibC.S_IFMT, Is.EqualTo(LibC.S_IFIFO));
        Assert.That(_box.Fs.MkNod(d.Ino, B("reg"), LibC.S_IFREG | 0x180, 0, User, out FuseAttr reg), Is.EqualTo(Errno.OK));
        Assert.That(reg.Uid, Is.EqualTo(1000u));
        Assert.That(_box.Fs.Symlink(d.Ino, B("ln"), B("../../outside/secret"), User, out FuseAttr l), Is.EqualTo(Errno.OK));
        Assert.That(l.Uid, Is.EqualTo(1000u));
        var buf = new byte[256];
        Assert.That(_box.Fs.ReadLink(l.Ino, buf, out int n), Is.EqualTo(Errno.OK));
        Assert.That(Encoding.UTF8.GetString(buf, 0, n), Is.EqualTo("../../outside/secret"), "the target is stored verbatim");

        Assert.That(_box.Fs.OpenDir(d.Ino, out IOpenDirectory fh), Is.EqualTo(Errno.OK));
        var sink = new ListingSink();
        Assert.That(fh.ReadDir(0, sink), Is.EqualTo(Errno.OK));
        Assert.That(sink.Entries.Select(e => e.Name), Is.EquivalentTo(ExpectedListing));
        Assert.That(sink.Entries.Single(e => e.Name == "ln").Mode, Is.EqualTo(LibC.S_IFLNK));
        Assert.That(sink.Entries.Single(e => e.Name == "fifo").Ino, Is.EqualTo(f.Ino), "known nodes carry their id");
        Assert.That(fh.Release(), Is.EqualTo(Errno.OK));
    }

    [Test]
    public void Readdir_cookies_resume_where_the_sink_stopped_even_after_creates()
    {
        for (int i = 0; i < 10; i++) File.WriteAllText(_box.Src($"f{i}"), "");
        ulong root = _box.Fs.RootIno;
        Assert.That(_box.Fs.OpenDir(root, out IOpenDirectory fh), Is.EqualTo(Errno.OK));
        var first = new ListingSink(5);
        fh.ReadDir(0, first);
        File.WriteAllText(_box.Src("late"), "");
        var rest = new ListingSink();
        fh.ReadDir(first.Entries[^1].Next, rest);
        var names = first.Entries.Concat(rest.Entries).Select(e => e.Name).ToList();
        Assert.That(names, Has.Count.EqualTo(12));
        Assert.That(names, Is.Unique);
        fh.Release();
    }

    [TestCase(4 * 1024 * 1024, TestName = "Readdir_in_small_replies_hands_out_every_entry_once_and_a_seek_back_repeats_the_tail")]
    [TestCase(0, TestName = "Readdir_in_small_replies_past_the_read_ahead_budget_seeks_back_and_still_hands_out_every_entry_once")]
    public void Readdir_in_small_replies(long budget)
    {
        _box.Fs.ReadAheadBudget = budget;
        // Each small reply leaves entries getdents read ahead; the next READDIR at the cookie starts with them, and a
        // cookie from earlier (seekdir) drops them and reads from there again.
        for (int i = 0; i < 50; i++) File.WriteAllText(_box.Src($"f{i:D2}"), "");
        Assert.That(_box.Fs.OpenDir(_box.Fs.RootIno, out IOpenDirectory fh), Is.EqualTo(Errno.OK));
        var all = new List<(string Name, ulong Ino, uint Mode, long Next)>();
        long cookie = 0;
        for (int round = 0; round < 100; round++)
        {
            var part = new ListingSink(7);
            Assert.That(fh.ReadDir(cookie, part), Is.EqualTo(Errno.OK));
            if (part.Entries.Count == 0) break;
            all.AddRange(part.Entries);
            cookie = part.Entries[^1].Next;
        }

        Assert.That(all.Select(e => e.Name), Is.EquivalentTo(new[] { ".", ".." }.Concat(Enumerable.Range(0, 50).Select(i => $"f{i:D2}"))));
        Assert.That(_box.Fs.ReadAheadKept, Is.Zero, "the last reply took the rest: nothing is kept");
        var again = new ListingSink();
        Assert.That(fh.ReadDir(all[9].Next, again), Is.EqualTo(Errno.OK));
        Assert.That(again.Entries.Select(e => e.Name), Is.EqualTo(all.Skip(10).Select(e => e.Name)), "from the 10th entry's cookie: the rest, in order");
        var rewound = new ListingSink();
        Assert.That(fh.ReadDir(0, rewound), Is.EqualTo(Errno.OK));
        Assert.That(rewound.Entries, Has.Count.EqualTo(52), "offset 0 rewinds");
        var partial = new ListingSink(3);
        Assert.That(fh.ReadDir(0, partial), Is.EqualTo(Errno.OK));
        Assert.That(_box.Fs.ReadAheadKept, budget == 0 ? Is.Zero : Is.GreaterThan(0), "a reply that stopped early keeps the rest within the budget only");
        Assert.That(fh.Release(), Is.EqualTo(Errno.OK));
        Assert.That(_box.Fs.ReadAheadKept, Is.Zero, "releasing the directory gives its read-ahead back");
    }

    [TestCase(4 * 1024 * 1024, true, TestName = "Readdir_at_a_cookie_the_stream_passed_inside_the_kept_batch_resumes_there_without_reading_again")]
    [TestCase(0, false, TestName = "Readdir_at_a_cookie_the_stream_passed_with_no_read_ahead_kept_seeks_and_reads_again")]
    public void Readdir_at_a_passed_cookie(long budget, bool fromKeptBatch)
    {
        _box.Fs.ReadAheadBudget = budget;
        for (int i = 0; i < 50; i++) File.WriteAllText(_box.Src($"f{i:D2}"), "");
        Assert.That(_box.Fs.OpenDir(_box.Fs.RootIno, out IOpenDirectory probe), Is.EqualTo(Errno.OK));
        var order = new ListingSink();
        Assert.That(probe.ReadDir(0, order), Is.EqualTo(Errno.OK));
        probe.Release();
        List<string> names = [.. order.Entries.Select(e => e.Name)];

        // The proxy was handed 7 entries and its reply had room for 4: the kernel asks again from the 4th one's cookie,
        // which this stream has passed. A name deleted on the host meanwhile tells the two paths apart: the kept batch
        // is what getdents read (POSIX leaves entries changed after opendir unspecified), a seek reads the host again.
        Assert.That(_box.Fs.OpenDir(_box.Fs.RootIno, out IOpenDirectory fh), Is.EqualTo(Errno.OK));
        var handed = new ListingSink(7);
        Assert.That(fh.ReadDir(0, handed), Is.EqualTo(Errno.OK));
        Assert.That(handed.Entries.Select(e => e.Name), Is.EqualTo(names.Take(7)));
        string deleted = names[30];
        File.Delete(_box.Src(deleted));
        var rest = new ListingSink();
        Assert.That(fh.ReadDir(handed.Entries[3].Next, rest), Is.EqualTo(Errno.OK));
        IEnumerable<string> expected = names.Skip(4);
        Assert.That(rest.Entries.Select(e => e.Name), Is.EqualTo(fromKeptBatch ? expected : expected.Where(n => n != deleted)));
        Assert.That(fh.Release(), Is.EqualTo(Errno.OK));
        Assert.That(_box.Fs.ReadAheadKept, Is.Zero);
    }

    [Test]
    public void Unlink_rmdir_rename_and_rename_flags()
    {
        ulong root = _box.Fs.RootIno;
        File.WriteAllText(_box.Src("a"), "A");
        File.WriteAllText(_box.Src("b"), "B");
        Directory.CreateDirectory(_box.Src("dir"));
        Assert.That(_box.Fs.Rename(root, B("a"), root, B("b"), (uint)LibC.RENAME_NOREPLACE), Is.EqualTo(Errno.EEXIST));
        Assert.That(_box.Fs.Rename(root, B("a"), root, B("b"), (uint)LibC.RENAME_EXCHANGE), Is.EqualTo(Errno.OK));
        Assert.That(File.ReadAllText(_box.Src("a")), Is.EqualTo("B"));
        Assert.That(_box.Fs.Rename(root, B("a"), root, B("c"), (uint)LibC.RENAME_WHITEOUT), Is.EqualTo(Errno.EINVAL));
        Assert.That(_box.Fs.Rename(root, B("a"), root, B("c"), 0), Is.EqualTo(Errno.OK));
        Assert.That(_box.Fs.Unlink(root, B("c")), Is.EqualTo(Errno.OK));
        Assert.That(_box.Fs.Unlink(root, B("dir")), Is.EqualTo(Errno.EISDIR));
        Assert.That(_box.Fs.RmDir(root, B("dir")), Is.EqualTo(Errno.OK));
        Assert.That(Directory.GetFileSystemEntries(_box.Source).Select(Path.GetFileName), Is.EqualTo(OnlyB));
    }

    [Test]
    public void Unlinked_file_stays_readable_while_the_kernel_references_it()
    {
        File.WriteAllText(_box.Src("gone"), "still here");
        ulong ino = _box.Lookup(_box.Fs.RootIno, "gone");
        // Push the node's descriptor out of the cache so only the handle remains.
        for (int i = 0; i < 100; i++) File.WriteAllText(_box.Src($"x{i}"), "");
        for (int i = 0; i < 100; i++) _box.Lookup(_box.Fs.RootIno, $"x{i}");
        Assert.That(_box.Fs.Unlink(_box.Fs.RootIno, B("gone")), Is.EqualTo(Errno.OK));
        for (int i = 0; i < 100; i++) _box.Lookup(_box.Fs.RootIno, $"x{i}");
        Assert.That(_box.Fs.GetAttr(ino, out FuseAttr a), Is.EqualTo(Errno.OK));
        Assert.That(a.Nlink, Is.Zero);
        Assert.That(_box.ReadAll(ino), Is.EqualTo("still here"));
    }

    [Test]
    public void Unlinking_a_cached_node_pins_its_cached_descriptor_and_the_file_stays_readable()
    {
        File.WriteAllText(_box.Src("gone"), "still here");
        File.WriteAllText(_box.Src("kept"), "other");
        ulong ino = _box.Lookup(_box.Fs.RootIno, "gone");
        _box.Lookup(_box.Fs.RootIno, "kept");
        Assert.That(_box.Fs.GetAttr(ino, out _), Is.EqualTo(Errno.OK)); // a metadata request caches its descriptor
        int cached = _box.Fs.CachedDescriptorCount;
        Assert.That(_box.Fs.Unlink(_box.Fs.RootIno, B("gone")), Is.EqualTo(Errno.OK));
        Assert.That(_box.Fs.CachedDescriptorCount, Is.EqualTo(cached - 1), "the cached descriptor moved to the node, none was reopened");
        // Evict everything else: only the pin can still reach the unlinked inode (its handle is stale now).
        for (int i = 0; i < 200; i++) File.WriteAllText(_box.Src($"x{i}"), "");
        for (int i = 0; i < 200; i++) _box.Fs.GetAttr(_box.Lookup(_box.Fs.RootIno, $"x{i}"), out _);
        Assert.That(_box.Fs.GetAttr(ino, out FuseAttr a), Is.EqualTo(Errno.OK));
        Assert.That(a.Nlink, Is.Zero);
        Assert.That(_box.ReadAll(ino), Is.EqualTo("still here"));
        Assert.That(_box.Fs.Unlink(_box.Fs.RootIno, B("kept")), Is.EqualTo(Errno.OK), "positive control: a plain unlink");
        Assert.That(File.Exists(_box.Src("kept")), Is.False);
    }

    [Test]
    public void Opening_a_file_whose_descriptor_was_evicted_opens_it_from_its_handle_without_taking_a_cache_slot()
    {
        File.WriteAllText(_box.Src("cold"), "from the handle");
        ulong ino = _box.Lookup(_box.Fs.RootIno, "cold");
        Assert.That(_box.Fs.GetAttr(ino, out _), Is.EqualTo(Errno.OK)); // its handle proven, its descriptor cached
        void EvictAll(string prefix)
        {
            for (int i = 0; i < 200; i++) File.WriteAllText(_box.Src($"{prefix}{i}"), "");
            for (int i = 0; i < 200; i++) _box.Fs.GetAttr(_box.Lookup(_box.Fs.RootIno, $"{prefix}{i}"), out _);
        }

        EvictAll("e");
        Assert.That(_box.Fs.HasCachedDescriptor(ino), Is.False, "evicted");
        Assert.That(_box.ReadAll(ino), Is.EqualTo("from the handle"));
        Assert.That(_box.Fs.HasCachedDescriptor(ino), Is.False, "opened straight from its handle: no O_PATH descriptor taken (none evicted for it)");
        Assert.That(_box.Fs.GetAttr(ino, out _), Is.EqualTo(Errno.OK));
        Assert.That(_box.Fs.HasCachedDescriptor(ino), Is.True, "positive control: a metadata request caches one");

        // The open flags are the request's: O_TRUNC empties the file.
        Assert.That(_box.Fs.Open(ino, LibC.O_WRONLY | LibC.O_TRUNC, User, out IOpenFile w), Is.EqualTo(Errno.OK));
        Assert.That(w.Write(0, B("rewritten"), out _), Is.EqualTo(Errno.OK));
        Assert.That(w.Release(), Is.EqualTo(Errno.OK));
        Assert.That(File.ReadAllText(_box.Src("cold")), Is.EqualTo("rewritten"));

        // The handle names the inode, not the name: renamed on the host, it is still this file ...
        File.Move(_box.Src("cold"), _box.Src("moved"));
        EvictAll("f");
        Assert.That(_box.ReadAll(ino), Is.EqualTo("rewritten"));
        // ... and once the inode is gone (replaced under its name), the node is stale, not the new file.
        File.Delete(_box.Src("moved"));
        File.WriteAllText(_box.Src("moved"), "a different file");
        EvictAll("g");
        Assert.That(_box.Fs.Open(ino, LibC.O_RDONLY, User, out _), Is.EqualTo(Errno.ESTALE));
    }

    [Test]
    public void A_created_file_keeps_no_descriptor_and_is_reached_through_its_handle()
    {
        int cached = _box.Fs.CachedDescriptorCount;
        Assert.That(_box.Fs.Create(_box.Fs.RootIno, B("new"), LibC.O_WRONLY, 0x1A4, User, out FuseAttr made, out IOpenFile w, out _), Is.EqualTo(Errno.OK));
        Assert.That(_box.Fs.Retain(made.Ino), Is.True, "held as the kernel holds a created entry");
        Assert.That(w.Write(0, B("fresh"), out int written), Is.EqualTo(Errno.OK));
        Assert.That(written, Is.EqualTo(5));
        // While the file is open, its metadata requests (the GETXATTR the kernel sends before a write, a GETATTR, a
        // SETATTR without a handle) borrow the open file's own descriptor.
        Assert.That(_box.Fs.GetXattr(made.Ino, B("user.none"), new byte[64], out _), Is.EqualTo(Errno.ENODATA));
        Assert.That(_box.Fs.GetAttr(made.Ino, out FuseAttr open), Is.EqualTo(Errno.OK));
        Assert.That(open.Size, Is.EqualTo(5UL));
        Assert.That(_box.Fs.SetXattr(made.Ino, B("user.k"), B("v"), 0), Is.EqualTo(Errno.OK));
        Assert.That(_box.Fs.CachedDescriptorCount, Is.EqualTo(cached), "no O_PATH descriptor while the file is open");
        Assert.That(w.Release(), Is.EqualTo(Errno.OK));
        Assert.That(_box.Fs.CachedDescriptorCount, Is.EqualTo(cached), "the create reopened no O_PATH descriptor for its node");
        Assert.That(_box.Fs.GetAttr(made.Ino, out FuseAttr a), Is.EqualTo(Errno.OK));
        Assert.That((a.Size, a.Uid, a.Mode & 0xFFF), Is.EqualTo((5UL, 1000u, 0x1A4u)));
        Assert.That(_box.Fs.CachedDescriptorCount, Is.EqualTo(cached + 1), "the first request that needs it opens it from the handle");
        Assert.That(_box.ReadAll(made.Ino), Is.EqualTo("fresh"));
        Assert.That(_box.Fs.Lookup(_box.Fs.RootIno, B("new"), out FuseAttr again), Is.EqualTo(Errno.OK));
        Assert.That(again.Ino, Is.EqualTo(made.Ino), "a lookup of the name finds the created node");
    }

    [Test]
    public void A_created_file_unlinked_while_open_stays_readable_through_its_node()
    {
        Assert.That(_box.Fs.Create(_box.Fs.RootIno, B("tmp"), LibC.O_RDWR, 0x180, User, out FuseAttr made, out IOpenFile rw, out _), Is.EqualTo(Errno.OK));
        Assert.That(rw.Write(0, B("scratch"), out _), Is.EqualTo(Errno.OK));
        int cached = _box.Fs.CachedDescriptorCount;
        // No descriptor is cached for the node: the unlink pins one opened from the handle before the name goes.
        Assert.That(_box.Fs.Unlink(_box.Fs.RootIno, B("tmp")), Is.EqualTo(Errno.OK));
        Assert.That(File.Exists(_box.Src("tmp")), Is.False);
        Assert.That(_box.Fs.CachedDescriptorCount, Is.EqualTo(cached), "pinned to the node, not cached");
        for (int i = 0; i < 200; i++) File.WriteAllText(_box.Src($"x{i}"), "");
        for (int i = 0; i < 200; i++) _box.Lookup(_box.Fs.RootIno, $"x{i}");
        Assert.That(_box.Fs.GetAttr(made.Ino, out FuseAttr a), Is.EqualTo(Errno.OK), "the handle of an unlinked inode is stale: only the pin reaches it");
        Assert.That((a.Nlink, a.Size), Is.EqualTo((0u, 7UL)));
        Assert.That(_box.ReadAll(made.Ino), Is.EqualTo("scratch"));
        Assert.That(rw.Release(), Is.EqualTo(Errno.OK));
    }

    [Test]
    [Category("Mount")]
    public void Create_and_mkdir_replies_carry_the_attributes_a_fresh_getattr_reads()
    {
        Assert.That(_box.Fs.Create(_box.Fs.RootIno, B("f"), LibC.O_RDWR, 0x1A4, User, out FuseAttr created, out IOpenFile r, out _), Is.EqualTo(Errno.OK));
        Assert.That(_box.Fs.GetAttr(created.Ino, out FuseAttr fresh), Is.EqualTo(Errno.OK));
        Assert.That(_box.Fs.MkDir(_box.Fs.RootIno, B("d"), 0x1ED, User, out FuseAttr made), Is.EqualTo(Errno.OK));
        Assert.That(_box.Fs.GetAttr(made.Ino, out FuseAttr freshDir), Is.EqualTo(Errno.OK));
        // A mode the umask-free create cannot give directly (set-id bits chown clears) takes the chmod path.
        Assert.That(_box.Fs.Create(_box.Fs.RootIno, B("s"), LibC.O_RDWR, 0x9ED /* 04755 */, User, out FuseAttr setuid, out IOpenFile rs, out _), Is.EqualTo(Errno.OK));
        Assert.That(_box.Fs.GetAttr(setuid.Ino, out FuseAttr freshSetuid), Is.EqualTo(Errno.OK));
        Assert.Multiple(() =>
        {
            foreach ((FuseAttr reply, FuseAttr now) in new[] { (created, fresh), (made, freshDir), (setuid, freshSetuid) })
            {
                Assert.That((reply.Uid, reply.Gid), Is.EqualTo((1000u, 1000u)), "owned by the caller");
                Assert.That(reply.Mode, Is.EqualTo(now.Mode));
                Assert.That((reply.Uid, reply.Gid, reply.Nlink, reply.Size), Is.EqualTo((now.Uid, now.Gid, now.Nlink, now.Size)));
                Assert.That((reply.Ctime, reply.CtimeNsec), Is.EqualTo((now.Ctime, now.CtimeNsec)), "ctime after the chown, not before it");
            }
            Assert.That(created.Mode & 0xFFF, Is.EqualTo(0x1A4u));
            Assert.That(made.Mode & 0xFFF, Is.EqualTo(0x1EDu));
            Assert.That(setuid.Mode & 0xFFF, Is.EqualTo(0x9EDu), "set-uid bit restored after the chown cleared it");
        });
        Assert.That(r.Release(), Is.EqualTo(Errno.OK));
        Assert.That(rs.Release(), Is.EqualTo(Errno.OK));
    }

    [Test]
    [Category("Mount")]
    public void Evicted_nodes_reopen_from_their_file_handles()
    {
        Directory.CreateDirectory(_box.Src("dir"));
        File.WriteAllText(_box.Src("dir/f"), "by-handle");
        ulong dir = _box.Lookup(_box.Fs.RootIno, "dir");
        ulong f = _box.Lookup(dir, "f");
        for (int i = 0; i < 200; i++) File.WriteAllText(_box.Src($"x{i}"), "");
        for (int i = 0; i < 200; i++) _box.Lookup(_box.Fs.RootIno, $"x{i}");
        Assert.That(_box.Fs.CachedDescriptorCount, Is.LessThanOrEqualTo(64));
        Assert.That(_box.Fs.GetAttr(f, out FuseAttr a), Is.EqualTo(Errno.OK));
        Assert.That(a.Size, Is.EqualTo(9UL));
        Assert.That(_box.ReadAll(f), Is.EqualTo("by-handle"));
        for (int i = 0; i < 200; i++) _box.Lookup(_box.Fs.RootIno, $"x{i}");
        Assert.That(_box.Fs.Lookup(dir, B("f"), out FuseAttr again), Is.EqualTo(Errno.OK), "lookup under an evicted directory");
        Assert.That(again.Ino, Is.EqualTo(f));
    }

    [Test]
    public void Link_makes_a_second_name_for_the_same_node()
    {
        File.WriteAllText(_box.Src("orig"), "data");
        ulong ino = _box.Lookup(_box.Fs.RootIno, "orig");
        Assert.That(_box.Fs.Link(ino, _box.Fs.RootIno, B("alias"), out FuseAttr a), Is.EqualTo(Errno.OK));
        Assert.That(a.Ino, Is.EqualTo(ino));
        Assert.That(a.Nlink, Is.EqualTo(2u));
        Assert.That(File.ReadAllText(_box.Src("alias")), Is.EqualTo("data"));
    }

    [Test]
    [Category("Mount")]
    public void SetAttr_changes_mode_owner_size_and_times()
    {
        File.WriteAllText(_box.Src("s"), "0123456789");
        ulong ino = _box.Lookup(_box.Fs.RootIno, "s");
        var change = new AttrChange
        {
            Mode = 0x180, Uid = 1234, Gid = 4321, Size = 4, Atime = new TimeChange(1_000_000, 5), Mtime = new TimeChange(2_000_000, 7),
        };
        Assert.That(_box.Fs.SetAttr(ino, change, User, out FuseAttr a), Is.EqualTo(Errno.OK));
        Assert.Multiple(() =>
        {
            Assert.That(a.Mode & 0xFFF, Is.EqualTo(0x180u));
            Assert.That(a.Uid, Is.EqualTo(1234u));
            Assert.That(a.Gid, Is.EqualTo(4321u));
            Assert.That(a.Size, Is.EqualTo(4UL));
            Assert.That(a.Atime, Is.EqualTo(1_000_000UL));
            Assert.That(a.MtimeNsec, Is.EqualTo(7u));
        });
        Assert.That(_box.Fs.Open(ino, LibC.O_RDWR, User, out IOpenFile r), Is.EqualTo(Errno.OK));
        var viaFh = new AttrChange { File = r, Size = 1 };
        Assert.That(_box.Fs.SetAttr(ino, viaFh, User, out a), Is.EqualTo(Errno.OK));
        Assert.That(a.Size, Is.EqualTo(1UL));
        r.Release();
    }

    [Test]
    public void Xattrs_set_get_list_remove_with_size_probe_and_erange()
    {
        File.WriteAllText(_box.Src("x"), "");
        ulong ino = _box.Lookup(_box.Fs.RootIno, "x");
        Assert.That(_box.Fs.SetXattr(ino, B("user.k"), B("value"), 0), Is.EqualTo(Errno.OK));
        Assert.That(_box.Fs.SetXattr(ino, B("user.k"), B("v"), LibC.XATTR_CREATE), Is.EqualTo(Errno.EEXIST));
        Assert.That(_box.Fs.GetXattr(ino, B("user.k"), Span<byte>.Empty, out int size), Is.EqualTo(Errno.OK));
        Assert.That(size, Is.EqualTo(5));
        Assert.That(_box.Fs.GetXattr(ino, B("user.k"), new byte[2], out _), Is.EqualTo(Errno.ERANGE));
        var buf = new byte[64];
        Assert.That(_box.Fs.GetXattr(ino, B("user.k"), buf, out size), Is.EqualTo(Errno.OK));
        Assert.That(Encoding.UTF8.GetString(buf, 0, size), Is.EqualTo("value"));
        Assert.That(_box.Fs.ListXattr(ino, buf, out size), Is.EqualTo(Errno.OK));
        Assert.That(Encoding.UTF8.GetString(buf, 0, size), Does.Contain("user.k\0"));
        Assert.That(_box.Fs.RemoveXattr(ino, B("user.k")), Is.EqualTo(Errno.OK));
        Assert.That(_box.Fs.GetXattr(ino, B("user.k"), buf, out _), Is.EqualTo(Errno.ENODATA));
    }

    [Test]
    [Category("Mount")]
    public void Trusted_xattr_on_a_symlink_applies_to_the_link_not_its_target()
    {
        File.WriteAllText(_box.Src("target"), "");
        File.CreateSymbolicLink(_box.Src("sl"), "target");
        ulong link = _box.Lookup(_box.Fs.RootIno, "sl");
        ulong target = _box.Lookup(_box.Fs.RootIno, "target");
        Assert.That(_box.Fs.SetXattr(link, B("trusted.mark"), B("L"), 0), Is.EqualTo(Errno.OK));
        Assert.That(_box.Fs.GetXattr(target, B("trusted.mark"), new byte[8], out _), Is.EqualTo(Errno.ENODATA));
        Assert.That(_box.Fs.GetXattr(link, B("trusted.mark"), new byte[8], out int n), Is.EqualTo(Errno.OK));
        Assert.That(n, Is.EqualTo(1));
    }

    [Test]
    [Category("Mount")]
    public void Fallocate_lseek_fsync_and_copy_file_range_work_on_open_handles()
    {
        File.WriteAllText(_box.Src("src"), "abcdefgh");
        ulong a = _box.Lookup(_box.Fs.RootIno, "src");
        Assert.That(_box.Fs.Create(_box.Fs.RootIno, B("dst"), LibC.O_RDWR, 0x1A4, User, out FuseAttr d, out IOpenFile dr, out _), Is.EqualTo(Errno.OK));
        Assert.That(_box.Fs.Open(a, LibC.O_RDONLY, User, out IOpenFile ar), Is.EqualTo(Errno.OK));
        Assert.That(_box.Fs.CopyFileRange(ar, 2, dr, 0, 4, out long copied), Is.EqualTo(Errno.OK));
        Assert.That(copied, Is.EqualTo(4));
        Assert.That(dr.Fallocate(0, 0, 1 << 20), Is.EqualTo(Errno.OK));
        Assert.That(dr.Lseek(0, LibC.SEEK_END, out long end), Is.EqualTo(Errno.OK));
        Assert.That(end, Is.EqualTo(1 << 20));
        Assert.That(dr.Fallocate(0x8, 0, 1), Is.EqualTo(Errno.EOPNOTSUPP));
        Assert.That(dr.Fsync(dataOnly: true), Is.EqualTo(Errno.OK));
        Assert.That(dr.Flush(), Is.EqualTo(Errno.OK));
        ar.Release();
        dr.Release();
        Assert.That(File.ReadAllText(_box.Src("dst"))[..4], Is.EqualTo("cdef"));
        Assert.That(ar.Read(0, new byte[1], out _), Is.EqualTo(Errno.EBADF), "released handles are gone");
    }

    [Test]
    [Category("Mount")]
    public void TmpFile_is_unnamed_until_linked()
    {
        Assert.That(_box.Fs.TmpFile(_box.Fs.RootIno, LibC.O_RDWR, 0x1A4, User, out FuseAttr a, out IOpenFile r), Is.EqualTo(Errno.OK));
        Assert.That(a.Nlink, Is.Zero);
        Assert.That(r.Write(0, B("tmp"), out _), Is.EqualTo(Errno.OK));
        Assert.That(_box.Fs.Link(a.Ino, _box.Fs.RootIno, B("named"), out FuseAttr l), Is.EqualTo(Errno.OK));
        Assert.That(l.Nlink, Is.EqualTo(1u));
        r.Release();
        Assert.That(File.ReadAllText(_box.Src("named")), Is.EqualTo("tmp"));
    }

    [Test]
    public void StatFs_reports_the_host_filesystem()
    {
        Assert.That(_box.Fs.StatFs(out FuseKstatfs s), Is.EqualTo(Errno.OK));
        Assert.That(s.Blocks, Is.GreaterThan(0UL));
        Assert.That(s.NameLen, Is.EqualTo(255u));
    }

    [Test]
    public void Release_drops_the_node_once_no_holder_is_left()
    {
        File.WriteAllText(_box.Src("f"), "");
        int before = _box.Fs.NodeCount;
        ulong ino = _box.Lookup(_box.Fs.RootIno, "f");
        Assert.That(_box.Fs.Retain(ino), Is.True, "a second holder");
        _box.Fs.Release(ino);
        Assert.That(_box.Fs.GetAttr(ino, out _), Is.EqualTo(Errno.OK), "one holder left");
        _box.Fs.Release(ino);
        Assert.That(_box.Fs.NodeCount, Is.EqualTo(before));
        Assert.That(_box.Fs.GetAttr(ino, out _), Is.EqualTo(Errno.ENOENT));
        Assert.That(_box.Fs.Retain(ino), Is.False, "a dropped node is not retained: the proxy looks the name up again");
    }

    [Test]
    public void Names_only_looked_at_age_out_and_held_nodes_stay()
    {
        const int Names = Storage.Host.HostFileSystem.UnheldNodeLimit + 500;
        for (int i = 0; i < Names; i++) File.WriteAllText(_box.Src($"n{i:D4}"), "");
        ulong held = _box.Lookup(_box.Fs.RootIno, "n0000"); // the test's hold, as the proxy's
        int before = _box.Fs.NodeCount;
        var first = new List<ulong>();
        for (int i = 1; i < Names; i++)
        {
            Assert.That(_box.Fs.Lookup(_box.Fs.RootIno, B($"n{i:D4}"), out FuseAttr a), Is.EqualTo(Errno.OK));
            if (i <= 10) first.Add(a.Ino);
        }

        Assert.That(_box.Fs.NodeCount - before, Is.InRange(Storage.Host.HostFileSystem.UnheldNodeLimit - 1, Storage.Host.HostFileSystem.UnheldNodeLimit),
            "peeks cost at most the aging queue, not a node each");
        Assert.That(first.Select(_box.Fs.Retain), Is.All.False, "the oldest unheld nodes went");
        Assert.That(_box.Fs.GetAttr(held, out _), Is.EqualTo(Errno.OK), "the held one stayed");
        Assert.That(_box.Fs.Lookup(_box.Fs.RootIno, B("n0001"), out FuseAttr again), Is.EqualTo(Errno.OK), "a dropped node's name still resolves");
        Assert.That(again.Ino, Is.Not.EqualTo(first[0]), "as a new node: ids are never reused");
    }

    [Test]
    public void Open_handle_cap_gives_emfile_and_frees_on_release()
    {
        using var box = new HostSandbox(maxHandles: 3);
        File.WriteAllText(box.Src("f"), "");
        ulong ino = box.Lookup(box.Fs.RootIno, "f");
        var fhs = new List<IOpenFile>();
        for (int i = 0; i < 3; i++)
        {
            Assert.That(box.Fs.Open(ino, LibC.O_RDONLY, User, out IOpenFile r), Is.EqualTo(Errno.OK));
            fhs.Add(r);
        }
        Assert.That(box.Fs.Open(ino, LibC.O_RDONLY, User, out _), Is.EqualTo(Errno.EMFILE));
        Assert.That(box.Fs.Create(box.Fs.RootIno, B("g"), LibC.O_RDWR, 0x1A4, User, out _, out _, out _), Is.EqualTo(Errno.EMFILE));
        fhs[0].Release();
        Assert.That(box.Fs.Open(ino, LibC.O_RDONLY, User, out IOpenFile again), Is.EqualTo(Errno.OK));
        Assert.That(box.Fs.OpenHandleCount, Is.EqualTo(3));
        again.Release();
    }

    [Test]
    public void Readonly_mount_refuses_every_write_class_operation_with_erofs()
    {
        File.WriteAllText(_box.Src("f"), "x");
        using var ro = new HostSandbox(readOnly: true);
        File.WriteAllText(ro.Src("f"), "x");
        ulong root = ro.Fs.RootIno;
        ulong f = ro.Lookup(root, "f");
        Assert.Multiple(() =>
        {
            Assert.That(ro.Fs.Open(f, LibC.O_RDWR, User, out _), Is.EqualTo(Errno.EROFS));
            Assert.That(ro.Fs.Open(f, LibC.O_RDONLY | LibC.O_TRUNC, User, out _), Is.EqualTo(Errno.EROFS));
            Assert.That(ro.Fs.Create(root, B("n"), LibC.O_RDWR, 0x1A4, User, out _, out _, out _), Is.EqualTo(Errno.EROFS));
            Assert.That(ro.Fs.MkDir(root, B("d"), 0x1ED, User, out _), Is.EqualTo(Errno.EROFS));
            Assert.That(ro.Fs.MkNod(root, B("p"), LibC.S_IFIFO | 0x1A4, 0, User, out _), Is.EqualTo(Errno.EROFS));
            Assert.That(ro.Fs.Symlink(root, B("s"), B("f"), User, out _), Is.EqualTo(Errno.EROFS));
            Assert.That(ro.Fs.Unlink(root, B("f")), Is.EqualTo(Errno.EROFS));
            Assert.That(ro.Fs.RmDir(root, B("f")), Is.EqualTo(Errno.EROFS));
            Assert.That(ro.Fs.Rename(root, B("f"), root, B("g"), 0), Is.EqualTo(Errno.EROFS));
            Assert.That(ro.Fs.Link(f, root, B("h"), out _), Is.EqualTo(Errno.EROFS));
            Assert.That(ro.Fs.SetAttr(f, new AttrChange { Mode = 0x1FF }, User, out _), Is.EqualTo(Errno.EROFS));
            Assert.That(ro.Fs.SetXattr(f, B("user.a"), B("b"), 0), Is.EqualTo(Errno.EROFS));
            Assert.That(ro.Fs.RemoveXattr(f, B("user.a")), Is.EqualTo(Errno.EROFS));
            Assert.That(ro.Fs.TmpFile(root, LibC.O_RDWR, 0x1A4, User, out _, out _), Is.EqualTo(Errno.EROFS));
        });
        Assert.That(ro.ReadAll(f), Is.EqualTo("x"), "reads still work");
        Assert.That(File.ReadAllText(ro.Src("f")), Is.EqualTo("x"));
    }

    [Test]
    public void Direct_mount_returns_a_real_descriptor_for_passthrough_and_keeps_read_as_fallback()
    {
        using var box = new HostSandbox(direct: true);
        File.WriteAllText(box.Src("f"), "direct-bytes");
        ulong ino = box.Lookup(box.Fs.RootIno, "f");
        Assert.That(box.Fs.Kind, Is.EqualTo("direct"));
        Assert.That(box.Fs.Open(ino, LibC.O_RDONLY, User, out IOpenFile r), Is.EqualTo(Errno.OK));
        SafeFd? passthrough = r.DuplicatePassthroughFd();
        Assert.That(passthrough, Is.Not.Null);
        using (passthrough)
        {
            int flags = LibC.fcntl(passthrough!.Fd, 3 /* F_GETFL */, 0);
            Assert.That(flags & LibC.O_PATH, Is.Zero, "a real descriptor, not O_PATH");
            var buf = new byte[32];
            unsafe
            {
                fixed (byte* b = buf)
                {
                    Assert.That((int)LibC.pread(passthrough.Fd, b, 32, 0), Is.EqualTo(12));
                }
            }
        }
        var fb = new byte[32];
        Assert.That(r.Read(0, fb, out int n), Is.EqualTo(Errno.OK));
        Assert.That(n, Is.EqualTo(12));
        r.Release();
        Assert.That(_box.Fs.Kind, Is.EqualTo("host"));
    }

    [Test]
    [Category("Mount")]
    public void Open_of_a_directory_or_a_fifo_is_refused()
    {
        Directory.CreateDirectory(_box.Src("d"));
        ulong d = _box.Lookup(_box.Fs.RootIno, "d");
        Assert.That(_box.Fs.MkNod(_box.Fs.RootIno, B("p"), LibC.S_IFIFO | 0x1A4, 0, User, out FuseAttr p), Is.EqualTo(Errno.OK));
        Assert.That(_box.Fs.Open(d, LibC.O_RDONLY, User, out _), Is.EqualTo(Errno.EISDIR));
        Assert.That(_box.Fs.Open(p.Ino, LibC.O_RDONLY, User, out _), Is.EqualTo(Errno.EACCES));
    }
}

[TestFixture]
[Category("Mount")]
public sealed class HostKillPrivTests
{
    [Test]
    public void Truncate_with_kill_suidgid_clears_setuid_and_exec_setgid()
    {
        using var box = new HostSandbox();
        Assert.That(box.Fs.Create(box.Fs.RootIno, B("s"), LibC.O_RDWR, 0xDED /* 06755 */, User, out FuseAttr a, out IOpenFile r, out _), Is.EqualTo(Errno.OK));
        Assert.That(box.Fs.Retain(a.Ino), Is.True);
        r.Release();
        var change = new AttrChange { Size = 0, KillSetId = true };
        Assert.That(box.Fs.SetAttr(a.Ino, change, User, out FuseAttr after), Is.EqualTo(Errno.OK));
        Assert.That(after.Mode & 0xFFF, Is.EqualTo(0x1EDu), "06755 becomes 0755");
    }
}
