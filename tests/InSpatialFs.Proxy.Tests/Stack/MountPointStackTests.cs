using System.Text;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Security.Events;
using InSpatialFs.TestKit;

namespace InSpatialFs.Proxy.Tests.Stack;

/// <summary>Mount points through the whole stack: crossing into a nested mount, node ids, EXDEV, read-only mounts.</summary>
[TestFixture(Backend.Memory)]
[TestFixture(Backend.Host)]
[TestFixture(Backend.Overlay)]
public sealed class MountPointStackTests(Backend backend)
{
    private const ulong Root = StackHarness.Root;

    private static byte[] B(string s) => Encoding.UTF8.GetBytes(s);

    private StackHarness NestedStack() => new(new StackOptions { Mounts = [new("/", backend), new("/data/nested", backend)] });

    [Test]
    public void A_lookup_from_the_root_crosses_into_the_nested_mount_whose_files_live_in_its_own_backend()
    {
        using var h = NestedStack();
        FrameSender k = h.Fuse;
        ulong data = k.NodeOf(Root, "data"); // made at start with the mount point below it
        FuseEntryOut nested = k.Lookup(data, "nested").As<FuseEntryOut>();
        Assert.That(nested.NodeId, Is.Not.Zero.And.Not.EqualTo(data).And.Not.EqualTo(Root), "the mount table answers for /data/nested");
        Assert.That(nested.Attr.Mode & LibC.S_IFMT, Is.EqualTo(LibC.S_IFDIR));

        ulong inNested = k.ClosedFile(nested.NodeId, "f", B("nested"));
        ulong inRoot = k.ClosedFile(data, "f", B("root"));
        Assert.That(inNested, Is.Not.EqualTo(inRoot));
        Assert.That(k.Lookup(nested.NodeId, "f").As<FuseEntryOut>().NodeId, Is.EqualTo(inNested), "the nested name resolves in the nested mount");
        Assert.That(k.Lookup(data, "f").As<FuseEntryOut>().NodeId, Is.EqualTo(inRoot), "the root mount has its own f");
        Assert.That(k.Lookup(nested.NodeId, "only-in-root").As<FuseEntryOut>().NodeId, Is.Zero, "negative entry in the nested mount");

        Assert.That(k.ReadBytes(inNested, k.OpenFh(inNested, LibC.O_RDONLY), 0, 100), Is.EqualTo(B("nested")));
        Assert.That(k.ReadBytes(inRoot, k.OpenFh(inRoot, LibC.O_RDONLY), 0, 100), Is.EqualTo(B("root")));
        if (h.HostDirectory.TryGetValue("/data/nested", out string? nestedDir))
        {
            Assert.That(File.ReadAllBytes(Path.Combine(nestedDir, "f")), Is.EqualTo(B("nested")), "written into the nested mount's host directory");
            Assert.That(File.ReadAllBytes(Path.Combine(h.HostDirectory["/"], "data", "f")), Is.EqualTo(B("root")));
        }

        Assert.That(k.ListNames(nested.NodeId, plus: false), Is.EquivalentTo(new[] { ".", "..", "f" }));
    }

    [Test]
    public void Node_ids_are_distinct_across_mounts_whose_backends_number_their_inodes_alike()
    {
        using var h = NestedStack();
        FrameSender k = h.Fuse;
        ulong data = k.NodeOf(Root, "data"); // made at start with the mount point below it
        ulong nested = k.NodeOf(data, "nested");
        var nodes = new List<ulong>();
        for (int i = 0; i < 5; i++)
        {
            nodes.Add(k.ClosedFile(data, "r" + i, B("x")));
            nodes.Add(k.ClosedFile(nested, "n" + i, B("y")));
        }

        Assert.That(nodes, Is.Unique);
        foreach (ulong node in nodes)
        {
            Assert.That(k.Attr(node).Ino, Is.EqualTo(node), "st_ino is the nodeid, never a backend's own number");
        }

        // READDIRPLUS of each mount: every entry the kernel already holds is known by that same nodeid.
        List<ListedEntry> listed = [.. k.List(data, plus: true).Concat(k.List(nested, plus: true)).Where(e => e.Name is not ("." or ".." or "nested"))];
        Assert.That(listed.Select(e => e.Ino), Is.EquivalentTo(nodes));
    }

