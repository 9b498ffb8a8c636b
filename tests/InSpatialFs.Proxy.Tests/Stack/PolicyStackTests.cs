using System.Text;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Security;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Policy;
using InSpatialFs.TestKit;

namespace InSpatialFs.Proxy.Tests.Stack;

/// <summary>Path classes decided by a real security manager, seen through FUSE replies and listings.</summary>
[TestFixture(Backend.Memory)]
[TestFixture(Backend.Host)]
[TestFixture(Backend.Overlay)]
public sealed class PolicyStackTests(Backend backend)
{
    private const ulong Root = StackHarness.Root;

    private static byte[] B(string s) => Encoding.UTF8.GetBytes(s);

    private StackHarness Stack(SecurityOptions security, Dictionary<string, byte[]> seed) =>
        new(new StackOptions { Mounts = [new("/", backend, Seed: seed)], Security = security });

    [Test]
    public void A_forbidden_path_is_EACCES_on_lookup_and_left_out_of_both_listings_while_its_sibling_is_listed()
    {
        var seed = new Dictionary<string, byte[]> { ["secret"] = B("key"), ["visible"] = B("hello"), ["dir/secret"] = B("nested key"), ["dir/plain"] = B("p") };
        using var h = Stack(new SecurityOptions { Forbidden = ["/secret", "/dir/secret"] }, seed);
        FrameSender k = h.Fuse;

        Assert.That(k.Lookup(Root, "secret").Error, Is.EqualTo(Errno.EACCES));
        Assert.That(k.Lookup(Root, "visible").As<FuseEntryOut>().NodeId, Is.Not.Zero, "the allowed sibling resolves");
        ulong dir = k.NodeOf(Root, "dir");
        Assert.That(k.Lookup(dir, "secret").Error, Is.EqualTo(Errno.EACCES));

        foreach (bool plus in new[] { false, true })
        {
            List<string> top = k.ListNames(Root, plus);
            Assert.That(top, Does.Contain("visible").And.Contain("dir"), plus ? "READDIRPLUS" : "READDIR");
            Assert.That(top, Does.Not.Contain("secret"), plus ? "READDIRPLUS" : "READDIR");
            List<string> inner = k.ListNames(dir, plus);
            Assert.That(inner, Does.Contain("plain"));
            Assert.That(inner, Does.Not.Contain("secret"));
        }

        FsEvent denied = h.Events().First(e => e.Op == FsOp.Lookup && e.Path == "/secret");
        Assert.That((denied.Decision, denied.Result, denied.Pid), Is.EqualTo((Decision.Deny, (int)Errno.EACCES, (int)StackHarness.DefaultPid)));
    }

    [Test]
    public void A_node_the_kernel_holds_is_EACCES_on_open_once_a_reload_forbids_its_path()
    {
        using var h = Stack(new SecurityOptions(), []);
        FrameSender k = h.Fuse;
        ulong doc = k.ClosedFile(Root, "doc", B("soon forbidden"));
        ulong other = k.ClosedFile(Root, "other", B("stays allowed"));
        Assert.That(k.Release(doc, k.OpenFh(doc, LibC.O_RDONLY)).Error, Is.EqualTo(Errno.OK), "allowed before the reload");

        h.ReplacePaths(forbidden: ["/doc"], readOnly: []);
        Assert.That(k.Open(doc, LibC.O_RDONLY).Error, Is.EqualTo(Errno.EACCES));
        Assert.That(k.Open(doc, LibC.O_RDWR).Error, Is.EqualTo(Errno.EACCES));
        Assert.That(k.Lookup(Root, "doc").Error, Is.EqualTo(Errno.EACCES));
        ulong fh = k.OpenFh(other, LibC.O_RDONLY);
        Assert.That(k.ReadBytes(other, fh, 0, 100), Is.EqualTo(B("stays allowed")), "the sibling is untouched");
        Assert.That(k.Release(other, fh).Error, Is.EqualTo(Errno.OK));
        Assert.That(h.OpenHandles, Is.Zero, "refused opens leave no handle");

        FsEvent open = h.Events().Last(e => e.Op == FsOp.Open && e.Path == "/doc");
        Assert.That((open.Decision, open.Result), Is.EqualTo((Decision.Deny, (int)Errno.EACCES)));
    }

    [Test]
    public void A_read_only_class_is_EROFS_on_every_write_open_and_read_opens_and_other_paths_work()
    {
        var seed = new Dictionary<string, byte[]> { ["etc/passwd"] = B("root:x:0:0"), ["var/log"] = B("") };
        using var h = Stack(new SecurityOptions { ReadOnly = ["/etc/**"] }, seed);
        FrameSender k = h.Fuse;
        ulong etc = k.NodeOf(Root, "etc");
        ulong passwd = k.NodeOf(etc, "passwd");

        Assert.That(k.Open(passwd, LibC.O_WRONLY).Error, Is.EqualTo(Errno.EROFS));
        Assert.That(k.Open(passwd, LibC.O_RDWR).Error, Is.EqualTo(Errno.EROFS));
        Assert.That(k.Open(passwd, LibC.O_RDONLY | LibC.O_TRUNC).Error, Is.EqualTo(Errno.EROFS));
        Assert.That(k.Create(etc, "shadow").Error, Is.EqualTo(Errno.EROFS));
        Assert.That(k.SetAttr(passwd, new FuseSetattrIn { Valid = (uint)FattrFlags.Size, Size = 0 }).Error, Is.EqualTo(Errno.EROFS));

        ulong fh = k.OpenFh(passwd, LibC.O_RDONLY);
        Assert.That(k.ReadBytes(passwd, fh, 0, 100), Is.EqualTo(B("root:x:0:0")), "read opens of the class work");
        Assert.That(k.Release(passwd, fh).Error, Is.EqualTo(Errno.OK));
        ulong log = k.NodeOf(k.NodeOf(Root, "var"), "log");
        ulong writer = k.OpenFh(log, LibC.O_WRONLY);
        Assert.That(k.Write(log, writer, 0, B("line")).Error, Is.EqualTo(Errno.OK), "a path outside the class is writable");
        Assert.That(k.Release(log, writer).Error, Is.EqualTo(Errno.OK));

        FsEvent refused = h.Events().First(e => e.Op == FsOp.Open && e.Path == "/etc/passwd");
        Assert.That((refused.Decision, refused.Result, refused.PolicyClass), Is.EqualTo((Decision.Deny, (int)Errno.EROFS, PathClass.ReadOnly)));
    }
}
