using InSpatialFs.Fuse;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Proxy.Nodes;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.Proxy.Tests.Restart;

/// <summary>
/// The restart journal on a full state disk. Node ids and file handles handed out while it cannot be written are
/// unknown to a successor, which must still never give one of them to another file (the kernel would send the dead
/// server's id for it); a server taking over a live mount on a full disk must serve rather than die (the keeper would
/// give up and the container lose its filesystem); and once there is room the journal is whole again.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class FullStateDiskTests
{
    private string _work = "";
    private string _state = "";
    private SmallDisk _disk = null!;
    private RestartServers _servers = null!;

    [SetUp]
    public void SetUp()
    {
        _work = Directory.CreateTempSubdirectory("isfs-fullstate-").FullName;
        string source = Path.Combine(_work, "source");
        Directory.CreateDirectory(source);
        for (int i = 0; i < 2000; i++)
        {
            File.WriteAllText(Path.Combine(source, "n" + i), "");
        }

        _servers = new RestartServers(source);
        _state = Path.Combine(_work, "state");
        // Smaller than the 1 MiB the log reserves ahead, so it is written with write(2) and the disk filling shows at once.
        _disk = SmallDisk.Mount(_state, "256k");
    }

    [TearDown]
    public void TearDown()
    {
        _servers.Dispose();
        _disk?.Dispose();
        Directory.Delete(_work, recursive: true);
    }

    private SecureProxy Server(string state, bool restore, out RestartReport report) => _servers.Start(state, restore, out report);

    private static FuseRequest Request() => RestartServers.Request();

    private static ulong Looked(SecureProxy proxy, string name) => RestartServers.Looked(proxy, NodeTable.RootNodeId, name);

    private static ulong Opened(SecureProxy proxy, ulong node)
    {
        Assert.That(proxy.Open(Request(), node, LibC.O_RDONLY, 0, out FuseOpenOut open), Is.EqualTo(Errno.OK));
        proxy.BeforeReply();
        return open.Fh;
    }

    /// <summary>
    /// Fills the disk, looks names up until the journal fails, then hands out 20 more node ids and handles the journal
    /// misses, and "kills" the server: its journal as it is now, copied. Returns the last id and handle and the next name.
    /// </summary>
    private (ulong LastNode, ulong LastFh, int Next, string Killed) DiesWithIdsTheJournalMissed(SecureProxy first)
    {
        _disk.Fill();
        int i = 1;
        while (first.JournalFailure == null && i < 2000)
        {
            Looked(first, "n" + i++);
        }

        Assert.That(first.JournalFailure, Is.Not.Null, "the journal ran out of room");
        ulong lastNode = 0, lastFh = 0;
        for (int k = 0; k < 20; k++)
        {
            lastNode = Looked(first, "n" + i++);
            lastFh = Opened(first, lastNode);
        }

        string killed = Path.Combine(_work, "killed");
        RestartServers.KillSnapshot(_state, killed);
        return (lastNode, lastFh, i, killed);
    }

    [Test]
    public void Ids_handed_out_unjournaled_are_never_reused_a_takeover_on_a_full_disk_serves_and_the_journal_recovers()
    {
        SecureProxy first = Server(_state, restore: false, out _);
        ulong journaled = Looked(first, "n0");
        (ulong lastNode, ulong lastFh, int i, string killed) = DiesWithIdsTheJournalMissed(first);

        SecureProxy next = Server(killed, restore: true, out _);
        ulong fresh = Looked(next, "n" + i++);
        Assert.That(fresh, Is.GreaterThan(lastNode), "a successor never gives a node id the dead server handed out to another file");
        Assert.That(fresh - journaled, Is.GreaterThan(SessionJournal.TakeoverIdGap));
        Assert.That(Opened(next, fresh), Is.GreaterThan(lastFh), "nor a file handle");

        // A server taking over the live mount while the disk is still full serves on.
        SecureProxy takeover = null!;
        Assert.DoesNotThrow(() => takeover = Server(_state, restore: true, out _));
        Assert.That(takeover.JournalFailure, Is.Not.Null);
        ulong afterTakeover = Looked(takeover, "n" + i++);

        _disk.MakeRoom();
        Thread.Sleep(SessionJournal.RetryInterval + TimeSpan.FromMilliseconds(100));
        ulong afterRoom = Looked(takeover, "n" + i++);
        Assert.That(takeover.JournalFailure, Is.Null, "room again: the whole live state was written");

        string later = Path.Combine(_work, "later");
        RestartServers.KillSnapshot(_state, later);
        SecureProxy successor = Server(later, restore: true, out RestartReport report);
        Assert.That(report.StaleNodes, Is.Zero);
        Assert.That(successor.GetAttr(Request(), afterTakeover, null, out _), Is.EqualTo(Errno.OK), "a node handed out while the journal could not be written");
        Assert.That(successor.GetAttr(Request(), afterRoom, null, out _), Is.EqualTo(Errno.OK));
    }

    /// <summary>With the session memo the descriptor store keeps, the successor starts just above every id and handle
    /// the dead server reserved, journaled or not: no 2^24 gap, so inode numbers stay small.</summary>
    [Test]
    public void With_the_session_memo_a_successor_starts_above_every_id_handed_out_without_the_gap()
    {
        using SessionMemo memo = SessionMemo.Create();
        SecureProxy first = _servers.Start(_state, restore: false, out _, memo);
        Looked(first, "n0");
        (ulong lastNode, ulong lastFh, int i, string killed) = DiesWithIdsTheJournalMissed(first);
        SecureProxy next = _servers.Start(killed, restore: true, out _, memo);
        ulong fresh = Looked(next, "n" + i++);
        Assert.That(fresh, Is.GreaterThan(lastNode), "never a node id the dead server handed out");
        Assert.That(fresh - lastNode, Is.LessThanOrEqualTo(SessionMemo.Block + 1), "just above the reserved block");
        Assert.That(Opened(next, fresh), Is.GreaterThan(lastFh), "nor a file handle");
    }
}
