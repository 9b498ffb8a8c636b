using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Policy;
using InSpatialFs.TestKit;

namespace InSpatialFs.Proxy.Tests.Stack;

/// <summary>
/// DirectFS mounts (README "Where the kernel or privileges refuse passthrough"): with kernel passthrough, opens the
/// policy allows direct are answered FOPEN_PASSTHROUGH with one backing id per inode, closed at the last RELEASE;
/// where the kernel cannot register backing files the same opens are served by the daemon, READ by splice (the
/// default `direct: spliced`) or by pread (`direct: proxied`). Memory mounts are not in this fixture: they offer
/// passthrough only with their private tmpfs, which needs a privilege these tests do not have to hold.
/// </summary>
[TestFixture(Backend.Host)]
[TestFixture(Backend.Overlay)]
public sealed class IoModeStackTests(Backend backend)
{
    private const ulong Root = StackHarness.Root;

    private static readonly byte[] Content = [.. Enumerable.Range(0, 64 * 1024).Select(i => (byte)(i * 31))];

    /// <summary>The standard level with its default allow_direct: opens and creates (not exec) may be direct.</summary>
    private StackHarness Stack(bool kernelPassthrough, bool copyFallback = false, bool direct = true) => new(new StackOptions
    {
        Mounts = [new("/", backend, Direct: direct)],
        Security = new SecurityOptions { Level = IsolationLevel.Standard },
        KernelPassthrough = kernelPassthrough,
        CopyFallback = copyFallback,
    });

    [Test]
    public void Without_kernel_passthrough_direct_opens_are_served_by_the_daemon_and_reads_are_spliced()
    {
        using var h = Stack(kernelPassthrough: false);
        FrameSender k = h.Fuse;
        Assert.That(h.DirectModeName, Is.EqualTo("spliced"));
        (ulong file, ulong created, FuseOpenOut createOpen) = k.NewFile(Root, "data", Content);
        Assert.That((createOpen.OpenFlags & FopenFlags.Passthrough, createOpen.BackingId), Is.EqualTo((FopenFlags.None, 0)));
        Assert.That(k.Release(file, created).Error, Is.EqualTo(Errno.OK));

        FuseOpenOut open = k.Open(file, LibC.O_RDONLY).As<FuseOpenOut>();
        Assert.That((open.OpenFlags & FopenFlags.Passthrough, open.BackingId), Is.EqualTo((FopenFlags.None, 0)));
        Assert.That(h.OpenHandles, Is.EqualTo(1));
        int splicedBefore = h.Kernel.Transport.SplicedReplies;
        Assert.That(k.ReadBytes(file, open.Fh, 0, (uint)Content.Length), Is.EqualTo(Content));
        Assert.That(h.Kernel.Transport.SplicedReplies, Is.EqualTo(splicedBefore + 1), "the READ reply came through the splice pipe");

        Assert.That(k.Release(file, open.Fh).Error, Is.EqualTo(Errno.OK));
        Assert.That(h.OpenHandles, Is.Zero, "every handle is released");
        Assert.That(k.Read(file, open.Fh, 0, 16).Error, Is.EqualTo(Errno.EBADF), "a released handle is gone");
        FsEvent release = h.Events().Last(e => e.Op == FsOp.Release);
        Assert.That(release.Size, Is.EqualTo(Content.Length), "spliced bytes count at RELEASE");
    }

    [Test]
    public void With_the_copy_fallback_reads_are_copied_not_spliced()
    {
        using var h = Stack(kernelPassthrough: false, copyFallback: true);
        FrameSender k = h.Fuse;
        Assert.That(h.DirectModeName, Is.EqualTo("proxied"));
        ulong file = k.ClosedFile(Root, "data", Content);
        ulong fh = k.OpenFh(file, LibC.O_RDONLY);
        Assert.That(k.ReadBytes(file, fh, 4096, 8192), Is.EqualTo(Content[4096..12288]), "the data is right");
        Assert.That(h.Kernel.Transport.SplicedReplies, Is.Zero, "and it was copied");
        Assert.That(k.Release(file, fh).Error, Is.EqualTo(Errno.OK));
        Assert.That(h.OpenHandles, Is.Zero);
    }

