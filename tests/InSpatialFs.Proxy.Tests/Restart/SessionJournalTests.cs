using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Interop.Durable;
using InSpatialFs.Proxy.Nodes;
using InSpatialFs.Storage;

namespace InSpatialFs.Proxy.Tests.Restart;

/// <summary>
/// The restart journal (issue 16): what a server killed at any instant leaves for the next one. Replay gives exactly the
/// node and handle tables as they were after some whole prefix of the operations, never a misread one, wherever the
/// file is cut; compaction keeps the live state and nothing else.
/// </summary>
[TestFixture]
public sealed class SessionJournalTests
{
    private string _dir = null!;
    private readonly Dictionary<ulong, ulong> _applied = [];
    private readonly List<string> _renames = [];
    private readonly List<int> _atReplies = [];

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(Path.GetTempPath(), "isfs-journal-" + Guid.NewGuid().ToString("N")[..8]);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private static InodeIdentity Identity(ProxyNode n) => new(42, 1000 + n.NodeId, (uint)n.NodeId * 7, Persistent: true);

    /// <summary>Builds a journal by a fixed script of operations; returns the expected replay after each record.</summary>
    private List<string> WriteScript(out long length)
    {
        var expected = new List<string>();
        var root = new ProxyNode(NodeTable.RootNodeId, 0, 1, null, "") { IsMountRoot = true };
        var live = new Dictionary<ulong, ProxyNode>();
        var handles = new Dictionary<ulong, ProxyHandle>();
        _applied.Clear();
        _renames.Clear();
        using StateLog log = StateLog.Open(_dir, "session.log", (_, _) => { });
        using var journal = new SessionJournal(log, []);
        journal.Start([root], [], Identity);
        expected.Add(Describe(live, handles));

        // Every operation is a state a successor may find; what a reply depends on is written by the Commit before it
        // (as the server does), so the state at each reply is one a successor must be able to find.
        _atReplies.Clear();
        void Done() => expected.Add(Describe(live, handles));
        void Replied()
        {
            journal.Commit();
            _atReplies.Add(expected.Count - 1);
        }

        void Enter(ulong id, ProxyNode parent, string name)
        {
            var n = new ProxyNode(id, 0, 500 + id, parent, name);
            live[id] = n;
            journal.Entered(n, Identity(n));
            Done();
        }

        Enter(2, root, "etc");
        Replied();
        _applied[41] = 2; // the mkdir that made it, carried out
        journal.Applied(41, 2);
        Done();
        _atReplies.Add(expected.Count - 1); // an intent is written at once, before the change it announces
        Enter(3, live[2], "passwd");
        Replied();
        Enter(4, root, "tmp");
        Replied();
        Enter(5, live[4], "naïve \uDCFF name"); // an escaped invalid byte, kept exactly
        Replied();
        var handle = new ProxyHandle(live[3], new NoFile(), LibC.O_RDWR) { BackingId = 9 };
        handles[7] = handle;
        journal.Opened(7, handle);
        Done();
        Replied();
        // A rename's intent carries the move (a successor looks for a node the dead server moved at its new name).
        _applied[42] = 0;
        _renames.Add($"42:4/naïve \uDCFF name>2/moved~{LibC.RENAME_NOREPLACE}#1005");
        journal.Renaming(42, 4, "naïve \uDCFF name", 2, "moved", LibC.RENAME_NOREPLACE, Identity(live[5]));
        Done();
        _atReplies.Add(expected.Count - 1);
        live[5].MoveTo(live[2], "moved");
        journal.Moved(live[5]);
        Done();
        Replied();
        // A FORGET is held back (no reply depends on it) and goes out with the next write, here the RELEASE's; a
        // create's node and handle are one write.
        live.Remove(4);
        journal.Left(4);
        Done();
        handles.Remove(7);
        journal.Released(7);
        Done();
        Replied();
        Enter(6, live[2], "late");
        var late = new ProxyHandle(live[6], new NoFile(), LibC.O_WRONLY) { BackingId = -1 };
        handles[8] = late;
        journal.Opened(8, late);
        Done();
        Replied();
        length = log.Length;
        return expected;
    }

    private string Describe(Dictionary<ulong, ProxyNode> nodes, Dictionary<ulong, ProxyHandle> handles) =>
        string.Join(",", _applied.OrderBy(a => a.Key).Select(a => $"{a.Key}={a.Value}")) + "/" + string.Join(",", _renames) + "/" + Describe0(nodes, handles);

