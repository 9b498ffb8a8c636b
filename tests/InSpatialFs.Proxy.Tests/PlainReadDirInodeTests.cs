using System.Text;
using InSpatialFs.Fuse;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Host;
using InSpatialFs.Storage.Mounts;
using Microsoft.Extensions.Logging.Abstractions;

namespace InSpatialFs.Proxy.Tests;

/// <summary>
/// Plain READDIR (the kernel switches to it after the first READDIRPLUS batch) must never give d_ino 0: glibc's
/// readdir silently drops such entries, so `ls` and `find` on a host tree showed only the first ~200 names of
/// every directory. A known node's d_ino is its nodeid, the st_ino that stat reports.
/// </summary>
[TestFixture]
public sealed class PlainReadDirInodeTests
{
    private string _source = "";
    private HostFileSystem _host = null!;
    private SecureProxy _proxy = null!;
    private readonly FuseRequest _request = ProxyHarness.NewRequest(uid: 0, gid: 0, pid: 4242);

    [SetUp]
    public void MountHostSource()
    {
        _source = Directory.CreateTempSubdirectory("inspatialfs-dino-").FullName;
        for (int i = 0; i < 50; i++)
        {
            File.WriteAllText(Path.Combine(_source, $"host-{i}"), "");
        }

        _host = new HostFileSystem(_source, readOnly: false, NullLogger.Instance);
        _proxy = new SecureProxy(MountTable.Create([new MountEntry("/", _host, ReadOnly: false, Direct: false, MountKind.Host)]),
            new RecordingGate(), new ProxyOptions(), NullLogger.Instance);
    }

    [TearDown]
    public void Cleanup()
    {
        _proxy.Dispose();
        _host.Dispose();
        Directory.Delete(_source, recursive: true);
    }

    private Dictionary<string, ulong> ListPlain()
    {
        Assert.That(_proxy.OpenDir(_request, 1, 0, out FuseOpenOut open), Is.EqualTo(Errno.OK));
        var buffer = new byte[64 * 1024];
        var writer = new DirentWriter(buffer);
        Assert.That(_proxy.ReadDir(_request, 1, open.Fh, 0, plus: false, ref writer), Is.EqualTo(Errno.OK));
        var entries = new Dictionary<string, ulong>();
        for (int at = 0; at < writer.BytesWritten;)
        {
            int nameLength = BitConverter.ToInt32(buffer, at + 16);
            entries[Encoding.UTF8.GetString(buffer, at + 24, nameLength)] = BitConverter.ToUInt64(buffer, at);
            at += (24 + nameLength + 7) & ~7;
        }

        Assert.That(_proxy.ReleaseDir(_request, 1, open.Fh), Is.EqualTo(Errno.OK));
        return entries;
    }

    [Test]
    public void Entries_the_kernel_has_not_looked_up_get_a_nonzero_unknown_inode()
    {
        Dictionary<string, ulong> entries = ListPlain();
        Assert.That(entries.Keys.Where(n => n.StartsWith("host-", StringComparison.Ordinal)).Count(), Is.EqualTo(50));
        Assert.That(entries.Values, Is.All.Not.Zero, "glibc readdir skips d_ino 0");
        Assert.That(entries["host-7"], Is.EqualTo(SecureProxy.UnknownIno));
    }

    [Test]
    public void A_looked_up_entry_lists_with_the_inode_stat_reports()
    {
        Assert.That(_proxy.Lookup(_request, 1, ProxyHarness.N("host-7"), out FuseEntryOut entry), Is.EqualTo(Errno.OK));
        Assert.That(entry.Attr.Ino, Is.EqualTo(entry.NodeId));
        Assert.That(ListPlain()["host-7"], Is.EqualTo(entry.NodeId));
        Assert.That(ListPlain()["."], Is.EqualTo(1UL), "the directory itself is the root nodeid");
    }
}
