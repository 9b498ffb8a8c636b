using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Security;
using InSpatialFs.Security.Events;
using InSpatialFs.Storage;

namespace InSpatialFs.Proxy.Tests;

/// <summary>
/// Which answers the kernel may keep for long (issue 14): read-only mounts and read-only policy paths, not the rest; and
/// listings of writable directories, kept from one open to the next while the directory and the policy are unchanged.
/// </summary>
public sealed class KernelCacheTimeoutTests
{
    private const ulong Root = 1;
    private const ulong Hour = 3600;

    [Test]
    public void A_read_only_mount_gets_long_timeouts_keep_cache_and_cache_dir_and_a_writable_one_the_short_ones()
    {
        var h = new ProxyHarness(("/", false), ("/ro", true));
        Storage.Memory.MemoryFileSystem ro = h.Backends[1];
        Assert.That(ro.Create(ro.RootIno, ProxyHarness.N("f"), LibC.O_RDWR, 0x1A4, default(Caller), out FuseAttr made, out IOpenFile made2, out _), Is.EqualTo(Errno.OK));
        made2.Release();

        Assert.That(h.Lookup(Root, "ro", out FuseEntryOut roRoot), Is.EqualTo(Errno.OK));
        Assert.That((roRoot.EntryValid, roRoot.AttrValid), Is.EqualTo((Hour, Hour)), "the read-only mount's root");
        Assert.That(h.Lookup(roRoot.NodeId, "f", out FuseEntryOut f), Is.EqualTo(Errno.OK));
        Assert.That((f.EntryValid, f.AttrValid), Is.EqualTo((Hour, Hour)));
        Assert.That(h.Lookup(roRoot.NodeId, "missing", out FuseEntryOut negative), Is.EqualTo(Errno.OK));
        Assert.That((negative.NodeId, negative.EntryValid), Is.EqualTo((0UL, Hour)), "a missing name stays missing: only the host could add it");
        Assert.That(h.Proxy.GetAttr(h.Request, f.NodeId, null, out FuseAttrOut attr), Is.EqualTo(Errno.OK));
        Assert.That(attr.AttrValid, Is.EqualTo(Hour));
        Assert.That(h.Proxy.Open(h.Request, f.NodeId, LibC.O_RDONLY, 0, out FuseOpenOut open), Is.EqualTo(Errno.OK));
        Assert.That(open.OpenFlags & FopenFlags.KeepCache, Is.EqualTo(FopenFlags.KeepCache));
        Assert.That(h.Proxy.OpenDir(h.Request, roRoot.NodeId, 0, out FuseOpenOut dir), Is.EqualTo(Errno.OK));
        Assert.That(dir.OpenFlags & (FopenFlags.CacheDir | FopenFlags.KeepCache), Is.EqualTo(FopenFlags.CacheDir | FopenFlags.KeepCache));

        // The control: the writable mount keeps the 1 s timeouts and the kernel's default page handling.
        (ulong w, ulong fh) = h.Create(Root, "w");
        h.Proxy.Release(h.Request, w, fh, 0);
        Assert.That(h.Lookup(Root, "w", out FuseEntryOut writable), Is.EqualTo(Errno.OK));
        Assert.That((writable.EntryValid, writable.AttrValid), Is.EqualTo((1UL, 1UL)));
        Assert.That(h.Lookup(Root, "missing", out FuseEntryOut writableNegative), Is.EqualTo(Errno.OK));
        Assert.That(writableNegative.EntryValid, Is.EqualTo(1UL));
        Assert.That(h.Proxy.Open(h.Request, w, LibC.O_RDONLY, 0, out FuseOpenOut wOpen), Is.EqualTo(Errno.OK));
        Assert.That(wOpen.OpenFlags & FopenFlags.KeepCache, Is.EqualTo((FopenFlags)0));
    }

