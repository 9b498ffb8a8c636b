using System.Security.Cryptography;
using System.Text;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Memory;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.Storage.Tests.Memory;

/// <summary>
/// A memory filesystem outlives its server (issue 16): the file data stays in the private tmpfs (whose descriptor the
/// keeper holds) and the metadata journal rebuilds the tree: same node ids, names, readdir cookies, modes, owners, times,
/// links, symlink targets, xattrs and bytes. A journal cut at any byte gives the tree after some whole prefix of the
/// operations, never a misread one.
/// </summary>
[TestFixture]
public sealed class MemoryKeepingTests
{
    private const long Size = 64L << 20;
    private const string Log = "memory-0.log";
    private string _state = null!;

    [SetUp]
    public void SetUp() => _state = Path.Combine(Path.GetTempPath(), "isfs-memkeep-" + Guid.NewGuid().ToString("N")[..8]);

    [TearDown]
    public void TearDown()
    {
        if (Directory.Exists(_state))
        {
            Directory.Delete(_state, recursive: true);
        }
    }

    private MemoryFileSystem Kept()
    {
        var fs = new MemoryFileSystem(Size);
        Assert.That(fs.KeepRefusal, Is.Null, "the kernel gives this daemon a private tmpfs here");
        fs.StartJournal(_state, Log);
        return fs;
    }

    /// <summary>The server dies: all that is left is the tmpfs descriptor the keeper held and the journal on disk.</summary>
    private static SafeFd Die(MemoryFileSystem fs)
    {
        SafeFd volume = fs.DuplicateDataVolume()!;
        fs.Dispose(); // closes descriptors only: neither the journal nor the tmpfs learn anything from it
        return volume;
    }

    private MemoryFileSystem Adopt(SafeFd volume, out MemoryRestoreReport report, string? state = null) =>
        MemoryFileSystem.Adopt(volume, state ?? _state, Log, Size, 0, out report);

