using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Policy;
using InSpatialFs.TestKit;

namespace InSpatialFs.Proxy.Tests.Stack;

/// <summary>
/// Quotas as the daemon documents them (README resources.*, SecureProxy's constructor): host and overlay mounts are
/// charged by the proxy per object, EDQUOT past resources.disk / resources.inodes; memory mounts enforce their own
/// size and inode limits, ENOSPC. Removing the last name gives the charge back.
/// </summary>
[TestFixture(Backend.Host)]
[TestFixture(Backend.Overlay)]
public sealed class HostQuotaStackTests(Backend backend)
{
    private const ulong Root = StackHarness.Root;

    private StackHarness Stack(ResourceLimits limits) => new(new StackOptions
    {
        Mounts = [new("/", backend)],
        Security = new SecurityOptions { Resources = limits },
    });

    [Test]
    public void Past_the_inode_quota_creates_are_EDQUOT_and_an_unlink_frees_one()
    {
        using var h = Stack(new ResourceLimits { Inodes = 3 });
        FrameSender k = h.Fuse;
        k.ClosedFile(Root, "a", [1]);
        k.NewDir(Root, "d");
        Assert.That(k.Symlink(Root, "l", "a").Error, Is.EqualTo(Errno.OK), "the third inode fits");

        Assert.That(k.Create(Root, "b").Error, Is.EqualTo(Errno.EDQUOT));
        Assert.That(k.MkDir(Root, "e").Error, Is.EqualTo(Errno.EDQUOT));
        Assert.That(k.Symlink(Root, "m", "a").Error, Is.EqualTo(Errno.EDQUOT));
        Assert.That(k.Lookup(Root, "b").As<FuseEntryOut>().NodeId, Is.Zero, "a refused create leaves no name");
        Assert.That(h.QuotaUsage("/").Inodes, Is.EqualTo(3));

        Assert.That(k.Unlink(Root, "a").Error, Is.EqualTo(Errno.OK));
        Assert.That(h.QuotaUsage("/").Inodes, Is.EqualTo(2), "the unlinked file's inode is given back");
        Assert.That(k.Create(Root, "b").Error, Is.EqualTo(Errno.OK), "and the next create fits");
        Assert.That(k.RmDir(Root, "d").Error, Is.EqualTo(Errno.OK));
        Assert.That(k.MkDir(Root, "e").Error, Is.EqualTo(Errno.OK), "an rmdir frees one too");

        FsEvent refused = h.Events().First(e => e.Op == FsOp.Create && e.Path == "/b");
        Assert.That(refused.Result, Is.EqualTo((int)Errno.EDQUOT), "the refused create is an event with its errno");
    }

    [Test]
    public void Past_the_byte_quota_writes_are_EDQUOT_and_an_unlink_gives_the_blocks_back()
    {
        const int Kib = 1024;
        using var h = Stack(new ResourceLimits { DiskBytes = 128 * Kib });
        FrameSender k = h.Fuse;
        (ulong first, ulong firstFh, _) = k.NewFile(Root, "first", new byte[96 * Kib]);
        Assert.That(k.Release(first, firstFh).Error, Is.EqualTo(Errno.OK));
        long charged = h.QuotaUsage("/").Bytes;
        Assert.That(charged, Is.InRange(96L * Kib, 128L * Kib), "the written blocks are charged");

        (ulong second, ulong fh, _) = k.NewFile(Root, "second");
        Assert.That(k.Write(second, fh, 0, new byte[64 * Kib]).Error, Is.EqualTo(Errno.EDQUOT));
        Assert.That(k.Attr(second).Size, Is.Zero, "the refused write changed nothing");
        Assert.That(k.Write(second, fh, 0, new byte[16 * Kib]).Error, Is.EqualTo(Errno.OK), "what still fits is written");

        Assert.That(k.Unlink(Root, "first").Error, Is.EqualTo(Errno.OK));
        Assert.That(h.QuotaUsage("/").Bytes, Is.LessThan(charged), "the unlinked file's blocks are given back");
        Assert.That(k.Write(second, fh, 16 * Kib, new byte[64 * Kib]).Error, Is.EqualTo(Errno.OK), "and the write that was refused now fits");
        Assert.That(k.Release(second, fh).Error, Is.EqualTo(Errno.OK));

        FsEvent[] writes = [.. h.Events().Where(e => e.Op == FsOp.Write && e.Path == "/second")];
        Assert.That(writes.Select(e => e.Result), Does.Contain((int)Errno.EDQUOT), "the refused write is an event with its errno");
        Assert.That(writes.Select(e => e.Result), Does.Contain(0), "control: the first admitted write is one too");
    }