    [Test]
    public void A_writable_directory_keeps_its_cached_listing_only_while_it_and_the_policy_are_unchanged()
    {
        var h = new ProxyHarness(("/", false));
        ulong d = h.MkDir(Root, "d");
        FopenFlags OpenDir()
        {
            Assert.That(h.Proxy.OpenDir(h.Request, d, 0, out FuseOpenOut open), Is.EqualTo(Errno.OK));
            Assert.That(h.Proxy.ReleaseDir(h.Request, d, open.Fh), Is.EqualTo(Errno.OK));
            return open.OpenFlags & (FopenFlags.CacheDir | FopenFlags.KeepCache);
        }

        const FopenFlags Fill = FopenFlags.CacheDir, Keep = FopenFlags.CacheDir | FopenFlags.KeepCache;
        Assert.That(OpenDir(), Is.EqualTo(Fill), "the first open: the kernel may cache what it lists, and drops anything older");
        Assert.That(OpenDir(), Is.EqualTo(Keep), "unchanged since: the kernel keeps its copy");
        Assert.That(OpenDir(), Is.EqualTo(Keep));

        (ulong f, ulong fh) = h.Create(d, "f");
        h.Proxy.Release(h.Request, f, fh, 0);
        Assert.That(OpenDir(), Is.EqualTo(Fill), "a name added: the copy is dropped");
        Assert.That(OpenDir(), Is.EqualTo(Keep));

        Assert.That(h.Proxy.Rename(h.Request, d, ProxyHarness.N("f"), d, ProxyHarness.N("g"), 0), Is.EqualTo(Errno.OK));
        Assert.That(OpenDir(), Is.EqualTo(Fill), "a name renamed");
        Assert.That(h.Proxy.Unlink(h.Request, d, ProxyHarness.N("g")), Is.EqualTo(Errno.OK));
        Assert.That(OpenDir(), Is.EqualTo(Fill), "a name removed");
        Assert.That(OpenDir(), Is.EqualTo(Keep));

        h.Proxy.InvalidateKernelCaches("test", TimeSpan.Zero);
        Assert.That(OpenDir(), Is.EqualTo(Fill), "a policy change: what the old policy listed is not kept");
        Assert.That(OpenDir(), Is.EqualTo(Keep));
    }

    [Test]
    public void A_read_only_policy_path_is_cached_long_and_a_lookup_decided_before_an_invalidation_is_not_cached()
    {
        var h = new ProxyHarness(("/", false));
        h.MkDir(Root, "etc");
        (ulong other, ulong fh) = h.Create(Root, "other");
        h.Proxy.Release(h.Request, other, fh, 0);
        bool reloadDuringDecision = false;
        h.Gate.Decider = e =>
        {
            if (e.Path.StartsWith("/etc", StringComparison.Ordinal))
            {
                e.PolicyClass = PathClass.ReadOnly;
            }

            if (reloadDuringDecision)
            {
                h.Proxy.InvalidateKernelCaches("test", TimeSpan.Zero); // a reload racing this lookup
            }

            return Verdict.Allow;
        };

        Assert.That(h.Lookup(Root, "etc", out FuseEntryOut etc), Is.EqualTo(Errno.OK));
        Assert.That((etc.EntryValid, etc.AttrValid), Is.EqualTo((Hour, Hour)), "a read-only class on a writable mount");
        Assert.That(h.Lookup(Root, "other", out FuseEntryOut plain), Is.EqualTo(Errno.OK));
        Assert.That(plain.EntryValid, Is.EqualTo(1UL), "the control: no class, the short timeout");

        reloadDuringDecision = true;
        Assert.That(h.Lookup(Root, "etc", out FuseEntryOut raced), Is.EqualTo(Errno.OK));
        Assert.That((raced.EntryValid, raced.EntryValidNsec, raced.AttrValid, raced.AttrValidNsec), Is.EqualTo((0UL, 0u, 0UL, 0u)),
            "an answer of the old policy is not cached past the drop that was requested while it was decided");
        reloadDuringDecision = false;
        Assert.That(h.Lookup(Root, "etc", out FuseEntryOut after), Is.EqualTo(Errno.OK));
        Assert.That(after.EntryValid, Is.EqualTo(Hour), "answers decided after the drop are cached again");
    }
}