    private static string Describe0(Dictionary<ulong, ProxyNode> nodes, Dictionary<ulong, ProxyHandle> handles) =>
        string.Join(";", nodes.Values.OrderBy(n => n.NodeId).Select(n => $"{n.NodeId}<{n.Parent?.NodeId}:{n.Name}#{1000 + n.NodeId}")) + "|" +
        string.Join(";", handles.OrderBy(h => h.Key).Select(h => $"{h.Key}>{h.Value.Node.NodeId}/{h.Value.Flags}/{h.Value.BackingId}"));

    private static string Describe(SessionJournal.Replayed r) =>
        string.Join(",", r.Applied.OrderBy(a => a.Key).Select(a => $"{a.Key}={a.Value}")) + "/" +
        string.Join(",", r.Renames.Select(m => $"{m.Unique}:{m.FromParent}/{m.FromName}>{m.ToParent}/{m.ToName}~{m.Flags}#{m.Source.Inode}")) + "/" +
        string.Join(";", r.Nodes.Values.OrderBy(n => n.NodeId).Select(n => $"{n.NodeId}<{n.ParentId}:{n.Name}#{n.Identity.Inode}")) + "|" +
        string.Join(";", r.Handles.Values.OrderBy(h => h.Fh).Select(h => $"{h.Fh}>{h.NodeId}/{h.Flags}/{h.BackingId}"));

    private SessionJournal.Replayed Replay(string file)
    {
        var replayed = new SessionJournal.Replayed();
        string dir = Path.GetDirectoryName(file)!;
        using StateLog log = StateLog.Open(dir, Path.GetFileName(file), replayed.Apply);
        return replayed;
    }

    [Test]
    public void Replay_gives_the_tables_as_the_operations_left_them()
    {
        List<string> expected = WriteScript(out _);
        SessionJournal.Replayed replayed = Replay(Path.Combine(_dir, "session.log"));
        Assert.Multiple(() =>
        {
            Assert.That(Describe(replayed), Is.EqualTo(expected[^1]));
            Assert.That(replayed.HighestNodeId, Is.EqualTo(6));
            Assert.That(replayed.HighestFh, Is.EqualTo(8));
            Assert.That(replayed.Nodes[5].Name, Is.EqualTo("moved"));
            Assert.That(replayed.Nodes[5].ParentId, Is.EqualTo(2));
            Assert.That(replayed.Malformed, Is.Zero);
        });
    }

    [Test]
    public void A_journal_cut_at_any_byte_replays_exactly_the_state_after_a_whole_prefix_of_the_operations()
    {
        List<string> expected = WriteScript(out long length);
        byte[] whole = File.ReadAllBytes(Path.Combine(_dir, "session.log"));
        Assert.That(whole.Length, Is.EqualTo(length));
        string cutDir = Path.Combine(_dir, "cut");
        Directory.CreateDirectory(cutDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute); // the state log refuses a directory others can write
        var seen = new HashSet<int>();
        for (int cut = 0; cut <= whole.Length; cut++)
        {
            string file = Path.Combine(cutDir, "session.log");
            File.WriteAllBytes(file, whole[..cut]);
            File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite); // as the daemon makes it, whatever the umask
            string got = Describe(Replay(file));
            int index = expected.IndexOf(got);
            Assert.That(index, Is.GreaterThanOrEqualTo(0), $"cut at byte {cut} of {whole.Length}: replayed a state no prefix of the operations had: {got}");
            seen.Add(index);
            File.Delete(file);
        }