    [Test]
    public void With_kernel_passthrough_opens_share_one_backing_id_per_inode_released_with_the_last_handle()
    {
        using var h = Stack(kernelPassthrough: true);
        FrameSender k = h.Fuse;
        Assert.That(h.DirectModeName, Is.EqualTo("kernel-passthrough"));
        (ulong file, ulong created, FuseOpenOut createOpen) = k.NewFile(Root, "data");
        Assert.That(createOpen.OpenFlags & FopenFlags.Passthrough, Is.EqualTo(FopenFlags.Passthrough), "a create on a direct mount is passthrough");
        Assert.That(createOpen.BackingId, Is.GreaterThan(0));
        Assert.That(h.Registrar!.Live, Is.EquivalentTo(new[] { createOpen.BackingId }));

        FuseOpenOut reader = k.Open(file, LibC.O_RDONLY).As<FuseOpenOut>();
        Assert.That(reader.OpenFlags & FopenFlags.Passthrough, Is.EqualTo(FopenFlags.Passthrough));
        Assert.That(reader.BackingId, Is.EqualTo(createOpen.BackingId), "one backing file per inode");
        Assert.That(h.OpenHandles, Is.EqualTo(2));

        Assert.That(k.Release(file, created).Error, Is.EqualTo(Errno.OK));
        Assert.That(h.Registrar.Live, Has.Count.EqualTo(1), "still open once");
        Assert.That(k.Release(file, reader.Fh).Error, Is.EqualTo(Errno.OK));
        Assert.That(h.Registrar.Live, Is.Empty, "the last release closes the backing id");
        Assert.That(h.OpenHandles, Is.Zero);
    }

    [Test]
    public void An_exec_open_is_mediated_and_keeps_later_opens_of_the_inode_mediated_until_it_is_released()
    {
        using var h = Stack(kernelPassthrough: true);
        FrameSender k = h.Fuse;
        ulong file = k.ClosedFile(Root, "tool", Content);
        FuseOpenOut exec = k.Open(file, LibC.O_RDONLY | LibC.FMODE_EXEC).As<FuseOpenOut>();
        Assert.That(exec.OpenFlags & FopenFlags.Passthrough, Is.EqualTo(FopenFlags.None), "exec opens are never direct");
        FuseOpenOut reader = k.Open(file, LibC.O_RDONLY).As<FuseOpenOut>();
        Assert.That(reader.OpenFlags & FopenFlags.Passthrough, Is.EqualTo(FopenFlags.None), "the inode is in cached mode");
        Assert.That(k.ReadBytes(file, reader.Fh, 0, 100), Is.EqualTo(Content[..100]));
        Assert.That(h.Registrar!.Live, Is.Empty);

        Assert.That(k.Release(file, reader.Fh).Error, Is.EqualTo(Errno.OK));
        Assert.That(k.Release(file, exec.Fh).Error, Is.EqualTo(Errno.OK));
        FuseOpenOut again = k.Open(file, LibC.O_RDONLY).As<FuseOpenOut>();
        Assert.That(again.OpenFlags & FopenFlags.Passthrough, Is.EqualTo(FopenFlags.Passthrough), "positive control: passthrough once the mediated opens are gone");
        Assert.That(k.Release(file, again.Fh).Error, Is.EqualTo(Errno.OK));
        Assert.That((h.OpenHandles, h.Registrar.Live.Count), Is.EqualTo((0, 0)));
    }

    [Test]
    public void A_mount_without_direct_is_never_passthrough_even_where_the_kernel_could()
    {
        using var h = Stack(kernelPassthrough: true, direct: false);
        FrameSender k = h.Fuse;
        (ulong file, ulong fh, FuseOpenOut open) = k.NewFile(Root, "plain", Content);
        Assert.That((open.OpenFlags & FopenFlags.Passthrough, open.BackingId), Is.EqualTo((FopenFlags.None, 0)));
        Assert.That(k.ReadBytes(file, fh, 0, 10), Is.EqualTo(Content[..10]), "served by the daemon");
        Assert.That(h.Kernel.Transport.SplicedReplies, Is.Zero, "no splice outside direct mounts");
        Assert.That(k.Release(file, fh).Error, Is.EqualTo(Errno.OK));
        Assert.That((h.OpenHandles, h.Registrar!.Live.Count), Is.EqualTo((0, 0)));
    }
}
