using System.Text;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.TestKit;

namespace InSpatialFs.Proxy.Tests.Stack;

/// <summary>
/// The kernel's references: every LOOKUP, CREATE, MKDIR and READDIRPLUS entry is one, FORGET (and BATCH_FORGET) gives
/// them back, and a node id the kernel no longer holds is unknown (ESTALE for GETATTR, never reused). An unlinked
/// file stays readable through its open handle until RELEASE.
/// </summary>
[TestFixture(Backend.Memory)]
[TestFixture(Backend.Host)]
[TestFixture(Backend.Overlay)]
public sealed class LookupCountStackTests(Backend backend)
{
    private const ulong Root = StackHarness.Root;

    private static byte[] B(string s) => Encoding.UTF8.GetBytes(s);

    private StackHarness Stack(Dictionary<string, byte[]>? seed = null) => new(new StackOptions { Mounts = [new("/", backend, Seed: seed)] });

    [Test]
    public void Two_lookups_need_two_forgets_before_the_node_is_gone()
    {
        using var h = Stack(new Dictionary<string, byte[]> { ["f"] = B("data") });
        FrameSender k = h.Fuse;
        ulong node = k.NodeOf(Root, "f");
        Assert.That(k.NodeOf(Root, "f"), Is.EqualTo(node), "a second lookup of the same name is the same node");
        Assert.That(h.LiveNodes, Is.EqualTo(2), "root and f");

        k.Forget(node, 1);
        Assert.That(k.Attr(node).Ino, Is.EqualTo(node), "one reference left: still known");
        k.Forget(node, 1);
        Assert.That(k.GetAttr(node).Error, Is.EqualTo(Errno.ESTALE), "both references given back: unknown");
        Assert.That(k.Open(node, LibC.O_RDONLY).Error, Is.EqualTo(Errno.ESTALE));
        Assert.That(h.LiveNodes, Is.EqualTo(1));

        ulong again = k.NodeOf(Root, "f");
        Assert.That(again, Is.Not.EqualTo(node), "node ids are never reused");
        Assert.That(k.Attr(again).Size, Is.EqualTo(4UL), "the file itself is untouched");
    }

    /// <summary>Nodes the mount's backend keeps (held, open, or aging): it holds what the proxy holds, no count of its own.</summary>
    private static int BackendNodes(StackHarness h) => h.Table.Entries[0].Backend switch
    {
        Storage.Memory.MemoryFileSystem m => m.NodeCount,
        Storage.Host.HostFileSystem host => host.NodeCount,
        Storage.Overlay.OverlayFileSystem o => o.NodeCount,
        var other => throw new InvalidOperationException(other.Kind),
    };

    [Test]
    public void The_backend_keeps_an_unlinked_node_exactly_as_long_as_the_kernel_holds_it()
    {
        using var h = Stack(new Dictionary<string, byte[]> { ["f"] = B("data") });
        FrameSender k = h.Fuse;
        ulong node = k.NodeOf(Root, "f");
        Assert.That(k.NodeOf(Root, "f"), Is.EqualTo(node));
        int held = BackendNodes(h);
        Assert.That(k.Unlink(Root, "f").Error, Is.EqualTo(Errno.OK));
        FuseAttr attr = k.Attr(node);
        Assert.That((attr.Nlink, attr.Size), Is.EqualTo((0u, 4UL)), "no name and no open file: the kernel's two lookups keep it");
        Assert.That(BackendNodes(h), Is.EqualTo(held), "still in the backend");

        k.Forget(node, 1);
        Assert.That(k.Attr(node).Nlink, Is.Zero, "one lookup left");
        k.Forget(node, 1);
        k.Call(FuseOpcode.StatFs, Root); // the FORGET above is processed (one reader, in order)
        Assert.That(k.GetAttr(node).Error, Is.EqualTo(Errno.ESTALE));
        Assert.That(BackendNodes(h), Is.EqualTo(held - 1), "the last FORGET released it in the backend too");
    }