    [Test]
    public void A_mount_point_that_is_a_directory_of_the_parent_mount_is_listed_as_the_mounted_root()
    {
        var hidden = new Dictionary<string, byte[]> { ["data/nested/under-the-mount"] = B("hidden by the mount") };
        using var h = new StackHarness(new StackOptions { Mounts = [new("/", backend, Seed: hidden), new("/data/nested", backend)] });
        FrameSender k = h.Fuse;
        ulong data = k.NodeOf(Root, "data");
        ListedEntry nested = k.List(data, plus: true).Single(e => e.Name == "nested");
        Assert.That(nested.Entry.NodeId, Is.Not.Zero, "READDIRPLUS hands out the mount point");
        Assert.That(k.Lookup(data, "nested").As<FuseEntryOut>().NodeId, Is.EqualTo(nested.Entry.NodeId), "the same node a LOOKUP finds");
        Assert.That(k.ListNames(nested.Entry.NodeId, plus: false), Is.EquivalentTo(new[] { ".", ".." }), "it is the nested mount's root, not the parent's directory");
        Assert.That(k.ListNames(data, plus: false), Does.Contain("nested"));
    }

    [Test]
    public void A_mount_point_without_a_directory_in_the_parent_mount_is_listed_too()
    {
        using var h = new StackHarness(new StackOptions { Mounts = [new("/", backend), new("/mnt", backend), new("/deep/er/mount", backend)] });
        FrameSender k = h.Fuse;
        Assert.That(k.NodeOf(Root, "mnt"), Is.Not.Zero, "LOOKUP reaches it");
        Assert.That(k.ListNames(Root, plus: false), Does.Contain("mnt").And.Contain("deep"));
        Assert.That(k.ListNames(Root, plus: true), Does.Contain("mnt"));
        ulong er = k.NodeOf(k.NodeOf(Root, "deep"), "er");
        Assert.That(k.ListNames(er, plus: false), Does.Contain("mount"), "missing parents are made too");
        Assert.That(k.Attr(k.NodeOf(er, "mount")).Mode & LibC.S_IFMT, Is.EqualTo(LibC.S_IFDIR));
    }

    [Test]
    public void Under_a_read_only_parent_a_missing_mount_point_is_reached_by_name_only_and_nothing_is_made()
    {
        using var h = new StackHarness(new StackOptions { Mounts = [new("/", backend, ReadOnly: true), new("/mnt", backend)] });
        FrameSender k = h.Fuse;
        Assert.That(k.NodeOf(Root, "mnt"), Is.Not.Zero, "LOOKUP reaches it");
        Assert.That(k.ListNames(Root, plus: false), Does.Not.Contain("mnt"), "a read-only parent is not written to");
        Assert.That(k.ListNames(Root, plus: false), Does.Contain("."), "positive control: the listing itself works");
    }

    [Test]
    public void Rename_and_link_across_mounts_are_EXDEV_and_within_a_mount_they_work()
    {
        using var h = NestedStack();
        FrameSender k = h.Fuse;
        ulong data = k.NodeOf(Root, "data"); // made at start with the mount point below it
        ulong nested = k.NodeOf(data, "nested");
        ulong file = k.ClosedFile(nested, "f", B("payload"));

        Assert.That(k.Rename(nested, "f", data, "moved").Error, Is.EqualTo(Errno.EXDEV));
        Assert.That(k.Rename(data, "nested", Root, "nested2").Error, Is.EqualTo(Errno.EBUSY), "a mount point itself cannot move");
        Assert.That(k.Link(file, data, "hard").Error, Is.EqualTo(Errno.EXDEV));
        Assert.That(k.Lookup(data, "moved").As<FuseEntryOut>().NodeId, Is.Zero);
        Assert.That(k.Lookup(data, "hard").As<FuseEntryOut>().NodeId, Is.Zero);

        // Positive controls: the same operations inside the nested mount.
        Assert.That(k.Rename(nested, "f", nested, "moved").Error, Is.EqualTo(Errno.OK));
        Assert.That(k.Link(file, nested, "hard").Error, Is.EqualTo(Errno.OK));
        Assert.That(k.Attr(file).Nlink, Is.EqualTo(2u));
        Assert.That(k.ListNames(nested, plus: false), Is.EquivalentTo(new[] { ".", "..", "moved", "hard" }));
    }

