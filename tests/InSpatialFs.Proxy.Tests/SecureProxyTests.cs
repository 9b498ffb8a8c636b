using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Security;
using InSpatialFs.Security.Events;

namespace InSpatialFs.Proxy.Tests;

public sealed class SecureProxyTests
{
    private const ulong Root = 1;

    [Test]
    public void Lookup_returns_the_nodeid_as_inode_and_forget_releases_the_node()
    {
        var h = new ProxyHarness(("/", false));
        (ulong node, ulong fh) = h.Create(Root, "a.txt");
        h.Proxy.Release(h.Request, node, fh, 0);
        Assert.That(h.Lookup(Root, "a.txt", out FuseEntryOut entry), Is.EqualTo(Errno.OK));
        Assert.That(entry.NodeId, Is.EqualTo(node), "the same backend node keeps its nodeid");
        Assert.That(entry.Attr.Ino, Is.EqualTo(node));
        Assert.That(h.Proxy.LiveNodes, Is.EqualTo(2));

        h.Proxy.Forget(node, 2); // create + lookup
        Assert.That(h.Proxy.LiveNodes, Is.EqualTo(1), "only the root is left");
        int backendNodes = h.Backends[0].NodeCount;
        Assert.That(h.Lookup(Root, "a.txt", out FuseEntryOut again), Is.EqualTo(Errno.OK));
        Assert.That(again.NodeId, Is.Not.EqualTo(node), "node ids are never reused");
        h.Proxy.Forget(again.NodeId, 1);
        Assert.That(h.Backends[0].NodeCount, Is.EqualTo(backendNodes));
    }

    [Test]
    public void Missing_names_get_a_negative_entry()
    {
        var h = new ProxyHarness(("/", false));
        Assert.That(h.Lookup(Root, "nope", out FuseEntryOut entry), Is.EqualTo(Errno.OK));
        Assert.That(entry.NodeId, Is.Zero);
        Assert.That(entry.EntryValid, Is.GreaterThan(0ul));
    }

    [Test]
    public void Denied_lookup_returns_the_gates_errno_and_is_recorded()
    {
        var h = new ProxyHarness(("/", false));
        h.Create(Root, "secret");
        h.Gate.Decider = e => e.Path == "/secret" ? Verdict.Deny(Errno.EACCES, new VerdictReason(ReasonKind.ForbiddenPath, "/secret")) : Verdict.Allow;
        Assert.That(h.Lookup(Root, "secret", out _), Is.EqualTo(Errno.EACCES));
        FsEvent denied = h.Gate.Recorded.Single(e => e.Op == FsOp.Lookup);
        Assert.That(denied.Decision, Is.EqualTo(Decision.Deny));
        Assert.That((denied.Why.Kind, denied.Reason), Is.EqualTo((ReasonKind.ForbiddenPath, "forbidden:/secret")));
        Assert.That(denied.Result, Is.EqualTo((int)Errno.EACCES));
        Assert.That(denied.Pid, Is.EqualTo(4242));
    }

    [Test]
    public void A_denial_never_reaches_the_kernel_as_ENOSYS()
    {
        var h = new ProxyHarness(("/", false));
        h.Gate.Decider = _ => Verdict.Deny(Errno.ENOSYS, VerdictReason.Rule("misconfigured"));
        Assert.That(h.Proxy.MkDir(h.Request, Root, ProxyHarness.N("d"), 0x1ED, 0, out _), Is.EqualTo(Errno.EACCES));
    }

    [Test]
    public void Write_class_ops_on_a_read_only_mount_get_EROFS_and_reads_work()
    {
        var h = new ProxyHarness(("/", false), ("/ro", true));
        Assert.That(h.Lookup(Root, "ro", out FuseEntryOut ro), Is.EqualTo(Errno.OK));
        Assert.That(h.Proxy.MkDir(h.Request, ro.NodeId, ProxyHarness.N("x"), 0x1ED, 0, out _), Is.EqualTo(Errno.EROFS));
        Assert.That(h.Proxy.Create(h.Request, ro.NodeId, ProxyHarness.N("f"), LibC.O_WRONLY, 0x1A4, 0, out _, out _), Is.EqualTo(Errno.EROFS));
        Assert.That(h.Proxy.OpenDir(h.Request, ro.NodeId, 0, out FuseOpenOut dir), Is.EqualTo(Errno.OK));
        Assert.That(h.Gate.Recorded.Any(e => e.Op == FsOp.MkDir && e.Decision == Decision.Deny && e.Path == "/ro/x"), Is.True);
        h.Proxy.ReleaseDir(h.Request, ro.NodeId, dir.Fh);
    }

    [Test]
    public void Mount_points_are_served_by_their_mount_and_guarded_in_the_parent()
    {
        var h = new ProxyHarness(("/", false), ("/tmp", false));
        Assert.That(h.Lookup(Root, "tmp", out FuseEntryOut tmp), Is.EqualTo(Errno.OK), "the parent mount has no /tmp, the mount table does");
        Assert.That(tmp.Attr.Mode & LibC.S_IFMT, Is.EqualTo(LibC.S_IFDIR));
        (ulong file, ulong fh) = h.Create(tmp.NodeId, "in-tmp");
        h.Proxy.Release(h.Request, file, fh, 0);
        Assert.That(h.Backends[1].NodeCount, Is.GreaterThan(1), "the file lives in the /tmp mount's backend");

        Assert.That(h.Proxy.Rename(h.Request, tmp.NodeId, ProxyHarness.N("in-tmp"), Root, ProxyHarness.N("moved"), 0), Is.EqualTo(Errno.EXDEV));
        Assert.That(h.Proxy.Link(h.Request, file, Root, ProxyHarness.N("hard"), out _), Is.EqualTo(Errno.EXDEV));
        Assert.That(h.Proxy.RmDir(h.Request, Root, ProxyHarness.N("tmp")), Is.EqualTo(Errno.EBUSY));
        Assert.That(h.Proxy.MkDir(h.Request, Root, ProxyHarness.N("tmp"), 0x1ED, 0, out _), Is.EqualTo(Errno.EEXIST));
        Assert.That(h.Proxy.Rename(h.Request, Root, ProxyHarness.N("tmp"), Root, ProxyHarness.N("tmp2"), 0), Is.EqualTo(Errno.EBUSY));
    }

