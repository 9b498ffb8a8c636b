using InSpatialFs.Daemon.Config;
using InSpatialFs.Security;
using InSpatialFs.Security.Events;

namespace InSpatialFs.Daemon.Tests.Config;

[TestFixture]
public sealed class ConfigLoaderTests
{
    private static string[] L(params string[] items) => items;

    private string _dir = null!;
    private string _images = null!;
    private string _usr = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(Path.GetTempPath(), "isfs-cfg-" + Guid.NewGuid().ToString("N"));
        _images = Path.Combine(_dir, "images", "busybox");
        _usr = Path.Combine(_images, "usr");
        Directory.CreateDirectory(_usr);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, true);

    private string Full => $"""
        name: web-1
        mountpoint: /var/lib/inspatial/web-1/rootfs
        control: /run/inspatialfs/web-1
        mounts:
          - {"{"} path: /,     source: {_images}, readonly: false {"}"}
          - {"{"} path: /usr,  source: {_usr}, readonly: true, direct: true {"}"}
          - {"{"} path: /tmp,  memory: {"{"} size: 64MiB {"}"} {"}"}
        isolation: enhanced
        paths:
          forbidden: [/etc/shadow, /root/.ssh/**]
          readonly:  [/usr/**]
          allowed:   [/tmp/**, /data/**]
        resources: {"{"} memory: 256MiB, disk: 1GiB, inodes: 100000, open_files: 4096,
                     ops_per_second: 20000, bytes_per_second: 200MiB {"}"}
        exec: {"{"} runtime_written: deny {"}"}
        response: {"{"} suspend_on: high {"}"}
        state_dir: /var/lib/inspatialfs/web-1
        container: {"{"} cgroup: /sys/fs/cgroup/web-1 {"}"}
        rules:
          files: [rules/custom.yaml, /etc/inspatialfs/rules.yaml]
        """;

    [Test]
    public void Full_config_of_the_issues_loads_into_the_record_tree()
    {
        var cfg = ConfigLoader.Load(Full, "/etc/inspatialfs/web-1.yaml");
        Assert.Multiple(() =>
        {
            Assert.That(cfg.Name, Is.EqualTo("web-1"));
            Assert.That(cfg.Mountpoint, Is.EqualTo("/var/lib/inspatial/web-1/rootfs"));
            Assert.That(cfg.Control, Is.EqualTo("/run/inspatialfs/web-1"));
            Assert.That(cfg.Mounts, Has.Count.EqualTo(3));
            Assert.That(cfg.Mounts[0], Is.EqualTo(new MountConfig("/", MountSourceKind.Host, _images, false, false, null)));
            Assert.That(cfg.Mounts[1], Is.EqualTo(new MountConfig("/usr", MountSourceKind.Host, _usr, true, true, null)));
            Assert.That(cfg.Mounts[2], Is.EqualTo(new MountConfig("/tmp", MountSourceKind.Memory, null, false, false, 64L << 20)));
            Assert.That(cfg.Isolation, Is.EqualTo(IsolationLevel.Enhanced));
            Assert.That(cfg.Paths.Forbidden, Is.EqualTo(L("/etc/shadow", "/root/.ssh/**")));
            Assert.That(cfg.Paths.ReadOnly, Is.EqualTo(L("/usr/**")));
            Assert.That(cfg.Paths.Allowed, Is.EqualTo(L("/tmp/**", "/data/**")));
            Assert.That(cfg.Resources, Is.EqualTo(new ResourcesConfig
            {
                Memory = 256L << 20, Disk = 1L << 30, Inodes = 100000, OpenFiles = 4096, OpsPerSecond = 20000, BytesPerSecond = 200L << 20,
            }));
            Assert.That(cfg.Exec.RuntimeWritten, Is.EqualTo(RuntimeWrittenExec.Deny));
            Assert.That(cfg.Response.SuspendOn, Is.EqualTo(Severity.High));
            Assert.That(cfg.StateDir, Is.EqualTo("/var/lib/inspatialfs/web-1"));
            Assert.That(cfg.Container.Cgroup, Is.EqualTo("/sys/fs/cgroup/web-1"));
            Assert.That(cfg.Rules.Files, Is.EqualTo(L("/etc/inspatialfs/rules/custom.yaml", "/etc/inspatialfs/rules.yaml")));
            Assert.That(cfg.Origin, Is.EqualTo("/etc/inspatialfs/web-1.yaml"));
        });
    }

    [Test]
    public void Defaults_name_control_and_state_dir_from_the_mountpoint()
    {
        var cfg = ConfigLoader.Load($"mountpoint: /srv/c1\nmounts:\n  - path: /\n    source: {_images}\n", "c.yaml");
        Assert.Multiple(() =>
        {
            Assert.That(cfg.Name, Is.EqualTo("c1"));
            Assert.That(cfg.Control, Is.EqualTo("/run/inspatialfs/c1"));
            Assert.That(cfg.StateDir, Is.EqualTo("/var/lib/inspatialfs/c1"));
            Assert.That(cfg.Isolation, Is.EqualTo(IsolationLevel.Standard));
            Assert.That(cfg.Response.SuspendOn, Is.Null);
            Assert.That(cfg.Resources.Memory, Is.Null);
            Assert.That(cfg.Exec.RuntimeWritten, Is.EqualTo(RuntimeWrittenExec.Default));
        });
    }

    private ConfigException Refused(string yaml) => Assert.Throws<ConfigException>(() => ConfigLoader.Load(yaml, "bad.yaml"))!;

    private string Base(string mountsBody) => $"mountpoint: /srv/c1\nmounts:\n{mountsBody}";

    [Test]
    public void Unknown_top_level_key_names_its_position_and_the_valid_keys()
    {
        var e = Refused(Base($"  - {{ path: /, source: {_images} }}\n") + "mount_point: /x\n");
        Assert.That(e.Line, Is.EqualTo(4));
        Assert.That(e.Column, Is.EqualTo(1));
        Assert.That(e.Reason, Does.Contain("unknown key 'mount_point'").And.Contain("valid keys: name, mountpoint"));
        Assert.That(e.Message, Does.StartWith("bad.yaml:4:1: "));
    }

    [Test]
    public void Unknown_key_inside_a_mount_is_refused_at_the_key()
    {
        var e = Refused(Base($"  - path: /\n    source: {_images}\n    writable: true\n"));
        Assert.That((e.Line, e.Column), Is.EqualTo((5, 5)));
        Assert.That(e.Reason, Does.Contain("unknown key 'writable' in a mount; valid keys: path, source, readonly, direct, memory"));
    }

    [Test]
    public void Mount_without_source_is_refused_at_the_mount()
    {
        var e = Refused(Base($"  - path: /\n    source: {_images}\n  - path: /data\n    readonly: true\n"));
        Assert.That((e.Line, e.Column), Is.EqualTo((5, 5)));
        Assert.That(e.Reason, Does.Contain("mount '/data' has no source"));
    }

    [Test]
    public void Non_existent_source_directory_is_refused_at_the_source()
    {
        var e = Refused(Base($"  - path: /\n    source: {_dir}/nope\n"));
        Assert.That((e.Line, e.Column), Is.EqualTo((4, 13)));
        Assert.That(e.Reason, Does.Contain("does not exist"));
    }

    [TestCase("usr", "must be absolute")]
    [TestCase("/usr/../etc", "normalized")]
    [TestCase("/usr/", "must not end with '/'")]
    [TestCase("/usr//lib", "'//'")]
    public void Relative_or_unnormalized_mount_paths_are_refused(string path, string reason)
    {
        var e = Refused(Base($"  - path: /\n    source: {_images}\n  - path: {path}\n    source: {_usr}\n"));
        Assert.That((e.Line, e.Column), Is.EqualTo((5, 11)));
        Assert.That(e.Reason, Does.Contain(reason));
    }

    [Test]
    public void Relative_source_and_mountpoint_are_refused()
    {
        var e = Refused(Base("  - path: /\n    source: images/busybox\n"));
        Assert.That((e.Line, e.Reason), Is.EqualTo((4, "source 'images/busybox' must be absolute")));
        e = Refused($"mountpoint: srv/c1\nmounts:\n  - {{ path: /, source: {_images} }}\n");
        Assert.That((e.Line, e.Column), Is.EqualTo((1, 13)));
    }

    [Test]
    public void The_same_mount_path_twice_is_refused_at_the_second()
    {
        var e = Refused(Base($"  - {{ path: /, source: {_images} }}\n  - {{ path: /usr, source: {_usr} }}\n  - {{ path: /usr, memory: {{ size: 1M }} }}\n"));
        Assert.That((e.Line, e.Column), Is.EqualTo((5, 13)));
        Assert.That(e.Reason, Does.Contain("given twice (first at line 4)"));
    }

    [Test]
    public void Mounts_without_root_are_refused()
    {
        var e = Refused(Base($"  - {{ path: /usr, source: {_usr} }}\n"));
        Assert.That(e.Line, Is.EqualTo(3));
        Assert.That(e.Reason, Does.Contain("'/'"));
    }

    [TestCase("64XB")]
    [TestCase("-1M")]
    [TestCase("lots")]
    [TestCase("0")]
    [TestCase("99999999999T")]
    public void Bad_sizes_are_refused(string size)
    {
        var e = Refused(Base($"  - {{ path: /, source: {_images} }}\n  - {{ path: /tmp, memory: {{ size: {size} }} }}\n"));
        Assert.That(e.Line, Is.EqualTo(4));
        Assert.That(e.Reason, Does.Contain("memory.size").And.Contain("is not a size"));
    }

    [TestCase("isolation: paranoid", "isolation: 'paranoid' is not one of standard, enhanced, maximum")]
    [TestCase("exec: { runtime_written: maybe }", "exec.runtime_written: 'maybe' is not one of allow, alert, deny")]
    [TestCase("response: { suspend_on: severe }", "response.suspend_on: 'severe' is not one of info, low, medium, high, critical")]
    [TestCase("resources: { inodes: many }", "resources.inodes: 'many' is not a positive whole number")]
    [TestCase("resources: { disk: 1 GiBs }", "resources.disk")]
    [TestCase("paths: { forbidden: [etc/shadow] }", "must be an absolute namespace path")]
    [TestCase("paths: { hidden: [/x] }", "unknown key 'hidden' in paths; valid keys: forbidden, readonly, allowed")]
    public void Bad_values_are_refused_on_their_line(string line, string reason)
    {
        var e = Refused(Base($"  - {{ path: /, source: {_images} }}\n") + line + "\n");
        Assert.That(e.Line, Is.EqualTo(4));
        Assert.That(e.Reason, Does.Contain(reason));
    }

    [Test]
    public void Bad_booleans_and_direct_memory_are_refused()
    {
        var e = Refused(Base($"  - {{ path: /, source: {_images}, readonly: sometimes }}\n"));
        Assert.That(e.Reason, Does.Contain("readonly: 'sometimes' is not true or false"));
        e = Refused(Base($"  - {{ path: /, source: {_images} }}\n  - {{ path: /tmp, direct: true, memory: {{ size: 1M }} }}\n"));
        Assert.That(e.Reason, Does.Contain("direct applies to host sources only"));
        e = Refused(Base($"  - {{ path: /, source: {_images}, memory: {{ size: 1M }} }}\n"));
        Assert.That(e.Reason, Does.Contain("both source and memory"));
    }

    [Test]
    public void Mountpoint_inside_its_own_source_and_control_inside_the_mountpoint_are_refused()
    {
        var e = Refused($"mountpoint: {_images}/mnt\nmounts:\n  - {{ path: /, source: {_images} }}\n");
        Assert.That(e.Reason, Does.Contain("would contain itself"));
        e = Refused($"mountpoint: /srv/c1\ncontrol: /srv/c1/ctl\nmounts:\n  - {{ path: /, source: {_images} }}\n");
        Assert.That((e.Line, e.Reason), Is.EqualTo((2, "the control directory /srv/c1/ctl must not lie inside the mountpoint /srv/c1")));
    }

    [Test]
    public void Missing_required_keys_and_bad_yaml_are_refused_with_positions()
    {
        var e = Refused($"mounts:\n  - {{ path: /, source: {_images} }}\n");
        Assert.That(e.Reason, Does.Contain("missing required key 'mountpoint'"));
        e = Refused("mountpoint: /srv/c1\n");
        Assert.That(e.Reason, Does.Contain("missing required key 'mounts'"));
        e = Refused("mountpoint: /srv/c1\nmounts: [ { path: / \n");
        Assert.That(e.Line, Is.GreaterThan(0));
        Assert.That(e.Reason, Does.StartWith("invalid YAML"));
        e = Refused("mountpoint: /a\nmountpoint: /b\n");
        Assert.That(e.Line, Is.EqualTo(2), "duplicate key");
        e = Refused("");
        Assert.That(e.Reason, Does.Contain("empty"));
    }

    [Test]
    public void LoadFile_names_the_file_in_errors()
    {
        string path = Path.Combine(_dir, "web.yaml");
        File.WriteAllText(path, "mountpoint: /srv/w\nbogus: 1\nmounts: []\n");
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.LoadFile(path))!;
        Assert.That(e.Message, Does.StartWith($"{path}:2:1: unknown key 'bogus'"));
        var missing = Assert.Throws<ConfigException>(() => ConfigLoader.LoadFile(Path.Combine(_dir, "none.yaml")))!;
        Assert.That(missing.Reason, Does.Contain("cannot read"));
    }

    [TestCase("4096", 4096L)]
    [TestCase("512K", 512L << 10)]
    [TestCase("64MiB", 64L << 20)]
    [TestCase("1GiB", 1L << 30)]
    [TestCase("2g", 2L << 30)]
    [TestCase("10MB", 10_000_000L)]
    [TestCase("1 TiB", 1L << 40)]
    public void Sizes_parse_binary_and_decimal_units(string text, long expected)
    {
        Assert.That(SizeParser.TryParse(text, out long n), Is.True);
        Assert.That(n, Is.EqualTo(expected));
    }
}
