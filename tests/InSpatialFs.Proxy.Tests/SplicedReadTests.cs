using InSpatialFs.Fuse;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Security;
using InSpatialFs.Security.Events;
using InSpatialFs.Proxy.Direct;
using InSpatialFs.Storage.Host;
using InSpatialFs.Storage.Mounts;
using Microsoft.Extensions.Logging.Abstractions;

namespace InSpatialFs.Proxy.Tests;

/// <summary>
/// Which READs the proxy serves by splice: DirectFS files the daemon serves itself (passthrough unavailable or an
/// open kept mediated), with --direct-fallback splice; never passthrough handles, other mounts, or copy mode. The
/// bytes moved still count towards the handle's RELEASE event.
/// </summary>
[TestFixture]
public sealed class SplicedReadTests
{
    private static readonly byte[] Content = [.. Enumerable.Range(0, 10_000).Select(i => (byte)(i * 7))];
    private string _source = "";
    private HostFileSystem _host = null!;
    private readonly RecordingGate _gate = new();
    private readonly FuseRequest _request = ProxyHarness.NewRequest(uid: 0, gid: 0, pid: 4242);

    /// <summary>
    /// Stands in for the protocol server: reads the leased range with pread (where the server would splice it), ends
    /// the lease and reports the bytes moved.
    /// </summary>
    private unsafe byte[] Splice(SecureProxy proxy, ulong fh, SplicedReadSource source)
    {
        byte[] buffer = new byte[source.Length];
        nint n;
        fixed (byte* p = buffer)
        {
            n = LibC.pread(source.Fd, p, buffer.Length, source.Offset);
        }

        source.Release();
        Assert.That((long)n, Is.GreaterThanOrEqualTo(0L), "the leased descriptor is readable");
        proxy.ReadSpliced(_request, fh, (int)n);
        return buffer[..(int)n];
    }

    [SetUp]
    public void CreateSource()
    {
        _source = Directory.CreateTempSubdirectory("inspatialfs-splice-proxy-").FullName;
        File.WriteAllBytes(Path.Combine(_source, "file"), Content);
        _host = new HostFileSystem(_source, readOnly: false, NullLogger.Instance, direct: true);
        _gate.Decider = e => e.Op is FsOp.Open && !e.IsExec ? Verdict.AllowDirect : Verdict.Allow;
    }

    [TearDown]
    public void Cleanup()
    {
        _host.Dispose();
        Directory.Delete(_source, recursive: true);
    }

    private SecureProxy Proxy(DirectMode fallback, bool direct = true, IBackingRegistrar? registrar = null)
    {
        var table = MountTable.Create([new MountEntry("/", _host, ReadOnly: false, Direct: direct, direct ? MountKind.Direct : MountKind.Host)]);
        var proxy = new SecureProxy(table, _gate, new ProxyOptions { DirectFallback = fallback }, NullLogger.Instance);
        proxy.Initialized(new FuseConnectionInfo { KernelMajor = 7, KernelMinor = 45, PassthroughEnabled = registrar != null, Backing = registrar });
        return proxy;
    }

    private (ulong Node, ulong Fh) OpenFile(SecureProxy proxy, int flags = LibC.O_RDONLY)
    {
        Assert.That(proxy.Lookup(_request, 1, ProxyHarness.N("file"), out FuseEntryOut entry), Is.EqualTo(Errno.OK));
        Assert.That(proxy.Open(_request, entry.NodeId, flags, 0, out FuseOpenOut open), Is.EqualTo(Errno.OK));
        return (entry.NodeId, open.Fh);
    }

    [Test]
    public void Without_passthrough_a_direct_file_is_read_by_splice_and_the_bytes_count_at_release()
    {
        SecureProxy proxy = Proxy(DirectMode.Spliced);
        Assert.That(proxy.SplicedReadsWanted, Is.True);
        Assert.That(proxy.DirectMode.DisplayName(), Is.EqualTo("spliced"));
        (ulong node, ulong fh) = OpenFile(proxy);
        Assert.That(proxy.TryReadSpliced(_request, node, fh, 9000, 4096, out SplicedReadSource source, out Errno result), Is.True);
        Assert.That(result, Is.EqualTo(Errno.OK));
        Assert.That((source.Offset, source.Length), Is.EqualTo((9000L, 4096)), "the range asked for, leased");
        Assert.That(Splice(proxy, fh, source), Is.EqualTo(Content[9000..]), "up to end of file");

        Assert.That(proxy.Release(_request, node, fh, 0), Is.EqualTo(Errno.OK));
        FsEvent release = _gate.Recorded.Last(e => e.Op == FsOp.Release);
        Assert.That(release.Size, Is.EqualTo(1000), "spliced bytes are counted like copied ones");
    }

