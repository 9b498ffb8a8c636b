using InSpatialFs.Fuse;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Proxy.Nodes;
using InSpatialFs.Storage.Host;
using InSpatialFs.Storage.Mounts;
using Microsoft.Extensions.Logging.Abstractions;

namespace InSpatialFs.Proxy.Tests.Restart;

/// <summary>
/// A server killed between a rename on the host and its reply (issue 16). The move of the kernel's node is journaled with
/// the reply, so the journal still has the node at its old name, which the host no longer has; the kernel resends the
/// rename and, once it is answered, keeps the same node id under the new name. The next server must find that node at
/// the new name, or every later request on it gets ENOENT (seen once in the runc kill loop: a checksum of the renamed
/// file failed with "no such file").
///
/// The kill is taken exactly where it matters: the journal file is copied right after the proxy carried out the rename and
/// before it committed what the reply depends on, which is what a process killed there leaves (its appends are in the
/// page cache; its staged records are lost).
/// </summary>
[TestFixture]
public sealed class ResumedRenameTests
{
    private const ulong RenameUnique = 77;
    private string _work = "";
    private string _source = "";
    private RestartServers _servers = null!;

    [SetUp]
    public void SetUp()
    {
        _work = Directory.CreateTempSubdirectory("isfs-resumed-").FullName;
        _source = Path.Combine(_work, "source");
        Directory.CreateDirectory(Path.Combine(_source, "d"));
        File.WriteAllText(Path.Combine(_source, "d", "t"), "renamed file");
        File.WriteAllText(Path.Combine(_source, "d", "x"), "exchanged file");
        _servers = new RestartServers(_source);
    }

    [TearDown]
    public void TearDown()
    {
        _servers.Dispose();
        Directory.Delete(_work, recursive: true);
    }

    private SecureProxy Server(string state, bool restore, out RestartReport report) => _servers.Start(state, restore, out report);

    private static FuseRequest Request(ulong unique)
    {
        var r = new FuseRequest();
        r.Reset(unique, opcode: 0, nodeId: 1, uid: 0, gid: 0, pid: 4242);
        return r;
    }

    private static ulong Looked(SecureProxy proxy, ulong parent, string name)
    {
        Assert.That(proxy.Lookup(Request(2), parent, ProxyHarness.N(name), out FuseEntryOut entry), Is.EqualTo(Errno.OK), name);
        proxy.BeforeReply();
        return entry.NodeId;
    }

    /// <summary>The first server: looks up d, d/t and d/x, then renames with <paramref name="flags"/> and is "killed" before the reply.</summary>
    private (ulong Dir, ulong T, ulong X, string State) KilledAfterRename(uint flags, string to)
    {
        string state = Path.Combine(_work, "state"), killed = Path.Combine(_work, "killed");
        SecureProxy first = Server(state, restore: false, out _);
        ulong dir = Looked(first, NodeTable.RootNodeId, "d");
        ulong t = Looked(first, dir, "t");
        ulong x = Looked(first, dir, "x");
        Assert.That(first.Rename(Request(RenameUnique), dir, ProxyHarness.N("t"), dir, ProxyHarness.N(to), flags), Is.EqualTo(Errno.OK));
        KillSnapshot(state, killed);
        return (dir, t, x, killed);
    }

    private static void KillSnapshot(string state, string killed) => RestartServers.KillSnapshot(state, killed);

    private static string ReadAll(SecureProxy proxy, ulong node)
    {
        Assert.That(proxy.Open(Request(3), node, LibC.O_RDONLY, 0, out FuseOpenOut open), Is.EqualTo(Errno.OK), $"open of node {node}");
        var buffer = new byte[256];
        Assert.That(proxy.Read(Request(4), node, open.Fh, 0, buffer, out int n), Is.EqualTo(Errno.OK));
        proxy.Release(Request(5), node, open.Fh, LibC.O_RDONLY);
        return System.Text.Encoding.UTF8.GetString(buffer, 0, n);
    }

