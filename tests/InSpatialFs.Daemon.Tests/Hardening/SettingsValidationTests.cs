using InSpatialFs.Daemon.Cli;
using InSpatialFs.Daemon.Config;
using InSpatialFs.Daemon.Runtime;
using InSpatialFs.Security.Policy;
using RuntimeWrittenExec = InSpatialFs.Security.Policy.RuntimeWrittenExec;

namespace InSpatialFs.Daemon.Tests.Hardening;

/// <summary>
/// Issue 10, "Trusts names and overrides": one validation for every source of settings. The same value is refused
/// (or accepted) whether it comes from a config file, the quick-form flags or a flag that overrides a file.
/// </summary>
[TestFixture]
public sealed class SettingsValidationTests
{
    private string _dir = null!;
    private string _source = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(Path.GetTempPath(), "isfs-settings-" + Guid.NewGuid().ToString("N")[..8]);
        _source = Path.Combine(_dir, "image");
        Directory.CreateDirectory(_source);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, true);

    private string ConfigFile(string extra = "", string mountpoint = "/srv/settings/web")
    {
        string path = Path.Combine(_dir, "web.yaml");
        File.WriteAllText(path, $"""
            name: web
            mountpoint: {mountpoint}
            mounts:
              - {"{"} path: /, source: {_source} {"}"}
            {extra}
            """);
        return path;
    }

    private static InstanceConfig Build(MountRequest r) => MountRunner.BuildConfig(r);

    [TestCase("../../x")]
    [TestCase("..")]
    [TestCase(".")]
    [TestCase("")]
    [TestCase("a/b")]
    [TestCase("with space")]
    [TestCase("esc\u001b[31m")]
    [TestCase("new\nline")]
    [TestCase("x12345678901234567890123456789012345678901234567890123456789012345")]
    public void A_name_that_is_not_one_path_component_is_refused_from_every_source(string name)
    {
        Assert.Multiple(() =>
        {
            Assert.That(() => Build(new MountRequest { ConfigFile = ConfigFile(), Name = name }),
                Throws.TypeOf<ConfigException>().With.Message.Contains("--name").And.Message.Contains("1-64 characters"), "--name over a config file");
            Assert.That(() => Build(new MountRequest { Memory = true, MountPoint = "/srv/settings/m", Name = name }),
                Throws.TypeOf<ConfigException>().With.Message.Contains("--name"), "--name in the quick form");
            Assert.That(() => ConfigLoader.Load($"name: \"{name.Replace("\n", "\\n", StringComparison.Ordinal).Replace("\u001b", "\\e", StringComparison.Ordinal)}\"\nmountpoint: /srv/settings/web\nmounts: [{{ path: /, source: {_source} }}]\n", "web.yaml"),
                Throws.TypeOf<ConfigException>().With.Property(nameof(ConfigException.Line)).EqualTo(1).And.Message.Contains("1-64 characters"), "name: in the file");
        });

        // Positive control: a valid name passes all three.
        Assert.That(Build(new MountRequest { ConfigFile = ConfigFile(), Name = "web-2.a_b" }).Name, Is.EqualTo("web-2.a_b"));
        Assert.That(Build(new MountRequest { Memory = true, MountPoint = "/srv/settings/m", Name = "web-2.a_b" }).Name, Is.EqualTo("web-2.a_b"));
    }

    [Test]
    public void A_mountpoint_whose_base_name_is_no_valid_name_needs_an_explicit_name()
    {
        Assert.That(() => Build(new MountRequest { Memory = true, MountPoint = "/srv/settings/has space" }),
            Throws.TypeOf<ConfigException>().With.Message.Contains("give --name"));
        Assert.That(Build(new MountRequest { Memory = true, MountPoint = "/srv/settings/has space", Name = "ok" }).Name, Is.EqualTo("ok"));
    }

    [Test]
    public void An_overridden_name_moves_the_default_control_and_state_directories_but_not_explicit_ones()
    {
        InstanceConfig moved = Build(new MountRequest { ConfigFile = ConfigFile(), Name = "other" });
        Assert.That((moved.Name, moved.Control, moved.StateDir), Is.EqualTo(("other", "/run/inspatialfs/other", "/var/lib/inspatialfs/other")));

        InstanceConfig kept = Build(new MountRequest { ConfigFile = ConfigFile("control: /run/custom-ctl\nstate_dir: /var/lib/custom-state"), Name = "other" });
        Assert.That((kept.Name, kept.Control, kept.StateDir), Is.EqualTo(("other", "/run/custom-ctl", "/var/lib/custom-state")));

        InstanceConfig fromFile = Build(new MountRequest { ConfigFile = ConfigFile() });
        Assert.That((fromFile.Name, fromFile.Control), Is.EqualTo(("web", "/run/inspatialfs/web")));
    }

    [Test]
    public void A_command_line_mountpoint_inside_its_own_source_is_refused_like_the_same_value_in_the_file()
    {
        string inside = Path.Combine(_source, "mnt");
        Assert.That(() => Build(new MountRequest { ConfigFile = ConfigFile(mountpoint: inside) }),
            Throws.TypeOf<ConfigException>().With.Message.Contains("contains the mountpoint").And.Property(nameof(ConfigException.Line)).GreaterThan(0));
        Assert.That(() => Build(new MountRequest { ConfigFile = ConfigFile(), MountPoint = inside }),
            Throws.TypeOf<ConfigException>().With.Message.Contains("contains the mountpoint"));
        Assert.That(() => Build(new MountRequest { Source = _source, MountPoint = inside }),
            Throws.TypeOf<ConfigException>().With.Message.Contains("contains the mountpoint"));
        Assert.That(Build(new MountRequest { ConfigFile = ConfigFile(), MountPoint = "/srv/settings/elsewhere" }).Mountpoint, Is.EqualTo("/srv/settings/elsewhere"));
    }

    [Test]
    public void A_source_inside_the_mountpoint_is_refused()
    {
        Assert.That(() => Build(new MountRequest { ConfigFile = ConfigFile(), MountPoint = _dir }),
            Throws.TypeOf<ConfigException>().With.Message.Contains("lies inside the mountpoint"));
    }

    [TestCase("state_dir: {0}/state", "state directory")]
    [TestCase("control: {0}/ctl", "control directory")]
    public void State_and_control_directories_inside_a_source_are_refused_with_their_position(string line, string what)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load($"""
            name: web
            mountpoint: /srv/settings/web
            mounts:
              - {"{"} path: /, source: {_source} {"}"}
            {string.Format(System.Globalization.CultureInfo.InvariantCulture, line, _source)}
            """, "web.yaml"));
        Assert.That((e!.Line, e.Reason), Is.EqualTo((5, e.Reason)));
        Assert.That(e.Reason, Does.Contain(what).And.Contain("inside the source"));
        Assert.That(() => Build(new MountRequest { ConfigFile = ConfigFile(), StateDir = Path.Combine(_source, "st") }),
            Throws.TypeOf<ConfigException>().With.Message.StartsWith("command line: --state-dir"));
    }

    [Test]
    public void A_state_directory_under_the_mountpoint_or_a_symlinked_spelling_of_a_source_is_refused()
    {
        Assert.That(() => Build(new MountRequest { ConfigFile = ConfigFile(), StateDir = "/srv/settings/web/state" }),
            Throws.TypeOf<ConfigException>().With.Message.Contains("under the mountpoint"));

        string alias = Path.Combine(_dir, "alias");
        Directory.CreateSymbolicLink(alias, _source);
        Assert.That(() => Build(new MountRequest { ConfigFile = ConfigFile(), StateDir = Path.Combine(alias, "state") }),
            Throws.TypeOf<ConfigException>().With.Message.Contains("inside the source"), "the same directory through a symlink");
        Assert.That(Build(new MountRequest { ConfigFile = ConfigFile(), StateDir = Path.Combine(_dir, "state") }).StateDir, Is.EqualTo(Path.Combine(_dir, "state")));
    }

    [Test]
    public void Each_controls_key_relaxes_with_the_same_warning_as_its_relax_flag()
    {
        (string Key, string Relax)[] pairs =
        [
            ("refuse_setuid: false", "setuid"), ("refuse_devices: false", "devices"), ("refuse_fifos_sockets: false", "fifos-sockets"),
            ("refuse_security_xattrs: false\n  refuse_all_xattr_writes: false", "xattrs"), ("restrict_hardlinks: false", "hardlinks"),
            ("restrict_symlinks: false", "symlinks"), ("allow_direct: true", "direct"), ("exec_runtime_written: allow", "exec"),
        ];
        foreach ((string key, string relax) in pairs)
        {
            InstanceConfig config = Build(new MountRequest { ConfigFile = ConfigFile($"isolation: maximum\ncontrols:\n  {key}") });
            InstanceConfig plain = Build(new MountRequest { ConfigFile = ConfigFile("isolation: maximum") });
            IReadOnlyList<string> fromKey = EffectiveControls.Resolve(Instance.BuildSecurityOptions(config, [])).Warnings;
            IReadOnlyList<string> fromFlag = EffectiveControls.Resolve(Instance.BuildSecurityOptions(plain, [relax])).Warnings;
            Assert.That(fromKey, Is.Not.Empty, key);
            Assert.That(fromKey, Is.EqualTo(fromFlag), $"controls: {key} vs --relax {relax}");
        }
    }

    [Test]
    public void Controls_can_tighten_silently_and_alert_is_a_distinct_value()
    {
        InstanceConfig config = Build(new MountRequest { ConfigFile = ConfigFile("controls:\n  refuse_fifos_sockets: true\n  restrict_hardlinks: true\n  exec_runtime_written: alert") });
        EffectiveControls c = EffectiveControls.Resolve(Instance.BuildSecurityOptions(config, []));
        Assert.That((c.RefuseFifosSockets, c.RestrictHardlinks, c.RuntimeWrittenExec, c.Warnings.Count), Is.EqualTo((true, true, RuntimeWrittenExec.Alert, 0)));
        InstanceConfig fromExec = Build(new MountRequest { ConfigFile = ConfigFile("exec: { runtime_written: alert }") });
        Assert.That(Instance.BuildSecurityOptions(fromExec, []).RuntimeWrittenExec, Is.EqualTo(RuntimeWrittenExec.Alert));
        Assert.That(() => Build(new MountRequest { ConfigFile = ConfigFile("exec: { runtime_written: deny }\ncontrols: { exec_runtime_written: allow }") }),
            Throws.TypeOf<ConfigException>().With.Message.Contains("give one"));
        Assert.That(() => Build(new MountRequest { ConfigFile = ConfigFile("controls: { refuse_setuid: maybe }") }),
            Throws.TypeOf<ConfigException>().With.Message.Contains("controls.refuse_setuid"));
    }
}