    [Test]
    public void A_released_handle_is_no_longer_offered_for_splicing()
    {
        SecureProxy proxy = Proxy(DirectMode.Spliced);
        (ulong node, ulong fh) = OpenFile(proxy);
        Assert.That(proxy.TryReadSpliced(_request, node, fh, 0, 16, out SplicedReadSource source, out Errno result), Is.True);
        Assert.That(result, Is.EqualTo(Errno.OK), "the positive control");
        source.Release();
        Assert.That(proxy.Release(_request, node, fh, 0), Is.EqualTo(Errno.OK));
        Assert.That(proxy.TryReadSpliced(_request, node, fh, 0, 16, out _, out _), Is.False, "the handle is gone");
    }

    [Test]
    public void A_handle_that_is_not_open_gets_the_copy_path_which_answers_EBADF()
    {
        SecureProxy proxy = Proxy(DirectMode.Spliced);
        Assert.That(proxy.TryReadSpliced(_request, 1, 999, 0, 4096, out _, out _), Is.False);
        Assert.That(proxy.Read(_request, 1, 999, 0, new byte[16], out _), Is.EqualTo(Errno.EBADF));
    }

    [Test]
    public void With_the_copy_fallback_nothing_is_spliced()
    {
        SecureProxy proxy = Proxy(DirectMode.Proxied);
        Assert.That(proxy.SplicedReadsWanted, Is.False);
        Assert.That(proxy.DirectMode.DisplayName(), Is.EqualTo("proxied"));
        (ulong node, ulong fh) = OpenFile(proxy);
        Assert.That(proxy.TryReadSpliced(_request, node, fh, 0, 4096, out SplicedReadSource source, out _), Is.False);
        Assert.That(source.Fd, Is.EqualTo(-1), "nothing leased");
        Assert.That(proxy.Release(_request, node, fh, 0), Is.EqualTo(Errno.OK));
    }

    [Test]
    public void A_mount_that_is_not_direct_is_never_spliced()
    {
        SecureProxy proxy = Proxy(DirectMode.Spliced, direct: false);
        Assert.That(proxy.SplicedReadsWanted, Is.False, "no pipes are made for a proxy without direct mounts");
        (ulong node, ulong fh) = OpenFile(proxy);
        Assert.That(proxy.TryReadSpliced(_request, node, fh, 0, 4096, out _, out _), Is.False);
        Assert.That(proxy.Release(_request, node, fh, 0), Is.EqualTo(Errno.OK));
    }

    [Test]
    public void A_passthrough_handle_is_left_to_the_kernel_and_a_mediated_exec_open_is_spliced()
    {
        SecureProxy proxy = Proxy(DirectMode.Spliced, registrar: new FakeBackingRegistrar());
        Assert.That(proxy.DirectMode.DisplayName(), Is.EqualTo("kernel-passthrough"));
        (ulong node, ulong passthrough) = OpenFile(proxy);
        Assert.That(proxy.TryReadSpliced(_request, node, passthrough, 0, 4096, out _, out _), Is.False);
        Assert.That(proxy.Release(_request, node, passthrough, 0), Is.EqualTo(Errno.OK));

        (_, ulong exec) = OpenFile(proxy, LibC.O_RDONLY | LibC.FMODE_EXEC);
        Assert.That(proxy.TryReadSpliced(_request, node, exec, 0, 4096, out SplicedReadSource source, out Errno result), Is.True);
        Assert.That(result, Is.EqualTo(Errno.OK));
        Assert.That(Splice(proxy, exec, source), Is.EqualTo(Content[..4096]));
        Assert.That(proxy.Release(_request, node, exec, 0), Is.EqualTo(Errno.OK));
    }

    [Test]
    public void Kernel_passthrough_is_not_a_fallback()
    {
        var table = MountTable.Create([new MountEntry("/", _host, ReadOnly: false, Direct: true, MountKind.Direct)]);
        Assert.That(() => new SecureProxy(table, _gate, new ProxyOptions { DirectFallback = DirectMode.KernelPassthrough }, NullLogger.Instance),
            Throws.TypeOf<ArgumentOutOfRangeException>());
    }
}