    [Test]
    public void A_successor_finds_every_name_with_its_id_cookie_attributes_links_xattrs_and_bytes()
    {
        MemoryFileSystem fs = Kept();
        ulong root = fs.RootIno;
        ulong etc = fs.MkDir(root, "etc", 0x1ED);
        ulong tmp = fs.MkDir(root, "tmp", 0x3FF);
        (ulong passwd, IOpenFile p) = fs.Create(etc, "passwd", 0x1A4);
        fs.WriteAt(passwd, p, 0, Encoding.ASCII.GetBytes("root:x:0:0::/root:/bin/sh\n"));
        (ulong big, IOpenFile b) = fs.Create(tmp, "big", 0x180, Fs.User);
        byte[] bytes = RandomNumberGenerator.GetBytes(300_000);
        fs.WriteAt(big, b, 4096, bytes);
        Assert.That(fs.Link(passwd, tmp, Fs.N("passwd-link"), out _), Is.EqualTo(Errno.OK));
        Assert.That(fs.Symlink(root, Fs.N("bin"), Fs.N("usr/bin"), Fs.Root, out _), Is.EqualTo(Errno.OK));
        Assert.That(fs.MkNod(tmp, Fs.N("fifo"), LibC.S_IFIFO | 0x1B6, 0, Fs.Root, out _), Is.EqualTo(Errno.OK));
        Assert.That(fs.MkNod(root, Fs.N("null"), LibC.S_IFCHR | 0x1B6, 0x103, Fs.Root, out _), Is.EqualTo(Errno.OK));
        Assert.That(fs.SetXattr(big, Fs.N("user.origin"), Fs.N("upload"), 0), Is.EqualTo(Errno.OK));
        Assert.That(fs.SetXattr(etc, Fs.N("trusted.overlay.opaque"), Fs.N("y"), 0), Is.EqualTo(Errno.OK));
        ulong sub = fs.MkDir(tmp, "sub");
        fs.Touch(sub, "a");
        fs.Touch(sub, "b");
        Assert.That(fs.Rename(sub, Fs.N("a"), etc, Fs.N("a-moved"), 0), Is.EqualTo(Errno.OK));
        Assert.That(fs.Rename(tmp, Fs.N("fifo"), sub, Fs.N("b"), LibC.RENAME_EXCHANGE), Is.EqualTo(Errno.OK));
        Assert.That(fs.Rename(tmp, Fs.N("sub"), root, Fs.N("sub2"), 0), Is.EqualTo(Errno.OK));
        fs.Touch(tmp, "doomed");
        Assert.That(fs.Unlink(tmp, Fs.N("doomed")), Is.EqualTo(Errno.OK));
        Assert.That(fs.SetAttr(passwd, new AttrChange { Mode = 0x180, Uid = 7, Gid = 8, Mtime = new TimeChange(1_000_000, 5, false) }, Fs.Root, out _), Is.EqualTo(Errno.OK));
        Assert.That(fs.SetAttr(etc, new AttrChange { Mtime = new TimeChange(2_000_000, 6, false) }, Fs.Root, out _), Is.EqualTo(Errno.OK));
        Assert.That(p.Release(), Is.EqualTo(Errno.OK));
        Assert.That(b.Release(), Is.EqualTo(Errno.OK));
        string before = Describe(fs);
        long used = fs.Usage.BytesUsed;

        MemoryFileSystem next = Adopt(Die(fs), out MemoryRestoreReport report);
        Assert.That(Describe(next), Is.EqualTo(before));
        Assert.That(next.Usage.BytesUsed, Is.EqualTo(used), "the size limit counts the same bytes");
        Assert.That(report, Is.EqualTo(new MemoryRestoreReport(next.NodeCount, 0, 0, 0)));

        // The successor journals on: a second death finds its changes too, and ids are never handed out again.
        (ulong fresh, IOpenFile f) = next.Create(root, "after-restart");
        Assert.That(fresh, Is.GreaterThan(sub), "a new node gets an id no earlier node had");
        next.WriteAt(fresh, f, 0, Fs.N("second life"));
        Assert.That(f.Release(), Is.EqualTo(Errno.OK));
        Assert.That(next.Unlink(etc, Fs.N("passwd")), Is.EqualTo(Errno.OK));
        string again = Describe(next);
        using MemoryFileSystem third = Adopt(Die(next), out _);
        Assert.That(Describe(third), Is.EqualTo(again));
        Assert.That(again, Does.Contain("second life".Length.ToString(System.Globalization.CultureInfo.InvariantCulture) + " bytes"));
    }

