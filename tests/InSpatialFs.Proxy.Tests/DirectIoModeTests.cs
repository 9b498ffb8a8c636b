using InSpatialFs.Fuse;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Security;
using InSpatialFs.Security.Events;
using InSpatialFs.Storage.Host;
using InSpatialFs.Storage.Mounts;
using Microsoft.Extensions.Logging.Abstractions;

namespace InSpatialFs.Proxy.Tests;

/// <summary>A registrar standing in for FUSE_DEV_IOC_BACKING_OPEN/CLOSE: hands out ids and remembers the live ones.</summary>
internal sealed class FakeBackingRegistrar : IBackingRegistrar
{
    private int _next;

    public HashSet<int> Live { get; } = [];

    public Errno Open(SafeFd fd, out int backingId)
    {
        backingId = ++_next;
        Live.Add(backingId);
        return Errno.OK;
    }

    public Errno Close(int backingId) => Live.Remove(backingId) ? Errno.OK : Errno.ENOENT;
}

/// <summary>
/// The kernel keeps one io mode per inode and fails open() with EIO when the daemon's answers mix them
/// (protocol reference §5). These tests drive the proxy over a DirectFS host mount and check that every
/// answer for one inode keeps to the mode it is in.
/// </summary>
[TestFixture]
[Category("Mount")]
public sealed class DirectIoModeTests
{
    private string _source = "";
    private HostFileSystem _host = null!;
    private SecureProxy _proxy = null!;
    private readonly RecordingGate _gate = new();
    private readonly FakeBackingRegistrar _registrar = new();
    private readonly FuseRequest _request = ProxyHarness.NewRequest(uid: 0, gid: 0, pid: 4242);

    [SetUp]
    public void MountDirectSource()
    {
        _source = Directory.CreateTempSubdirectory("inspatialfs-iomode-").FullName;
        _host = new HostFileSystem(_source, readOnly: false, NullLogger.Instance, direct: true);
        var table = MountTable.Create([new MountEntry("/", _host, ReadOnly: false, Direct: true, MountKind.Direct)]);
        _proxy = new SecureProxy(table, _gate, new ProxyOptions(), NullLogger.Instance);
        _proxy.Initialized(new FuseConnectionInfo { KernelMajor = 7, KernelMinor = 45, PassthroughEnabled = true, Backing = _registrar });
        // Like the standard level: direct for opens and creates, except exec opens.
        _gate.Decider = e => e.Op is FsOp.Open or FsOp.Create && !e.IsExec ? Verdict.AllowDirect : Verdict.Allow;
    }

    [TearDown]
    public void Cleanup()
    {
        _proxy.Dispose();
        _host.Dispose();
        Directory.Delete(_source, recursive: true);
    }

    private ulong CreateClosedFile(string name)
    {
        Assert.That(_proxy.Create(_request, 1, ProxyHarness.N(name), LibC.O_RDWR, 0x1ED, 0, out FuseEntryOut entry, out FuseOpenOut open), Is.EqualTo(Errno.OK));
        Assert.That(open.OpenFlags & FopenFlags.Passthrough, Is.EqualTo(FopenFlags.Passthrough), "a created file on a direct mount is passthrough");
        Assert.That(_proxy.Release(_request, entry.NodeId, open.Fh, 0), Is.EqualTo(Errno.OK));
        return entry.NodeId;
    }

    [Test]
    public void While_a_file_is_open_through_the_daemon_later_opens_are_not_passthrough()
    {
        ulong node = CreateClosedFile("busybox");
        Assert.That(_proxy.Open(_request, node, LibC.O_RDONLY | LibC.FMODE_EXEC, 0, out FuseOpenOut exec), Is.EqualTo(Errno.OK));
        Assert.That(exec.OpenFlags & FopenFlags.Passthrough, Is.EqualTo(FopenFlags.None), "an exec open is mediated");

        Assert.That(_proxy.Open(_request, node, LibC.O_RDONLY, 0, out FuseOpenOut reader), Is.EqualTo(Errno.OK));
        Assert.That(reader.OpenFlags & FopenFlags.Passthrough, Is.EqualTo(FopenFlags.None), "the inode is in cached mode: a passthrough answer would be EIO");
        Assert.That(reader.BackingId, Is.Zero);

        Assert.That(_proxy.Release(_request, node, reader.Fh, 0), Is.EqualTo(Errno.OK));
        Assert.That(_proxy.Release(_request, node, exec.Fh, 0), Is.EqualTo(Errno.OK));
        Assert.That(_proxy.Open(_request, node, LibC.O_RDONLY, 0, out FuseOpenOut again), Is.EqualTo(Errno.OK));
        Assert.That(again.OpenFlags & FopenFlags.Passthrough, Is.EqualTo(FopenFlags.Passthrough), "once the mediated opens are gone, passthrough is back");
        Assert.That(_proxy.Release(_request, node, again.Fh, 0), Is.EqualTo(Errno.OK));
        Assert.That(_registrar.Live, Is.Empty, "the last release closes the backing id");
    }