    [Test]
    public void A_node_the_dead_server_renamed_is_found_at_its_new_name_and_the_resent_rename_is_answered_as_done()
    {
        (ulong dir, ulong t, _, string killed) = KilledAfterRename(0, "f");

        SecureProxy next = Server(killed, restore: true, out RestartReport report);
        Assert.Multiple(() =>
        {
            Assert.That(report.StaleNodes, Is.Zero, "every node the kernel holds is found again");
            Assert.That(report.Nodes, Is.EqualTo(3));
        });
        Assert.That(next.Rename(Request(RenameUnique | FuseConstants.UniqueResend), dir, ProxyHarness.N("t"), dir, ProxyHarness.N("f"), 0),
            Is.EqualTo(Errno.OK), "the resent rename, whose source is gone, is answered as carried out");
        Assert.Multiple(() =>
        {
            Assert.That(next.GetAttr(Request(6), t, null, out _), Is.EqualTo(Errno.OK), "the kernel's node id of the moved file still serves");
            Assert.That(ReadAll(next, t), Is.EqualTo("renamed file"));
            Assert.That(Looked(next, dir, "f"), Is.EqualTo(t), "the new name is the same node");
        });
    }

    [Test]
    public void Both_nodes_of_an_exchange_the_dead_server_carried_out_are_found_at_each_other_s_names_and_not_swapped_back()
    {
        (ulong dir, ulong t, ulong x, string killed) = KilledAfterRename(LibC.RENAME_EXCHANGE, "x");

        SecureProxy next = Server(killed, restore: true, out RestartReport report);
        Assert.That(report.StaleNodes, Is.Zero);
        Assert.That(next.Rename(Request(RenameUnique | FuseConstants.UniqueResend), dir, ProxyHarness.N("t"), dir, ProxyHarness.N("x"), LibC.RENAME_EXCHANGE),
            Is.EqualTo(Errno.OK), "the resent exchange is answered as carried out");
        Assert.Multiple(() =>
        {
            Assert.That(File.ReadAllText(Path.Combine(_source, "d", "x")), Is.EqualTo("renamed file"), "swapped once, not twice");
            Assert.That(ReadAll(next, t), Is.EqualTo("renamed file"));
            Assert.That(ReadAll(next, x), Is.EqualTo("exchanged file"));
            Assert.That(Looked(next, dir, "x"), Is.EqualTo(t), "t's node is at x now");
            Assert.That(Looked(next, dir, "t"), Is.EqualTo(x), "x's node is at t now");
        });
    }

    [Test]
    public void A_rename_begun_but_not_carried_out_leaves_the_node_at_its_name_until_the_resent_rename_moves_it()
    {
        (ulong dir, ulong t, _, string killed) = KilledAfterRename(0, "f");
        File.Move(Path.Combine(_source, "d", "f"), Path.Combine(_source, "d", "t")); // as if killed after the intent, before the rename

        SecureProxy next = Server(killed, restore: true, out RestartReport report);
        Assert.That(report.StaleNodes, Is.Zero);
        Assert.That(next.Rename(Request(RenameUnique | FuseConstants.UniqueResend), dir, ProxyHarness.N("t"), dir, ProxyHarness.N("f"), 0), Is.EqualTo(Errno.OK));
        Assert.Multiple(() =>
        {
            Assert.That(File.Exists(Path.Combine(_source, "d", "f")), Is.True, "the resent rename was carried out now");
            Assert.That(ReadAll(next, t), Is.EqualTo("renamed file"));
            Assert.That(Looked(next, dir, "f"), Is.EqualTo(t));
        });
    }