    /// <summary>
    /// The state disk fills: a change the journal cannot record would be acknowledged and then missing after a restart,
    /// so it gets ENOSPC; file data still goes through. Once there is room again the next change writes the whole tree
    /// and goes through, and a successor finds every change that was acknowledged.
    /// </summary>
    [Test]
    [NonParallelizable]
    [Category("Mount")]
    public void While_the_journal_cannot_be_written_changes_get_ENOSPC_and_a_successor_finds_every_acknowledged_one()
    {
        using SmallDisk disk = SmallDisk.Mount(_state, "2m");
        var failures = new List<string>();
        int recoveries = 0;
        var fs = new MemoryFileSystem(Size);
        fs.StartJournal(_state, Log, e => failures.Add(e.Message), () => recoveries++);
        ulong root = fs.RootIno;
        ulong kept = fs.MkDir(root, "kept");
        (ulong data, IOpenFile d) = fs.Create(root, "data");
        // A binary with a file capability: a write, truncate or chown drops it, a change a successor must find.
        (ulong capable, IOpenFile c) = fs.Create(root, "ping");
        Assert.That(c.Write(0, Fs.N("original"), out _), Is.EqualTo(Errno.OK));
        Assert.That(fs.SetXattr(capable, Fs.N("security.capability"), CapNetRaw, 0), Is.EqualTo(Errno.OK));
        disk.Fill(); // what the log had reserved ahead is all its appends have left

        // Long names fill the log's reserve in a few thousand records; once it cannot be topped up, the change whose
        // record took it is in the log, and every later one is refused.
        List<string> acknowledged = MakeDirectoriesUntilRefused(fs, root, out Errno refused);

        Assert.That(refused, Is.EqualTo(Errno.ENOSPC), "a new name once the journal cannot be written");
        Assert.That(failures, Has.Count.EqualTo(1), "told once");
        Assert.That(fs.JournalFailure, Is.Not.Null);
        Assert.That(fs.RmDir(root, Fs.N("kept")), Is.EqualTo(Errno.ENOSPC), "a removal a successor would undo");
        Assert.That(fs.Rename(root, Fs.N("kept"), root, Fs.N("moved"), 0), Is.EqualTo(Errno.ENOSPC));
        Assert.That(fs.Link(data, kept, Fs.N("link"), out _), Is.EqualTo(Errno.ENOSPC));
        Assert.That(fs.SetAttr(data, new AttrChange { Mode = 0x1FF }, Fs.Root, out _), Is.EqualTo(Errno.ENOSPC), "a chmod a successor would undo");
        Assert.That(fs.SetXattr(data, Fs.N("user.k"), Fs.N("v"), 0), Is.EqualTo(Errno.ENOSPC));
        Assert.That(d.Write(0, Fs.N("still written"), out _), Is.EqualTo(Errno.OK), "file data lives in the tmpfs, not the journal");
        // ...but not into a file whose capability the write would drop: a successor would give the changed bytes the
        // capability back. Nor a truncate (by setattr or by opening with O_TRUNC), nor a kernel copy into it.
        Assert.That(c.Write(0, Fs.N("replaced"), out _), Is.EqualTo(Errno.ENOSPC), "a write that drops a capability");
        Assert.That(fs.SetAttr(capable, new AttrChange { Size = 0 }, Fs.Root, out _), Is.EqualTo(Errno.ENOSPC), "a truncate that drops it");
        Assert.That(fs.Open(capable, LibC.O_WRONLY | LibC.O_TRUNC, Fs.Root, out _), Is.EqualTo(Errno.ENOSPC), "O_TRUNC");
        Assert.That(fs.CopyFileRange(d, 0, c, 0, 4, out _), Is.EqualTo(Errno.ENOSPC), "copy_file_range into it");
        Assert.That(fs.SetAttr(data, new AttrChange { Size = 1 }, Fs.Root, out _), Is.EqualTo(Errno.OK), "positive control: a truncate of a file without one");
        Assert.That(d.Write(0, Fs.N("still written"), out _), Is.EqualTo(Errno.OK));

        disk.MakeRoom();
        Assert.That(fs.MkDir(root, Fs.N("too-soon"), 0x1ED, Fs.Root, out _), Is.EqualTo(Errno.ENOSPC), "retried at most once a second");
        Thread.Sleep(MemoryFileSystem.JournalRetryInterval + TimeSpan.FromMilliseconds(100));
        Assert.That(fs.MkDir(root, Fs.N("after"), 0x1ED, Fs.Root, out _), Is.EqualTo(Errno.OK), "room again: the whole tree is written and the change goes through");
        Assert.That(fs.JournalFailure, Is.Null);
        Assert.That(recoveries, Is.EqualTo(1));
        Assert.That(fs.SetAttr(data, new AttrChange { Mode = 0x180 }, Fs.Root, out _), Is.EqualTo(Errno.OK));
        Assert.That(d.Release(), Is.EqualTo(Errno.OK));
        Assert.That(c.Release(), Is.EqualTo(Errno.OK));
        string before = Describe(fs);

        using MemoryFileSystem next = Adopt(Die(fs), out _);
        Assert.That(Describe(next), Is.EqualTo(before), "every acknowledged change, the one whose record first failed too");
        foreach (string name in acknowledged.Append("after").Append("kept"))
        {
            Assert.That(next.Lookup(root, Fs.N(name), out _), Is.EqualTo(Errno.OK), name);
        }

        byte[] value = new byte[64];
        Assert.That(next.GetXattr(capable, Fs.N("security.capability"), value, out _), Is.EqualTo(Errno.OK), "the capability, on the bytes it was given for");
        Assert.That(ReadAll(next, capable), Is.EqualTo(Fs.N("original")));
    }

