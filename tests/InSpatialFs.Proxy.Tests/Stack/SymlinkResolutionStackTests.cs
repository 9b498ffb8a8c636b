using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Security.Events;

namespace InSpatialFs.Proxy.Tests.Stack;

/// <summary>
/// Where a link leads (fs.link_resolved, which the symlink controls decide on), when it is made and when the kernel
/// reads it: the chain followed inside the namespace, across a nested mount, through "..", past components that do
/// not exist (taken as written), and "/.." for a chain that climbs above the root or loops.
/// </summary>
[TestFixture(Backend.Memory)]
[TestFixture(Backend.Host)]
[TestFixture(Backend.Overlay)]
public sealed class SymlinkResolutionStackTests(Backend backend)
{
    private const ulong Root = StackHarness.Root;

    [Test]
    public void Links_resolve_inside_the_namespace_when_made_and_when_read()
    {
        using var h = new StackHarness(new StackOptions { Mounts = [new("/", backend), new("/data/nested", backend)] });
        FrameSender k = h.Fuse;
        ulong a = StackHarness.Ok(k.MkDir(Root, "a")).As<FuseEntryOut>().NodeId;
        ulong b = StackHarness.Ok(k.MkDir(a, "b")).As<FuseEntryOut>().NodeId;
        StackHarness.Ok(k.Create(b, "f"));
        ulong nested = k.NodeOf(k.NodeOf(Root, "data"), "nested");
        ulong d = StackHarness.Ok(k.MkDir(nested, "d")).As<FuseEntryOut>().NodeId;

        // (directory, name, body, where it leads), made in this order: later links go through earlier ones.
        (ulong Dir, string Name, string Body, string Resolved)[] links =
        [
            (a, "up", "..", "/"),
            (b, "tofile", "f", "/a/b/f"),
            (a, "chain", "up/a/b/tofile", "/a/b/f"),
            (b, "rel", "../../a/./b/f", "/a/b/f"),
            (a, "abs", "/a/b", "/a/b"),
            (a, "missing", "nothere/x/../y", "/a/nothere/y"),
            (a, "through-missing", "nothere/../b/f", "/a/b/f"),
            (a, "viafile", "b/f/x", "/a/b/f/x"),
            (a, "escape", "../..", "/.."),
            (a, "up-escape", "up/..", "/.."),
            (a, "loop1", "loop2", "/a/loop2"), // loop2 does not exist yet: taken as written
            (a, "loop2", "loop1", "/a/loop2"), // resolved before it is made: loop1 leads to a loop2 not there yet
            (d, "back", "../../../a/b", "/a/b"),
            (a, "intonested", "/data/nested/d/back/tofile", "/a/b/f"),
            (a, "nested-root", "../data/nested", "/data/nested"),
        ];

        uint pid = 4_190_500;
        var made = new Dictionary<uint, (string Name, string Resolved)>();
        foreach ((ulong dir, string name, string body, string resolved) in links)
        {
            StackHarness.Ok(h.As(++pid).Symlink(dir, name, body));
            made[pid] = (name, resolved);
        }

        // Read back through READLINK, each under a pid of its own: now that both exist, loop1 and loop2 lead to each other
        // past the hop limit.
        var read = new Dictionary<uint, (string Name, string Resolved)>();
        foreach ((ulong dir, string name, _, string resolved) in links)
        {
            ulong node = k.NodeOf(dir, name);
            StackHarness.Ok(h.As(++pid).Call(FuseOpcode.ReadLink, node));
            read[pid] = (name, name is "loop1" or "loop2" ? "/.." : resolved);
        }

        IReadOnlyList<FsEvent> events = h.Events();
        Assert.Multiple(() =>
        {
            foreach ((FsOp op, Dictionary<uint, (string Name, string Resolved)> expected) in new[] { (FsOp.Symlink, made), (FsOp.ReadLink, read) })
            {
                foreach ((uint p, (string name, string resolved)) in expected)
                {
                    FsEvent? e = events.SingleOrDefault(x => x.Pid == p && x.Op == op);
                    Assert.That(e?.LinkResolved, Is.EqualTo(resolved), $"{op.Name()} of {name}");
                }
            }
        });
    }
}
