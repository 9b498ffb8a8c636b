using InSpatialFs.Daemon.Config;
using InSpatialFs.Security.Events;

namespace InSpatialFs.Daemon.Tests.Config;

[TestFixture]
public sealed class QuickConfigBuilderTests
{
    private static string[] L(params string[] items) => items;

    private string _src = null!;

    [SetUp]
    public void SetUp()
    {
        _src = Path.Combine(Path.GetTempPath(), "isfs-quick-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_src);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_src, true);

    [Test]
    public void Source_direct_and_memory_at_give_the_same_record_as_a_config_file()
    {
        var quick = QuickConfigBuilder.Build(new QuickOptions
        {
            Mountpoint = "/srv/web", Source = _src, Direct = true, MemoryAt = ["/tmp:64MiB", "/run:1M"],
            Isolation = "maximum", Forbid = ["/etc/shadow"],
        });
        Assert.Multiple(() =>
        {
            Assert.That(quick.Name, Is.EqualTo("web"));
            Assert.That(quick.Origin, Is.EqualTo("command line"));
            Assert.That(quick.Control, Is.EqualTo("/run/inspatialfs/web"));
            Assert.That(quick.Mounts, Is.EqualTo(new[]
            {
                new MountConfig("/", MountSourceKind.Host, _src, false, true, null),
                new MountConfig("/tmp", MountSourceKind.Memory, null, false, false, 64L << 20),
                new MountConfig("/run", MountSourceKind.Memory, null, false, false, 1L << 20),
            }));
            Assert.That(quick.Isolation, Is.EqualTo(IsolationLevel.Maximum));
            Assert.That(quick.Paths.Forbidden, Is.EqualTo(L("/etc/shadow")));
        });
        var fromFile = ConfigLoader.Load(
            $"mountpoint: /srv/web\nisolation: maximum\npaths: {{ forbidden: [/etc/shadow] }}\nmounts:\n  - {{ path: /, source: {_src}, direct: true }}\n" +
            "  - { path: /tmp, memory: { size: 64MiB } }\n  - { path: /run, memory: { size: 1M } }\n", "f.yaml");
        Assert.That(fromFile with { Origin = quick.Origin, Mounts = quick.Mounts, Paths = quick.Paths }, Is.EqualTo(quick));
        Assert.That(fromFile.Mounts, Is.EqualTo(quick.Mounts));
    }

    [Test]
    public void Memory_root_uses_the_given_or_default_size()
    {
        var cfg = QuickConfigBuilder.Build(new QuickOptions { Mountpoint = "/srv/m", Memory = true, MemorySize = "32MiB" });
        Assert.That(cfg.Mounts.Single(), Is.EqualTo(new MountConfig("/", MountSourceKind.Memory, null, false, false, 32L << 20)));
        cfg = QuickConfigBuilder.Build(new QuickOptions { Mountpoint = "/srv/m", Memory = true });
        Assert.That(cfg.Mounts.Single().MemorySize, Is.EqualTo(1L << 30));
    }

    [Test]
    public void Invalid_flag_combinations_are_refused_with_the_flag_named()
    {
        string Reason(QuickOptions o) => Assert.Throws<ConfigException>(() => QuickConfigBuilder.Build(o))!.Reason;
        Assert.Multiple(() =>
        {
            Assert.That(Reason(new QuickOptions { Mountpoint = "/srv/x" }), Does.Contain("exactly one of --source"));
            Assert.That(Reason(new QuickOptions { Mountpoint = "/srv/x", Source = _src, Memory = true }), Does.Contain("exactly one of --source"));
            Assert.That(Reason(new QuickOptions { Mountpoint = "/srv/x", Memory = true, Direct = true }), Does.Contain("--direct needs --source"));
            Assert.That(Reason(new QuickOptions { Mountpoint = "/srv/x", Memory = true, SourceReadOnly = true }), Does.Contain("--read-only (-o ro) needs --source"));
            Assert.That(Reason(new QuickOptions { Mountpoint = "srv/x", Source = _src }), Does.Contain("MOUNTPOINT 'srv/x' must be absolute"));
            Assert.That(Reason(new QuickOptions { Mountpoint = "/srv/x", Source = _src + "/missing" }), Does.Contain("does not exist"));
            Assert.That(Reason(new QuickOptions { Mountpoint = "/srv/x", Source = _src, MemoryAt = ["/tmp"] }), Does.Contain("PATH:SIZE"));
            Assert.That(Reason(new QuickOptions { Mountpoint = "/srv/x", Source = _src, MemoryAt = ["/tmp:huge"] }), Does.Contain("is not a size"));
            Assert.That(Reason(new QuickOptions { Mountpoint = "/srv/x", Source = _src, MemoryAt = ["/tmp:1M", "/tmp:2M"] }), Does.Contain("twice"));
            Assert.That(Reason(new QuickOptions { Mountpoint = "/srv/x", Source = _src, MemoryAt = ["/:1M"] }), Does.Contain("twice"));
            Assert.That(Reason(new QuickOptions { Mountpoint = "/srv/x", Source = _src, MemoryAt = ["tmp:1M"] }), Does.Contain("must be absolute"));
            Assert.That(Reason(new QuickOptions { Mountpoint = "/srv/x", Source = _src, Isolation = "lax" }), Does.Contain("--isolation"));
            Assert.That(Reason(new QuickOptions { Mountpoint = _src + "/mnt", Source = _src }), Does.Contain("contains the mountpoint"));
        });
    }
}