    /// <summary>Directories with long names (a few thousand fill a journal's reserve) until one is refused; the names that were not.</summary>
    private static List<string> MakeDirectoriesUntilRefused(MemoryFileSystem fs, ulong root, out Errno refused)
    {
        var acknowledged = new List<string>();
        refused = Errno.OK;
        for (int i = 0; i < 100_000 && refused == Errno.OK; i++)
        {
            string name = i.ToString("D6", System.Globalization.CultureInfo.InvariantCulture) + new string('n', 200);
            refused = fs.MkDir(root, Fs.N(name), 0x1ED, Fs.Root, out _);
            if (refused == Errno.OK) acknowledged.Add(name);
        }

        return acknowledged;
    }

    /// <summary>A valid VFS_CAP_REVISION_2 security.capability value (effective, cap_net_raw permitted).</summary>
    private static readonly byte[] CapNetRaw = [0x01, 0, 0, 0x02, 0x00, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

    /// <summary>
    /// The server dies while the state disk is still full: what the journal holds is every change that was acknowledged.
    /// Without the reserve the first change whose record did not fit was made, acknowledged, and then missing here.
    /// </summary>
    [Test]
    [NonParallelizable]
    [Category("Mount")]
    public void A_server_that_dies_while_its_state_disk_is_full_loses_no_acknowledged_change()
    {
        using SmallDisk disk = SmallDisk.Mount(_state, "2m");
        var failures = new List<string>();
        var fs = new MemoryFileSystem(Size);
        fs.StartJournal(_state, Log, e => failures.Add(e.Message));
        ulong root = fs.RootIno;
        disk.Fill();

        List<string> acknowledged = MakeDirectoriesUntilRefused(fs, root, out Errno refused);

        Assert.That(refused, Is.EqualTo(Errno.ENOSPC));
        string before = Describe(fs);

        SafeFd volume = Die(fs);
        disk.MakeRoom(); // for the successor's own journal; the dead server's is as it left it
        using MemoryFileSystem next = Adopt(volume, out _);
        Assert.That(next.Lookup(root, Fs.N(acknowledged[^1]), out _), Is.EqualTo(Errno.OK), "the last acknowledged name");
        Assert.That(Describe(next), Is.EqualTo(before), "every acknowledged change");
        Assert.That(acknowledged, Has.Count.GreaterThan(100), "the reserve took records after the disk filled");
        Assert.That(failures, Has.Count.EqualTo(1));
        Assert.That(failures[0], Does.Contain("reserve"), "seen while records still fit, not from a record that did not");
    }

    /// <summary>
    /// The journal is gone (its state directory was removed) or damaged (its header): the names are lost, the bytes are
    /// kept in /lost+found, and a damaged journal is kept aside for a post-mortem.
    /// </summary>
    [TestCase(false, TestName = "Without_its_journal_a_successor_keeps_every_data_file_in_lost_found")]
    [TestCase(true, TestName = "With_a_damaged_journal_a_successor_keeps_it_aside_and_every_data_file_in_lost_found")]
    public void Without_a_readable_journal(bool damaged)
    {
        MemoryFileSystem fs = Kept();
        ulong etc = fs.MkDir(fs.RootIno, "etc");
        (ulong passwd, IOpenFile p) = fs.Create(etc, "passwd");
        fs.WriteAt(passwd, p, 0, Fs.N("root:x:0:0"));
        Assert.That(p.Release(), Is.EqualTo(Errno.OK));
        (ulong big, IOpenFile b) = fs.Create(fs.RootIno, "big");
        byte[] bytes = RandomNumberGenerator.GetBytes(200_000);
        fs.WriteAt(big, b, 0, bytes);
        Assert.That(b.Release(), Is.EqualTo(Errno.OK));
        SafeFd volume = Die(fs);
        string journal = Path.Combine(_state, Log);
        byte[] bad = File.ReadAllBytes(journal);
        bad[1] ^= 0x40;
        if (damaged) File.WriteAllBytes(journal, bad);
        else File.Delete(journal);

        using (SafeFd again = new(LibC.fcntl(volume.Fd, LibC.F_DUPFD_CLOEXEC, 0)))
        {
            Assert.Throws<InvalidDataException>(() => Adopt(again, out _), "without the fallback: no tree, no successor");
        }

        using MemoryFileSystem next = MemoryFileSystem.Adopt(volume, _state, Log, Size, 0, out MemoryRestoreReport report, orphansIfNoTree: true);
        Assert.That((report.TreeLost, report.LostAndFound), Is.EqualTo((true, 2)));
        if (damaged)
        {
            Assert.That(report.DamagedJournalSetAside, Does.StartWith(Log + ".damaged-"));
            Assert.That(File.ReadAllBytes(Path.Combine(_state, report.DamagedJournalSetAside!)), Is.EqualTo(bad), "kept as it was");
        }
        else
        {
            Assert.That(report.DamagedJournalSetAside, Is.Null);
        }

        Assert.That(next.Lookup(next.RootIno, "lost+found", out FuseAttr lostFound), Is.EqualTo(Errno.OK));
        Assert.That(next.Lookup(lostFound.Ino, passwd.ToString(System.Globalization.CultureInfo.InvariantCulture), out FuseAttr kept), Is.EqualTo(Errno.OK));
        Assert.That(ReadAll(next, kept.Ino), Is.EqualTo(Fs.N("root:x:0:0")), "the bytes, under the old id");
        Assert.That(next.Lookup(lostFound.Ino, big.ToString(System.Globalization.CultureInfo.InvariantCulture), out FuseAttr bigAttr), Is.EqualTo(Errno.OK));
        Assert.That(ReadAll(next, bigAttr.Ino), Is.EqualTo(bytes));
        Assert.That(bigAttr.Mode, Is.EqualTo(LibC.S_IFREG | 0x180u), "root's, 0600: no one else reads what the names no longer say");

        // The successor journals from this tree: a further successor finds it.
        (ulong fresh, IOpenFile f) = next.Create(next.RootIno, "after");
        Assert.That(fresh, Is.GreaterThan(big), "no id of a data file is handed out again");
        Assert.That(f.Release(), Is.EqualTo(Errno.OK));
        string tree = Describe(next);
        using MemoryFileSystem third = Adopt(Die(next), out _);
        Assert.That(Describe(third), Is.EqualTo(tree));
    }

    [Test]
    public void Names_gone_and_files_open_without_a_name_are_not_carried_over_and_their_pages_go_back()
    {
        MemoryFileSystem fs = Kept();
        (ulong open, IOpenFile o) = fs.Create(fs.RootIno, "open-then-unlinked");
        fs.WriteAt(open, o, 0, new byte[1 << 20]);
        Assert.That(fs.Unlink(fs.RootIno, Fs.N("open-then-unlinked")), Is.EqualTo(Errno.OK));
        Assert.That(fs.TmpFile(fs.RootIno, LibC.O_RDWR, 0x180, Fs.Root, out _, out IOpenFile t), Is.EqualTo(Errno.OK));
        Assert.That(t.Write(0, new byte[1 << 20], out _), Is.EqualTo(Errno.OK));
        fs.Touch(fs.RootIno, "kept");
        string before = Describe(fs);

        using MemoryFileSystem next = Adopt(Die(fs), out MemoryRestoreReport report);
        Assert.That(Describe(next), Is.EqualTo(before));
        Assert.That(report.RemovedDataFiles, Is.EqualTo(2), "the unlinked file's and the O_TMPFILE's data files");
        Assert.That(report.DroppedNodes, Is.EqualTo(1), "the unlinked file the journal knew");
        Assert.That(next.Usage.BytesUsed, Is.LessThan(1 << 20), "their 2 MiB went back to the kernel");
    }

    [Test]
    public void Churn_keeps_the_journal_the_size_of_the_tree()
    {
        MemoryFileSystem fs = Kept();
        ulong dir = fs.MkDir(fs.RootIno, "churn");
        for (int i = 0; i < 20_000; i++)
        {
            fs.Touch(dir, "f" + (i % 50));
            if (i % 50 == 49)
            {
                for (int j = 0; j < 50; j++)
                {
                    Assert.That(fs.Unlink(dir, Fs.N("f" + j)), Is.EqualTo(Errno.OK));
                }
            }
        }

        fs.Touch(dir, "survivor");
        Assert.That(fs.JournalBytes, Is.LessThan(2L << 20), "rewritten from the live tree, not grown with history");
        string before = Describe(fs);
        using MemoryFileSystem next = Adopt(Die(fs), out _);
        Assert.That(Describe(next), Is.EqualTo(before));
    }

    [Test]
    public void A_journal_cut_at_any_byte_gives_the_tree_after_a_whole_prefix_of_the_operations()
    {
        MemoryFileSystem fs = Kept();
        string log = Path.Combine(_state, Log);
        var steps = new List<(long Length, string Tree)> { (new FileInfo(log).Length, Describe(fs, data: false)) };
        void Step() => steps.Add((new FileInfo(log).Length, Describe(fs, data: false)));

        ulong d = fs.MkDir(fs.RootIno, "d");
        Step();
        fs.Touch(d, "f");
        Step();
        Assert.That(fs.Symlink(d, Fs.N("s"), Fs.N("f"), Fs.Root, out _), Is.EqualTo(Errno.OK));
        Step();
        Assert.That(fs.Lookup(d, "f", out FuseAttr f), Is.EqualTo(Errno.OK));
        Assert.That(fs.SetXattr(f.Ino, Fs.N("user.k"), Fs.N("v"), 0), Is.EqualTo(Errno.OK));
        Step();
        Assert.That(fs.Link(f.Ino, fs.RootIno, Fs.N("hard"), out _), Is.EqualTo(Errno.OK));
        Step();
        Assert.That(fs.Rename(d, Fs.N("f"), fs.RootIno, Fs.N("g"), 0), Is.EqualTo(Errno.OK));
        Step();
        Assert.That(fs.SetAttr(d, new AttrChange { Mode = 0x1C0, Uid = 5 }, Fs.Root, out _), Is.EqualTo(Errno.OK));
        Step();
        Assert.That(fs.Unlink(fs.RootIno, Fs.N("hard")), Is.EqualTo(Errno.OK));
        Step();
        Assert.That(fs.RemoveXattr(f.Ino, Fs.N("user.k")), Is.EqualTo(Errno.OK));
        Step();
        Assert.That(fs.Unlink(d, Fs.N("s")), Is.EqualTo(Errno.OK));
        Step();
        Assert.That(fs.RmDir(fs.RootIno, Fs.N("d")), Is.EqualTo(Errno.OK));
        Step();
        byte[] whole = File.ReadAllBytes(log);
        using SafeFd volume = Die(fs);
        Assert.That(steps.Select(s => s.Length).Distinct().Count(), Is.EqualTo(steps.Count), "every operation is a record of its own");

        string cutDir = _state + "-cut";
        try
        {
            for (int cut = 0; cut <= whole.Length; cut++)
            {
                Directory.CreateDirectory(cutDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                File.WriteAllBytes(Path.Combine(cutDir, Log), whole[..cut]);
                File.SetUnixFileMode(Path.Combine(cutDir, Log), UnixFileMode.UserRead | UnixFileMode.UserWrite);
                int whole_ = steps.FindLastIndex(s => s.Length <= cut);
                int fd = LibC.fcntl(volume.Fd, LibC.F_DUPFD_CLOEXEC, 0);
                if (whole_ < 0)
                {
                    Assert.Throws<InvalidDataException>(() => Adopt(new SafeFd(fd), out _, cutDir), $"cut at {cut}: the first tree is not whole yet");
                }
                else
                {
                    using MemoryFileSystem back = Adopt(new SafeFd(fd), out _, cutDir);
                    string tree = Describe(back, data: false);
                    if (tree != steps[whole_].Tree)
                    {
                        Assert.Fail($"cut at byte {cut} of {whole.Length}: expected the tree after step {whole_}\n{steps[whole_].Tree}\nbut found\n{tree}");
                    }
                }

                Directory.Delete(cutDir, recursive: true);
            }
        }
        finally
        {
            if (Directory.Exists(cutDir))
            {
                Directory.Delete(cutDir, recursive: true);
            }
        }
    }

    /// <summary>The whole tree as the kernel would see it: readdir order and cookies, ids, attributes, targets, xattrs, bytes.</summary>
    private static byte[] ReadAll(MemoryFileSystem fs, ulong ino)
    {
        Assert.That(fs.Open(ino, LibC.O_RDONLY, Fs.Root, out IOpenFile file), Is.EqualTo(Errno.OK));
        byte[] data = fs.ReadAt(ino, file, 0, (int)fs.Attr(ino).Size);
        Assert.That(file.Release(), Is.EqualTo(Errno.OK));
        return data;
    }

    private static string Describe(MemoryFileSystem fs, bool data = true)
    {
        var text = new StringBuilder();
        var pending = new Stack<(ulong Ino, string Path)>([(fs.RootIno, "")]);
        while (pending.TryPop(out (ulong Ino, string Path) at))
        {
            FuseAttr attr = fs.Attr(at.Ino);
            text.Append(at.Path).Append(" #").Append(attr.Ino).Append(' ')
                .Append(Convert.ToString(attr.Mode, 8)).Append(' ').Append(attr.Uid).Append(':').Append(attr.Gid)
                .Append(" n").Append(attr.Nlink).Append(" r").Append(attr.Rdev);
            bool regular = (attr.Mode & LibC.S_IFMT) == LibC.S_IFREG;
            if (!regular || data)
            {
                text.Append(" m").Append(attr.Mtime).Append('.').Append(attr.MtimeNsec);
            }

            if (!regular)
            {
                text.Append(" c").Append(attr.Ctime).Append('.').Append(attr.CtimeNsec);
            }

            byte[] names = new byte[4096];
            Assert.That(fs.ListXattr(at.Ino, names, out int length), Is.EqualTo(Errno.OK));
            foreach (string name in Encoding.UTF8.GetString(names, 0, length).Split('\0', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal))
            {
                byte[] value = new byte[4096];
                Assert.That(fs.GetXattr(at.Ino, Fs.N(name), value, out int size), Is.EqualTo(Errno.OK));
                text.Append(' ').Append(name).Append('=').Append(Encoding.UTF8.GetString(value, 0, size));
            }

            switch (attr.Mode & LibC.S_IFMT)
            {
                case LibC.S_IFLNK:
                    byte[] target = new byte[4096];
                    Assert.That(fs.ReadLink(at.Ino, target, out int targetLength), Is.EqualTo(Errno.OK));
                    text.Append(" -> ").Append(Encoding.UTF8.GetString(target, 0, targetLength));
                    break;
                case LibC.S_IFREG when data:
                    Assert.That(fs.Open(at.Ino, LibC.O_RDONLY, Fs.Root, out IOpenFile file), Is.EqualTo(Errno.OK));
                    byte[] content = new byte[(int)attr.Size];
                    Assert.That(file.Read(0, content, out int read), Is.EqualTo(Errno.OK));
                    Assert.That(file.Release(), Is.EqualTo(Errno.OK));
                    text.Append(' ').Append(read).Append(" bytes ").Append(Convert.ToHexString(SHA256.HashData(content.AsSpan(0, read)))[..16]);
                    break;
                case LibC.S_IFDIR:
                    Assert.That(fs.OpenDir(at.Ino, out IOpenDirectory dir), Is.EqualTo(Errno.OK));
                    var sink = new CollectingSink();
                    Assert.That(dir.ReadDir(0, sink), Is.EqualTo(Errno.OK));
                    Assert.That(dir.Release(), Is.EqualTo(Errno.OK));
                    foreach ((string name, ulong ino, _, long next) in sink.Entries)
                    {
                        text.Append(' ').Append(name).Append('@').Append(next);
                        if (name is not ("." or ".."))
                        {
                            pending.Push((ino, at.Path + "/" + name));
                        }
                    }

                    break;
            }

            text.Append('\n');
        }

        return text.ToString();
    }
}
