using InSpatialFs.Fuse;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Proxy.Nodes;

namespace InSpatialFs.Proxy.Tests.Restart;

/// <summary>
/// A server taking over an overlay mount finds the kernel's nodes again by name and identity, as on a host mount. A
/// copy-up changes a node's identity, and the journal learns the copy's only with the reply: a server killed in
/// between leaves a journal naming the lower object while the name now leads to the copy. The copy carries its
/// origin, so the successor still takes it for the node; a new file at the name is not taken for it.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class OverlayTakeoverTests
{
    private string _work = "";
    private RestartServers _servers = null!;

    private string Lower => Path.Combine(_work, "lower");

    private string Upper => Path.Combine(_work, "upper");

    [SetUp]
    public void SetUp()
    {
        _work = Directory.CreateTempSubdirectory("isfs-ovl-takeover-").FullName;
        foreach (string d in new[] { "lower/dir", "upper", "work" }) Directory.CreateDirectory(Path.Combine(_work, d));
        File.WriteAllText(Path.Combine(Lower, "f"), "image\n");
        _servers = new RestartServers(Lower);
    }

    [TearDown]
    public void TearDown()
    {
        _servers.Dispose();
        Directory.Delete(_work, recursive: true);
    }

    private SecureProxy Server(string state, bool restore, out RestartReport report) =>
        _servers.StartOverlay(Upper, Path.Combine(_work, "work"), state, restore, out report);

    private static FuseRequest Request() => RestartServers.Request();

    private static ulong Looked(SecureProxy proxy, ulong parent, string name) => RestartServers.Looked(proxy, parent, name);

    [TestCase(false, TestName = "A_node_copied_up_after_the_journal_last_saw_it_is_found_again_as_its_copy")]
    [TestCase(true, TestName = "A_new_file_where_a_journaled_lower_node_was_is_not_taken_for_it")]
    public void Takeover_after_a_copy_up(bool replacedByNewFile)
    {
        string state = Path.Combine(_work, "state"), killed = Path.Combine(_work, "killed");
        SecureProxy first = Server(state, restore: false, out _);
        ulong file = Looked(first, NodeTable.RootNodeId, "f");
        ulong dir = Looked(first, NodeTable.RootNodeId, "dir");
        RestartServers.KillSnapshot(state, killed); // the journal names the lower file and directory

        if (replacedByNewFile)
        {
            Assert.That(first.Unlink(Request(), NodeTable.RootNodeId, ProxyHarness.N("f")), Is.EqualTo(Errno.OK));
            Assert.That(first.Create(Request(), NodeTable.RootNodeId, ProxyHarness.N("f"), LibC.O_WRONLY | LibC.O_CREAT | LibC.O_EXCL, 0x1A4, 0, out FuseEntryOut created, out _), Is.EqualTo(Errno.OK));
            // The container forging the mark on its new file, so that a successor takes it for the journaled one: refused.
            byte[] forged = new byte[20];
            Assert.That(first.SetXattr(Request(), created.NodeId, ProxyHarness.N("trusted.overlay.isfs.origin"), forged, 0), Is.EqualTo(Errno.EPERM));
            Assert.That(first.SetXattr(Request(), created.NodeId, ProxyHarness.N("user.note"), forged, 0), Is.EqualTo(Errno.OK), "positive control: an xattr of its own");
        }
        else
        {
            // Copy-ups whose replies the dead server never sent: a write open of the file, a new name in the directory.
            Assert.That(first.Open(Request(), file, LibC.O_WRONLY, 0, out _), Is.EqualTo(Errno.OK));
            Assert.That(first.Create(Request(), dir, ProxyHarness.N("new"), LibC.O_WRONLY | LibC.O_CREAT | LibC.O_EXCL, 0x1A4, 0, out _, out _), Is.EqualTo(Errno.OK));
        }

        Assert.That(File.Exists(Path.Combine(Upper, "f")), Is.True, "positive control: the name now leads to an upper object");
        SecureProxy second = Server(killed, restore: true, out RestartReport report);
        if (replacedByNewFile)
        {
            Assert.That(report.StaleNodes, Is.EqualTo(1), "the new file is another object: its name does not lend it the old id");
            Assert.That(second.GetAttr(Request(), file, null, out _), Is.Not.EqualTo(Errno.OK));
        }
        else
        {
            Assert.That((report.Nodes, report.StaleNodes), Is.EqualTo((2, 0)), "both copies are the journaled nodes");
            Assert.That(second.GetAttr(Request(), file, null, out FuseAttrOut attr), Is.EqualTo(Errno.OK));
            Assert.That(attr.Attr.Size, Is.EqualTo(6ul));
            Assert.That(second.GetAttr(Request(), dir, null, out _), Is.EqualTo(Errno.OK));
        }

        Assert.That(second.GetXattr(Request(), file, ProxyHarness.N("trusted.overlay.isfs.origin"), [], out _), Is.Not.EqualTo(Errno.OK),
            "the mark is the format's own: the container never sees it");
    }
}