    [Test]
    public void While_a_file_is_in_passthrough_a_mediated_reader_joins_the_same_backing_file()
    {
        ulong node = CreateClosedFile("lib.so");
        Assert.That(_proxy.Open(_request, node, LibC.O_RDONLY, 0, out FuseOpenOut direct), Is.EqualTo(Errno.OK));
        Assert.That(direct.OpenFlags & FopenFlags.Passthrough, Is.EqualTo(FopenFlags.Passthrough));

        Assert.That(_proxy.Open(_request, node, LibC.O_RDONLY | LibC.FMODE_EXEC, 0, out FuseOpenOut exec), Is.EqualTo(Errno.OK));
        Assert.That(exec.OpenFlags & FopenFlags.Passthrough, Is.EqualTo(FopenFlags.Passthrough), "a plain answer would be EIO");
        Assert.That(exec.BackingId, Is.EqualTo(direct.BackingId), "one backing file per inode");

        Assert.That(_proxy.Release(_request, node, direct.Fh, 0), Is.EqualTo(Errno.OK));
        Assert.That(_registrar.Live, Has.Count.EqualTo(1), "still open once");
        Assert.That(_proxy.Release(_request, node, exec.Fh, 0), Is.EqualTo(Errno.OK));
        Assert.That(_registrar.Live, Is.Empty);
    }

    [Test]
    public void While_a_file_is_in_passthrough_a_write_the_level_keeps_mediated_is_ETXTBSY()
    {
        ulong node = CreateClosedFile("data");
        // Like the enhanced level: DirectFS read-only, writes go through the daemon.
        _gate.Decider = e => e.Op is FsOp.Open && !e.IsWrite ? Verdict.AllowDirect : Verdict.Allow;
        Assert.That(_proxy.Open(_request, node, LibC.O_RDONLY, 0, out FuseOpenOut reader), Is.EqualTo(Errno.OK));
        Assert.That(reader.OpenFlags & FopenFlags.Passthrough, Is.EqualTo(FopenFlags.Passthrough));

        Assert.That(_proxy.Open(_request, node, LibC.O_WRONLY, 0, out _), Is.EqualTo(Errno.ETXTBSY));
        Assert.That(_proxy.OpenHandles, Is.EqualTo(1), "the refused open leaves no handle behind");

        Assert.That(_proxy.Release(_request, node, reader.Fh, 0), Is.EqualTo(Errno.OK));
        Assert.That(_proxy.Open(_request, node, LibC.O_WRONLY, 0, out FuseOpenOut writer), Is.EqualTo(Errno.OK));
        Assert.That(writer.OpenFlags & FopenFlags.Passthrough, Is.EqualTo(FopenFlags.None), "with no passthrough open the write is mediated");
        Assert.That(_proxy.Release(_request, node, writer.Fh, 0), Is.EqualTo(Errno.OK));
    }

    [Test]
    public void An_O_TMPFILE_linked_into_the_tree_and_reopened_stays_mediated_while_its_first_descriptor_is_open()
    {
        Assert.That(_proxy.TmpFile(_request, 1, LibC.O_RDWR, 0x180, 0, out FuseEntryOut tmp, out FuseOpenOut first), Is.EqualTo(Errno.OK));
        Assert.That(first.OpenFlags & FopenFlags.Passthrough, Is.EqualTo(FopenFlags.None));
        Assert.That(_proxy.Open(_request, tmp.NodeId, LibC.O_RDONLY, 0, out FuseOpenOut second), Is.EqualTo(Errno.OK));
        Assert.That(second.OpenFlags & FopenFlags.Passthrough, Is.EqualTo(FopenFlags.None));
        Assert.That(_proxy.Release(_request, tmp.NodeId, second.Fh, 0), Is.EqualTo(Errno.OK));
        Assert.That(_proxy.Release(_request, tmp.NodeId, first.Fh, 0), Is.EqualTo(Errno.OK));
    }
}
