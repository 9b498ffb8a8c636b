using System.Text;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Policy;
using InSpatialFs.TestKit;

namespace InSpatialFs.Proxy.Tests.Stack;

/// <summary>
/// Each operation, sent with a pid of its own, comes out of the security manager's event pipeline as one event with
/// that op, the namespace path, that pid and the errno the kernel was answered with.
/// </summary>
[TestFixture(Backend.Memory)]
[TestFixture(Backend.Host)]
[TestFixture(Backend.Overlay)]
public sealed class EventStackTests(Backend backend)
{
    private const ulong Root = StackHarness.Root;

    /// <summary>What one request should leave in the event stream.</summary>
    private sealed record Expected(uint Pid, FsOp Op, string Path, Errno Reply, string? Target = null);

    [Test]
    public void Every_operation_is_an_event_with_its_op_path_pid_and_result()
    {
        using var h = new StackHarness(new StackOptions { Mounts = [new("/", backend)], Security = new SecurityOptions { Forbidden = ["/d/forbidden"] } });
        var expected = new List<Expected>();
        uint nextPid = 4_190_100;
        FuseReply Send(FsOp op, string path, Func<FrameSender, FuseReply> request, string? target = null)
        {
            uint pid = nextPid++;
            FuseReply reply = request(h.As(pid));
            expected.Add(new Expected(pid, op, path, reply.Error, target));
            return reply;
        }

        ulong d = StackHarness.Ok(Send(FsOp.MkDir, "/d", k => k.MkDir(Root, "d"))).As<FuseEntryOut>().NodeId;
        FuseReply created = StackHarness.Ok(Send(FsOp.Create, "/d/f", k => k.Create(d, "f")));
        ulong f = created.At<FuseEntryOut>(0).NodeId, fh = created.At<FuseOpenOut>(128).Fh;
        StackHarness.Ok(Send(FsOp.Write, "/d/f", k => k.Write(f, fh, 0, Encoding.UTF8.GetBytes("0123456789"))));
        StackHarness.Ok(Send(FsOp.Release, "/d/f", k => k.Release(f, fh)));
        ulong reader = StackHarness.Ok(Send(FsOp.Open, "/d/f", k => k.Open(f, LibC.O_RDONLY))).As<FuseOpenOut>().Fh;
        StackHarness.Ok(h.Fuse.Read(f, reader, 0, 4));
        StackHarness.Ok(Send(FsOp.Release, "/d/f", k => k.Release(f, reader)));
        StackHarness.Ok(Send(FsOp.Chmod, "/d/f", k => k.SetAttr(f, new FuseSetattrIn { Valid = (uint)FattrFlags.Mode, Mode = LibC.S_IFREG | 0x180 })));
        StackHarness.Ok(Send(FsOp.Truncate, "/d/f", k => k.SetAttr(f, new FuseSetattrIn { Valid = (uint)FattrFlags.Size, Size = 5 })));
        StackHarness.Ok(Send(FsOp.Utimens, "/d/f", k => k.SetAttr(f, new FuseSetattrIn { Valid = (uint)(FattrFlags.AtimeNow | FattrFlags.MtimeNow) })));
        StackHarness.Ok(Send(FsOp.Symlink, "/d/l", k => k.Symlink(d, "l", "f")));
        StackHarness.Ok(Send(FsOp.Link, "/d/f", k => k.Link(f, d, "h"), target: "/d/h"));
        StackHarness.Ok(Send(FsOp.Rename, "/d/h", k => k.Rename(d, "h", d, "h2"), target: "/d/h2"));
        StackHarness.Ok(Send(FsOp.Unlink, "/d/h2", k => k.Unlink(d, "h2")));
        StackHarness.Ok(Send(FsOp.MkNod, "/d/fifo", k => k.MkNod(d, "fifo", LibC.S_IFIFO | 0x1A4)));
        Send(FsOp.Unlink, "/d/missing", k => k.Unlink(d, "missing"));
        Send(FsOp.RmDir, "/d", k => k.RmDir(Root, "d"));
        Send(FsOp.Lookup, "/d/forbidden", k => k.Lookup(d, "forbidden"));
        Send(FsOp.Create, "/d/forbidden", k => k.Create(d, "forbidden"));

        uint listPid = nextPid++;
        Assert.That(h.As(listPid).ListNames(d, plus: true), Does.Contain("f"));
        expected.Add(new Expected(listPid, FsOp.OpenDir, "/d", Errno.OK));
        expected.Add(new Expected(listPid, FsOp.ReadDir, "/d", Errno.OK));

        // What the replies were is part of the case: failures come out as failures.
        Assert.That(expected.Single(x => x.Path == "/d/missing").Reply, Is.EqualTo(Errno.ENOENT));
        Assert.That(expected.Single(x => x.Op == FsOp.RmDir).Reply, Is.EqualTo(Errno.ENOTEMPTY));
        Assert.That(expected.Where(x => x.Path == "/d/forbidden").Select(x => x.Reply), Is.All.EqualTo(Errno.EACCES));

        IReadOnlyList<FsEvent> events = h.Events();
        Assert.Multiple(() =>
        {
            foreach (Expected x in expected)
            {
                FsEvent[] found = [.. events.Where(e => e.Pid == x.Pid && e.Op == x.Op)];
                Assert.That(found, Has.Length.EqualTo(1), $"{x.Op.Name()} by pid {x.Pid}: one event");
                if (found.Length == 1)
                {
                    FsEvent e = found[0];
                    Assert.That((e.Path, e.Result, e.Target), Is.EqualTo((x.Path, (int)x.Reply, x.Target)), x.Op.Name());
                    Assert.That((e.Uid, e.Gid), Is.EqualTo((h.Uid, h.Gid)), x.Op.Name());
                    Assert.That(e.Decision == Decision.Deny, Is.EqualTo(x.Reply == Errno.EACCES), x.Op.Name() + " decision " + e.Decision);
                }
            }
        });

        // Positive control for the pid mapping: no event carries a pid that was not sent.
        var sent = expected.Select(x => (int)x.Pid).Append((int)StackHarness.DefaultPid).ToHashSet();
        Assert.That(events.Select(e => e.Pid).Where(p => !sent.Contains(p)), Is.Empty);
        FsEvent release = events.First(e => e.Op == FsOp.Release && e.Pid == expected.First(x => x.Op == FsOp.Release).Pid);
        Assert.That((release.Size, release.IsWrite), Is.EqualTo((10L, true)), "RELEASE reports the bytes written through the handle");
    }

    [Test]
    public void Allowed_lookups_and_attribute_reads_are_not_events_but_denied_lookups_are()
    {
        var seed = new Dictionary<string, byte[]> { ["open"] = [1], ["closed"] = [2] };
        using var h = new StackHarness(new StackOptions { Mounts = [new("/", backend, Seed: seed)], Security = new SecurityOptions { Forbidden = ["/closed"] } });
        FrameSender k = h.As(4_190_500);
        ulong node = k.NodeOf(Root, "open");
        k.Attr(node);
        Assert.That(k.Lookup(Root, "closed").Error, Is.EqualTo(Errno.EACCES));

        IReadOnlyList<FsEvent> events = h.Events();
        Assert.That(events.Where(e => e.Pid == 4_190_500).Select(e => (e.Op, e.Path)), Is.EqualTo(new[] { (FsOp.Lookup, "/closed") }),
            "documented (FsOpNames.EventsOnlyWhenDenied, NeverEvents): only the denial");
    }
}
