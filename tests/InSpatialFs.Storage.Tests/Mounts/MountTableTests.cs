using InSpatialFs.Storage.Host;
using InSpatialFs.Storage.Mounts;
using Microsoft.Extensions.Logging.Abstractions;

namespace InSpatialFs.Storage.Tests.Mounts;

[TestFixture]
public sealed class MountTableTests
{
    private string _dir = null!;
    private readonly List<IFileSystemBackend> _backends = [];

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(Path.GetTempPath(), "isfs-mt-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void TearDown()
    {
        foreach (var b in _backends) b.Dispose();
        _backends.Clear();
        Directory.Delete(_dir, true);
    }

    private MountEntry Mount(string path, MountKind kind = MountKind.Host, bool ro = false)
    {
        var fs = new HostFileSystem(_dir, ro, NullLogger.Instance, direct: kind == MountKind.Direct);
        _backends.Add(fs);
        return new MountEntry(path, fs, ro, kind == MountKind.Direct, kind);
    }

    [Test]
    public void Longest_prefix_wins_and_gives_the_path_inside_the_mount()
    {
        var table = MountTable.Create([Mount("/"), Mount("/usr", MountKind.Direct, ro: true), Mount("/usr/local"), Mount("/tmp")]);
        Assert.Multiple(() =>
        {
            Assert.That(table.Resolve("/"), Is.EqualTo(new MountResolution(table.Entries[0], "")));
            Assert.That(table.Resolve("/etc/passwd"), Is.EqualTo(new MountResolution(table.Entries[0], "etc/passwd")));
            Assert.That(table.Resolve("/usr"), Is.EqualTo(new MountResolution(table.Entries[1], "")));
            Assert.That(table.Resolve("/usr/bin/sh"), Is.EqualTo(new MountResolution(table.Entries[1], "bin/sh")));
            Assert.That(table.Resolve("/usr/local/x"), Is.EqualTo(new MountResolution(table.Entries[2], "x")));
            Assert.That(table.Resolve("/usrx/y").Mount, Is.SameAs(table.Root), "a prefix must end at a component boundary");
            Assert.That(table.Resolve("/tmp").Mount.Path, Is.EqualTo("/tmp"));
        });
    }

    [Test]
    public void Mount_points_and_cross_mount_checks()
    {
        var table = MountTable.Create([Mount("/"), Mount("/usr"), Mount("/usr/local"), Mount("/tmp")]);
        Assert.Multiple(() =>
        {
            Assert.That(table.IsMountPoint("/usr"), Is.True);
            Assert.That(table.IsMountPoint("/"), Is.False);
            Assert.That(table.IsMountPoint("/usr/bin"), Is.False);
            Assert.That(table.MountAt("/tmp")!.Path, Is.EqualTo("/tmp"));
            Assert.That(table.ChildMountPoints("/").Select(m => m.Path), Is.EquivalentTo(RootChildren));
            Assert.That(table.ChildMountPoints("/usr").Select(m => m.Path), Is.EquivalentTo(UsrChildren));
            Assert.That(table.SameMount("/etc/a", "/var/b"), Is.True);
            Assert.That(table.SameMount("/etc/a", "/tmp/a"), Is.False, "rename across mounts gets EXDEV");
            Assert.That(table.SameMount("/usr/a", "/usr/local/a"), Is.False);
        });
    }

    private static readonly string[] RootChildren = ["/usr", "/tmp"];
    private static readonly string[] UsrChildren = ["/usr/local"];

    [TestCase("usr", "must be absolute")]
    [TestCase("/usr/", "must not end with '/'")]
    [TestCase("/usr//bin", "'//'")]
    [TestCase("/usr/../etc", "normalized")]
    [TestCase("/./usr", "normalized")]
    [TestCase("", "empty")]
    public void Invalid_paths_are_refused_with_the_reason(string path, string reason)
    {
        var ex = Assert.Throws<ArgumentException>(() => MountTable.Create([Mount("/"), Mount(path)]));
        Assert.That(ex!.Message, Does.Contain(reason));
    }

    [Test]
    public void Duplicates_and_a_missing_root_are_refused()
    {
        Assert.That(() => MountTable.Create([Mount("/"), Mount("/tmp"), Mount("/tmp")]),
            Throws.ArgumentException.With.Message.Contains("twice"));
        Assert.That(() => MountTable.Create([Mount("/tmp")]),
            Throws.ArgumentException.With.Message.Contains("'/'"));
    }
}