    [Test]
    public void Forbidden_entries_are_left_out_of_listings()
    {
        var h = new ProxyHarness(("/", false));
        foreach (string name in new[] { "visible", "shadow", "also-visible" })
        {
            (ulong n, ulong fh) = h.Create(Root, name);
            h.Proxy.Release(h.Request, n, fh, 0);
        }

        h.Gate.Classifier = p => p == "/shadow" ? PathClass.Forbidden : PathClass.Allowed;
        Assert.That(h.List(Root, plus: false), Is.EquivalentTo(new[] { ".", "..", "visible", "also-visible" }));
        Assert.That(h.List(Root, plus: true), Is.EquivalentTo(new[] { ".", "..", "visible", "also-visible" }));
    }

    [Test]
    public void Readdirplus_counts_as_a_lookup_of_each_entry()
    {
        var h = new ProxyHarness(("/", false));
        ulong dir = h.MkDir(Root, "d");
        for (int i = 0; i < 50; i++)
        {
            (ulong n, ulong fh) = h.Create(dir, "f" + i);
            h.Proxy.Release(h.Request, n, fh, 0);
            h.Proxy.Forget(n, 1);
        }

        int before = h.Proxy.LiveNodes;
        Assert.That(h.List(dir, plus: true), Has.Count.EqualTo(52));
        Assert.That(h.Proxy.LiveNodes, Is.EqualTo(before + 50), "each plus entry holds one kernel reference until FORGET");
    }

    [Test]
    public void Renaming_a_directory_moves_the_paths_of_everything_below_it()
    {
        var h = new ProxyHarness(("/", false));
        ulong a = h.MkDir(Root, "a");
        ulong b = h.MkDir(a, "b");
        (ulong file, ulong fh) = h.Create(b, "f");
        h.Proxy.Release(h.Request, file, fh, 0);
        Assert.That(h.Proxy.Rename(h.Request, Root, ProxyHarness.N("a"), Root, ProxyHarness.N("z"), 0), Is.EqualTo(Errno.OK));

        h.Gate.Recorded.Clear();
        Assert.That(h.Proxy.Open(h.Request, file, LibC.O_RDONLY, 0, out FuseOpenOut open), Is.EqualTo(Errno.OK));
        h.Proxy.Release(h.Request, file, open.Fh, 0);
        Assert.That(h.Gate.Recorded.First(e => e.Op == FsOp.Open).Path, Is.EqualTo("/z/b/f"));
    }

    [Test]
    public void Exec_opens_are_marked_and_the_first_write_is_an_event_of_its_own()
    {
        var h = new ProxyHarness(("/", false));
        (ulong file, ulong fh) = h.Create(Root, "tool");
        Assert.That(h.Proxy.Write(h.Request, file, fh, 0, new byte[100], 0, out int n1), Is.EqualTo(Errno.OK));
        Assert.That(h.Proxy.Write(h.Request, file, fh, 100, new byte[50], 0, out int n2), Is.EqualTo(Errno.OK));
        Assert.That(n1 + n2, Is.EqualTo(150));
        h.Proxy.Release(h.Request, file, fh, 0);
        Assert.That(h.Gate.Recorded.Count(e => e.Op == FsOp.Write), Is.EqualTo(1));
        Assert.That(h.Gate.Recorded.Single(e => e.Op == FsOp.Release).Size, Is.EqualTo(150));

        Assert.That(h.Proxy.Open(h.Request, file, LibC.O_RDONLY | LibC.FMODE_EXEC, 0, out FuseOpenOut exec), Is.EqualTo(Errno.OK));
        Assert.That(h.Gate.Recorded.Last(e => e.Op == FsOp.Open).IsExec, Is.True);
        h.Proxy.Release(h.Request, file, exec.Fh, 0);
    }

    [Test]
    public void Bad_names_from_the_kernel_are_refused()
    {
        var h = new ProxyHarness(("/", false));
        (ulong node, ulong fh) = h.Create(Root, "ok");
        h.Proxy.Release(h.Request, node, fh, 0);
        Assert.That(h.Lookup(Root, "ok", out _), Is.EqualTo(Errno.OK), "the positive control");
        // The kernel's answer for such a single name (lookup_noperm_common), the same as every backend's (EntryName).
        Assert.That(h.Lookup(Root, "..", out _), Is.EqualTo(Errno.EACCES));
        Assert.That(h.Lookup(Root, ".", out _), Is.EqualTo(Errno.EACCES));
        Assert.That(h.Lookup(Root, "a/b", out _), Is.EqualTo(Errno.EACCES));
        Assert.That(h.Lookup(Root, "", out _), Is.EqualTo(Errno.EACCES));
        Assert.That(h.Lookup(Root, new string('x', 256), out _), Is.EqualTo(Errno.ENAMETOOLONG));
        Assert.That(h.Lookup(999, "x", out _), Is.EqualTo(Errno.ESTALE), "unknown parent nodeid");
    }
}