    [Test]
    public void Every_write_class_op_on_a_read_only_mount_is_EROFS_and_reads_still_work()
    {
        var seed = new Dictionary<string, byte[]> { ["file"] = B("read-only data"), ["dir/inner"] = B("inner") };
        using var h = new StackHarness(new StackOptions { Mounts = [new("/", backend), new("/ro", backend, ReadOnly: true, Seed: seed)] });
        FrameSender k = h.Fuse;
        ulong ro = k.NodeOf(Root, "ro");
        ulong file = k.NodeOf(ro, "file");
        FuseAttr before = k.Attr(file);

        var refused = new Dictionary<string, FuseReply>
        {
            ["create"] = k.Create(ro, "new"),
            ["mkdir"] = k.MkDir(ro, "newdir"),
            ["mknod"] = k.MkNod(ro, "fifo", LibC.S_IFIFO | 0x1A4),
            ["symlink"] = k.Symlink(ro, "link", "file"),
            ["link"] = k.Link(file, ro, "hard"),
            ["unlink"] = k.Unlink(ro, "file"),
            ["rmdir"] = k.RmDir(ro, "dir"),
            ["rename"] = k.Rename(ro, "file", ro, "moved"),
            ["chmod"] = k.SetAttr(file, new FuseSetattrIn { Valid = (uint)FattrFlags.Mode, Mode = LibC.S_IFREG | 0x1FF }),
            ["chown"] = k.SetAttr(file, new FuseSetattrIn { Valid = (uint)(FattrFlags.Uid | FattrFlags.Gid), Uid = h.Uid, Gid = h.Gid }),
            ["truncate"] = k.SetAttr(file, new FuseSetattrIn { Valid = (uint)FattrFlags.Size, Size = 0 }),
            ["utimens"] = k.SetAttr(file, new FuseSetattrIn { Valid = (uint)(FattrFlags.AtimeNow | FattrFlags.MtimeNow) }),
            ["open O_WRONLY"] = k.Open(file, LibC.O_WRONLY),
            ["open O_RDWR"] = k.Open(file, LibC.O_RDWR),
            ["open O_TRUNC"] = k.Open(file, LibC.O_RDONLY | LibC.O_TRUNC),
            ["setxattr"] = k.SetXattr(file, "user.test", B("v")),
            ["removexattr"] = k.RemoveXattr(file, "user.test"),
            ["tmpfile"] = k.TmpFile(ro),
        };
        Assert.Multiple(() =>
        {
            foreach ((string op, FuseReply reply) in refused)
            {
                Assert.That(reply.Error, Is.EqualTo(Errno.EROFS), op);
            }
        });

        // Positive controls: reads work, nothing changed, and the writable mount takes the same ops.
        ulong fh = k.OpenFh(file, LibC.O_RDONLY);
        Assert.That(k.ReadBytes(file, fh, 0, 100), Is.EqualTo(B("read-only data")));
        Assert.That(k.Release(file, fh).Error, Is.EqualTo(Errno.OK));
        FuseAttr after = k.Attr(file);
        Assert.That((after.Size, after.Mode, after.Nlink, after.Mtime), Is.EqualTo((before.Size, before.Mode, before.Nlink, before.Mtime)));
        Assert.That(k.ListNames(ro, plus: true), Is.EquivalentTo(new[] { ".", "..", "file", "dir" }));
        Assert.That(k.Create(Root, "new").Error, Is.EqualTo(Errno.OK));
        Assert.That(k.MkDir(Root, "newdir").Error, Is.EqualTo(Errno.OK));

        FsEvent unlink = h.Events().Single(e => e.Op == FsOp.Unlink);
        Assert.That((unlink.Path, unlink.Decision, unlink.Result), Is.EqualTo(("/ro/file", Decision.Deny, (int)Errno.EROFS)));
    }
}