    [Test]
    public void An_exchange_begun_but_not_carried_out_is_carried_out_when_resent()
    {
        (ulong dir, ulong t, ulong x, string killed) = KilledAfterRename(LibC.RENAME_EXCHANGE, "x");
        // Undo the swap (same objects back at their names): as if killed after the intent, before the exchange.
        string d = Path.Combine(_source, "d");
        File.Move(Path.Combine(d, "t"), Path.Combine(d, "swap"));
        File.Move(Path.Combine(d, "x"), Path.Combine(d, "t"));
        File.Move(Path.Combine(d, "swap"), Path.Combine(d, "x"));

        SecureProxy next = Server(killed, restore: true, out RestartReport report);
        Assert.That(report.StaleNodes, Is.Zero);
        Assert.That(next.Rename(Request(RenameUnique | FuseConstants.UniqueResend), dir, ProxyHarness.N("t"), dir, ProxyHarness.N("x"), LibC.RENAME_EXCHANGE), Is.EqualTo(Errno.OK));
        Assert.Multiple(() =>
        {
            Assert.That(File.ReadAllText(Path.Combine(_source, "d", "x")), Is.EqualTo("renamed file"), "the exchange happened now");
            Assert.That(Looked(next, dir, "x"), Is.EqualTo(t));
            Assert.That(Looked(next, dir, "t"), Is.EqualTo(x));
        });
    }

    [Test]
    public void A_second_server_killed_before_it_answered_the_resent_rename_passes_what_it_knew_to_a_third()
    {
        (ulong dir, ulong t, _, string killed) = KilledAfterRename(0, "f");
        SecureProxy second = Server(killed, restore: true, out _);
        string killedAgain = Path.Combine(_work, "killed-again");
        KillSnapshot(killed, killedAgain);
        Assert.That(second, Is.Not.Null);

        SecureProxy third = Server(killedAgain, restore: true, out RestartReport report);
        Assert.Multiple(() =>
        {
            Assert.That(report.StaleNodes, Is.Zero);
            Assert.That(report.BegunChanges, Is.EqualTo(1), "the first server's rename is still known as begun");
        });
        Assert.That(third.Rename(Request(RenameUnique | FuseConstants.UniqueResend), dir, ProxyHarness.N("t"), dir, ProxyHarness.N("f"), 0), Is.EqualTo(Errno.OK));
        Assert.That(ReadAll(third, t), Is.EqualTo("renamed file"));
    }

    [Test]
    public void An_exchange_resent_to_a_second_server_killed_before_its_reply_is_still_not_swapped_back_by_a_third()
    {
        (ulong dir, _, _, string killed) = KilledAfterRename(LibC.RENAME_EXCHANGE, "x");
        SecureProxy second = Server(killed, restore: true, out _);
        Assert.That(second.Rename(Request(RenameUnique | FuseConstants.UniqueResend), dir, ProxyHarness.N("t"), dir, ProxyHarness.N("x"), LibC.RENAME_EXCHANGE),
            Is.EqualTo(Errno.OK), "the second server answers it as carried out");
        string killedAgain = Path.Combine(_work, "killed-again");
        KillSnapshot(killed, killedAgain); // and dies before the reply reaches the kernel: resent to a third

        SecureProxy third = Server(killedAgain, restore: true, out _);
        Assert.That(third.Rename(Request(RenameUnique | FuseConstants.UniqueResend), dir, ProxyHarness.N("t"), dir, ProxyHarness.N("x"), LibC.RENAME_EXCHANGE), Is.EqualTo(Errno.OK));
        Assert.That(File.ReadAllText(Path.Combine(_source, "d", "x")), Is.EqualTo("renamed file"), "swapped once by the first server, never back");
    }

    [Test]
    public void A_file_the_host_renamed_without_a_begun_rename_is_not_searched_for_elsewhere()
    {
        // Positive control: the detour is only through a journaled rename. A node whose name changed by other means is
        // stale (the kernel's requests on it get ENOENT) rather than guessed at.
        string state = Path.Combine(_work, "state");
        SecureProxy first = Server(state, restore: false, out _);
        ulong dir = Looked(first, NodeTable.RootNodeId, "d");
        ulong t = Looked(first, dir, "t");
        File.Move(Path.Combine(_source, "d", "t"), Path.Combine(_source, "d", "f"));
        first.FlushJournal();

        SecureProxy next = Server(state, restore: true, out RestartReport report);
        Assert.Multiple(() =>
        {
            Assert.That(report.StaleNodes, Is.EqualTo(1));
            Assert.That(next.GetAttr(Request(6), t, null, out _), Is.Not.EqualTo(Errno.OK));
        });
    }
}