    [Test]
    public void A_file_unlinked_while_open_keeps_its_charge_until_its_last_release()
    {
        const int Kib = 1024;
        using var h = Stack(new ResourceLimits { DiskBytes = 128 * Kib });
        FrameSender k = h.Fuse;
        (ulong held, ulong heldFh, _) = k.NewFile(Root, "held", new byte[96 * Kib]);
        FuseReply second = k.Open(held, LibC.O_RDONLY);
        Assert.That(second.Error, Is.EqualTo(Errno.OK));
        Assert.That(k.Unlink(Root, "held").Error, Is.EqualTo(Errno.OK));
        Assert.That(k.ReadBytes(held, heldFh, 0, 16), Has.Length.EqualTo(16), "the open file still holds its blocks");

        (ulong next, ulong nextFh, _) = k.NewFile(Root, "next");
        Assert.That(k.Write(next, nextFh, 0, new byte[96 * Kib]).Error, Is.EqualTo(Errno.EDQUOT), "the held blocks still count");
        Assert.That(k.Release(held, heldFh).Error, Is.EqualTo(Errno.OK));
        Assert.That(k.Write(next, nextFh, 0, new byte[96 * Kib]).Error, Is.EqualTo(Errno.EDQUOT), "one of two handles released: still held");
        Assert.That(k.Release(held, second.At<FuseOpenOut>(0).Fh).Error, Is.EqualTo(Errno.OK));
        Assert.That(k.Write(next, nextFh, 0, new byte[96 * Kib]).Error, Is.EqualTo(Errno.OK), "released: the blocks are free");
        Assert.That(k.Release(next, nextFh).Error, Is.EqualTo(Errno.OK));
    }
}

/// <summary>Memory mounts: the backend's own limits, ENOSPC (README resources.memory).</summary>
public sealed class MemoryQuotaStackTests
{
    private const ulong Root = StackHarness.Root;

    [Test]
    public void Past_the_inode_limit_creates_are_ENOSPC_and_an_unlink_frees_one()
    {
        using var h = new StackHarness(new StackOptions { Mounts = [new("/", Backend.Memory)], MemoryInodes = 4 });
        FrameSender k = h.Fuse;
        var made = new List<string>();
        var nodes = new List<ulong>();
        FuseReply last;
        while ((last = k.Create(Root, "f" + made.Count)).Error == Errno.OK && made.Count < 100)
        {
            ulong node = last.At<FuseEntryOut>(0).NodeId;
            Assert.That(k.Release(node, last.At<FuseOpenOut>(128).Fh).Error, Is.EqualTo(Errno.OK));
            made.Add("f" + made.Count);
            nodes.Add(node);
        }

        Assert.That(last.Error, Is.EqualTo(Errno.ENOSPC));
        Assert.That(made, Has.Count.InRange(1, 4), "the limit holds (the root may count as one)");
        Assert.That(k.Unlink(Root, made[0]).Error, Is.EqualTo(Errno.OK));
        k.Forget(nodes[0], 1); // as the kernel does once the unlinked dentry goes: the node is only then really gone
        Assert.That(k.Create(Root, "again").Error, Is.EqualTo(Errno.OK), "an unlink frees an inode");
    }

    [Test]
    public void Past_the_size_limit_writes_are_ENOSPC_and_an_unlink_frees_the_space()
    {
        const int Chunk = 64 * 1024;
        using var h = new StackHarness(new StackOptions { Mounts = [new("/", Backend.Memory)], MemorySize = 1 << 20 });
        FrameSender k = h.Fuse;
        (ulong file, ulong fh, _) = k.NewFile(Root, "big");
        long written = 0;
        FuseReply reply;
        while ((reply = k.Write(file, fh, written, new byte[Chunk])).Error == Errno.OK && written < 4 << 20)
        {
            uint n = reply.As<FuseWriteOut>().Size;
            Assert.That(n, Is.GreaterThan(0u), "a short write comes before ENOSPC, never an empty one");
            written += n;
        }

        Assert.That(reply.Error, Is.EqualTo(Errno.ENOSPC));
        Assert.That(written, Is.InRange(Chunk, 1 << 20), "the limit holds");
        Assert.That(k.Release(file, fh).Error, Is.EqualTo(Errno.OK));
        Assert.That(k.Unlink(Root, "big").Error, Is.EqualTo(Errno.OK));
        k.Forget(file, 1); // the kernel's last reference: only now may the memory go
        (ulong other, ulong otherFh, _) = k.NewFile(Root, "other", new byte[Chunk]);
        Assert.That(k.Release(other, otherFh).Error, Is.EqualTo(Errno.OK), "after the unlink the space is back");
    }
}