        Assert.That(seen, Is.SupersetOf(_atReplies), "the state at every reply is reached by some cut");
    }

    [Test]
    public void A_reply_costs_one_write_and_a_forgotten_node_waits_for_the_next_one_or_a_bound()
    {
        var root = new ProxyNode(NodeTable.RootNodeId, 0, 1, null, "") { IsMountRoot = true };
        using StateLog log = StateLog.Open(_dir, "session.log", (_, _) => { });
        using var journal = new SessionJournal(log, []);
        journal.Start([root], [], Identity);
        long start = log.Length;

        // A create: its node and its handle are staged, and written together by the commit before the reply.
        var file = new ProxyNode(2, 0, 502, root, "f");
        journal.Entered(file, Identity(file));
        journal.Opened(3, new ProxyHandle(file, new NoFile(), LibC.O_RDWR));
        Assert.That(log.Length, Is.EqualTo(start), "nothing written before the reply is due");
        journal.Commit();
        long afterCreate = log.Length;
        Assert.That((afterCreate > start, log.StagedCount), Is.EqualTo((true, 0)), "both records in the write the commit made");
        journal.Commit();
        Assert.That(log.Length, Is.EqualTo(afterCreate), "a commit with nothing owed writes nothing");

        // A release is owed before its reply (a passthrough handle's backing id must not come back); a forget has no
        // reply and waits, up to a bound.
        journal.Released(3);
        journal.Commit();
        long afterRelease = log.Length;
        Assert.That((afterRelease > afterCreate, log.StagedCount), Is.EqualTo((true, 0)));
        journal.Left(2);
        journal.Commit();
        Assert.That((log.Length, log.StagedCount), Is.EqualTo((afterRelease, 1)));
        for (ulong id = 10; id < 10 + SessionJournal.LazyKept; id++)
        {
            var n = new ProxyNode(id, 0, id, root, "n" + id);
            journal.Entered(n, Identity(n));
            journal.Commit();
            journal.Left(id);
        }

        Assert.That(log.StagedCount, Is.LessThan(SessionJournal.LazyKept), "never more than the bound is waiting (what a kill may leak)");
        journal.Flush();
        Assert.That(log.StagedCount, Is.Zero, "a hand-over writes them all");
        SessionJournal.Replayed replayed = Replay(Path.Combine(_dir, "session.log"));
        Assert.That((replayed.Nodes.Count, replayed.Handles.Count), Is.EqualTo((0, 0)));
    }

    [Test]
    public void Compaction_keeps_the_live_state_and_bounds_the_log_by_it()
    {
        var root = new ProxyNode(NodeTable.RootNodeId, 0, 1, null, "") { IsMountRoot = true };
        long peak;
        using (StateLog log = StateLog.Open(_dir, "session.log", (_, _) => { }))
        using (var journal = new SessionJournal(log, [(SessionJournal.FirstOwnerType, [1, 2, 3])]))
        {
            journal.Start([root], [], Identity);
            var keep = new ProxyNode(2, 0, 502, root, "kept");
            journal.Entered(keep, Identity(keep));
            peak = 0;
            for (ulong id = 10; id < 30_010; id++)
            {
                var n = new ProxyNode(id, 0, id, root, "churn" + id);
                journal.Entered(n, Identity(n));
                journal.Left(id);
                peak = Math.Max(peak, log.Length);
            }
        }

        var owner = new List<byte[]>();
        var replayed = new SessionJournal.Replayed();
        using (StateLog.Open(_dir, "session.log", (type, payload) =>
               {
                   if (type >= SessionJournal.FirstOwnerType)
                   {
                       owner.Add(payload.ToArray());
                   }
                   else
                   {
                       replayed.Apply(type, payload);
                   }
               }))
        {
        }

        Assert.Multiple(() =>
        {
            Assert.That(replayed.Nodes.Keys, Is.EquivalentTo(new ulong[] { 2 }), "only the live node");
            Assert.That(replayed.HighestNodeId, Is.EqualTo(30_009), "but no id ever handed out is handed out again");
            Assert.That(owner.Single(), Is.EqualTo(new byte[] { 1, 2, 3 }), "the owner's record survives every rewrite");
            Assert.That(peak, Is.LessThan(2_000_000), "60,000 records of churn never grew the log past a few thousand records");
        });
    }

    private sealed class NoFile : IOpenFile
    {
        public FopenFlags OpenFlags => FopenFlags.None;

        public Errno Read(long offset, Span<byte> buffer, out int bytesRead)
        {
            bytesRead = 0;
            return Errno.OK;
        }

        public Errno Write(long offset, ReadOnlySpan<byte> data, out int bytesWritten)
        {
            bytesWritten = 0;
            return Errno.OK;
        }

        public Errno Flush() => Errno.OK;

        public Errno Fsync(bool dataOnly) => Errno.OK;

        public Errno Fallocate(int mode, long offset, long length) => Errno.OK;

        public Errno Lseek(long offset, int whence, out long result)
        {
            result = 0;
            return Errno.OK;
        }

        public SafeFd? DuplicatePassthroughFd() => null;

        public Errno Release() => Errno.OK;
    }
}