    [Test]
    public void A_batch_forget_gives_back_the_counts_of_several_nodes_at_once()
    {
        using var h = Stack(new Dictionary<string, byte[]> { ["a"] = B("1"), ["b"] = B("2") });
        FrameSender k = h.Fuse;
        ulong a = k.NodeOf(Root, "a");
        k.NodeOf(Root, "a");
        k.NodeOf(Root, "a");
        ulong b = k.NodeOf(Root, "b");
        h.Kernel.Send(FuseOpcode.BatchForget, 0, FuseArgs.Of(new FuseBatchForgetIn { Count = 2 })
            .Struct(new FuseForgetOne { NodeId = a, Nlookup = 2 }).Struct(new FuseForgetOne { NodeId = b, Nlookup = 1 }));
        Assert.That(k.GetAttr(b).Error, Is.EqualTo(Errno.ESTALE), "b had one reference");
        Assert.That(k.Attr(a).Ino, Is.EqualTo(a), "a had three: one is left");
        k.Forget(a, 1);
        Assert.That(k.GetAttr(a).Error, Is.EqualTo(Errno.ESTALE));
    }

    [Test]
    public void Readdirplus_entries_are_references_the_kernel_forgets_like_lookups()
    {
        var seed = new Dictionary<string, byte[]> { ["d/x"] = B("x"), ["d/y"] = B("y"), ["d/z"] = B("z") };
        using var h = Stack(seed);
        FrameSender k = h.Fuse;
        ulong d = k.NodeOf(Root, "d");
        int before = h.LiveNodes;
        List<ListedEntry> listed = [.. k.List(d, plus: true).Where(e => e.Name is not ("." or ".."))];
        Assert.That(listed.Select(e => e.Name), Is.EquivalentTo(new[] { "x", "y", "z" }));
        Assert.That(listed.Select(e => e.Entry.NodeId), Is.All.Not.Zero, "each entry was handed out with a nodeid");
        Assert.That(listed.Select(e => e.Entry.NodeId), Is.Unique);
        Assert.That(h.LiveNodes, Is.EqualTo(before + 3));
        foreach (ListedEntry e in listed)
        {
            Assert.That(k.Attr(e.Entry.NodeId).Ino, Is.EqualTo(e.Entry.NodeId));
            Assert.That(e.Ino, Is.EqualTo(e.Entry.NodeId), "d_ino is the nodeid");
            k.Forget(e.Entry.NodeId, 1);
        }

        Assert.That(listed.Select(e => k.GetAttr(e.Entry.NodeId).Error), Is.All.EqualTo(Errno.ESTALE));
        Assert.That(h.LiveNodes, Is.EqualTo(before));
    }

    [Test]
    public void An_unlinked_file_stays_readable_and_writable_through_its_handle_until_release()
    {
        using var h = Stack();
        FrameSender k = h.Fuse;
        (ulong file, ulong fh, _) = k.NewFile(Root, "victim", B("still here"));
        string? hostFile = h.HostDirectory.TryGetValue("/", out string? dir) ? Path.Combine(dir, "victim") : null;
        if (hostFile is not null)
        {
            Assert.That(File.Exists(hostFile), Is.True, "positive control: the host file exists before the unlink");
        }

        Assert.That(k.Unlink(Root, "victim").Error, Is.EqualTo(Errno.OK));
        Assert.That(k.Lookup(Root, "victim").As<FuseEntryOut>().NodeId, Is.Zero, "the name is gone");
        Assert.That(k.ListNames(Root, plus: false), Does.Not.Contain("victim"));
        if (hostFile is not null)
        {
            Assert.That(File.Exists(hostFile), Is.False, "and gone from the host directory");
        }

        Assert.That(k.ReadBytes(file, fh, 0, 100), Is.EqualTo(B("still here")), "the open handle still reads");
        Assert.That(k.Write(file, fh, 10, B(" and more")).Error, Is.EqualTo(Errno.OK));
        Assert.That(k.ReadBytes(file, fh, 0, 100), Is.EqualTo(B("still here and more")));
        FuseAttr attr = k.Attr(file);
        Assert.That((attr.Nlink, attr.Size), Is.EqualTo((0u, 19UL)), "GETATTR of the held node: no links left");

        Assert.That(k.Release(file, fh).Error, Is.EqualTo(Errno.OK));
        Assert.That(k.Read(file, fh, 0, 100).Error, Is.EqualTo(Errno.EBADF), "after RELEASE the handle is gone");
        Assert.That(h.OpenHandles, Is.Zero);
        k.Forget(file, 1);
        Assert.That(k.GetAttr(file).Error, Is.EqualTo(Errno.ESTALE), "and after FORGET the node");
    }
}
