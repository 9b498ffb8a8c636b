using System.Text.Json.Nodes;
using InSpatialFs.Daemon.Config;
using InSpatialFs.TestKit.Processes;
using Json.Schema;
using YamlDotNet.RepresentationModel;

namespace InSpatialFs.Daemon.Tests.Cli;

/// <summary>`inspatialfs config validate|print|schema` run as the built binary (issue 17): a config checked without mounting.</summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class ConfigCommandTests
{
    private string _dir = "";

    [OneTimeSetUp]
    public void RequireBinary()
    {
        if (!File.Exists(DaemonProcess.Binary))
        {
            Assert.Ignore($"{DaemonProcess.Binary} is missing (run `make build`)");
        }
    }

    [SetUp]
    public void CreateDirectory()
    {
        _dir = Path.Combine(Path.GetTempPath(), "inspatialfs-config-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Path.Combine(_dir, "root", "usr"));
    }

    [TearDown]
    public void RemoveDirectory() => Directory.Delete(_dir, recursive: true);

    private static ShellResult Config(string arguments) => Shell.Run($"'{DaemonProcess.Binary}' config {arguments}", TimeSpan.FromMinutes(1));

    private string Write(string name, string text)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, text.Replace("$D", _dir, StringComparison.Ordinal));
        return path;
    }

    private const string GoodRules = """
        - rule: Shell writes below etc
          desc: a shell creates a file below /etc
          condition: evt.op = create and fs.path startswith /etc/ and proc.name = sh
          output: "%proc.name created %fs.path"
          severity: warning
          actions: [alert]
        """;

    private const string Full = """
        name: web-1
        mountpoint: $D/mnt
        mounts:
          - { path: /,    source: $D/root }
          - { path: /usr, source: $D/root/usr, readonly: true, direct: true }
          - { path: /tmp, memory: { size: 64MiB } }
        isolation: enhanced
        paths: { forbidden: [/etc/shadow, "/root/.ssh/**"], readonly: ["/usr/**"], allowed: ["/tmp/**"] }
        resources: { memory: 256MiB, disk: 1GiB, inodes: 100000, open_files: 4096, ops_per_second: 20000, bytes_per_second: 200MiB }
        exec: { runtime_written: deny }
        controls: { refuse_devices: true, restrict_symlinks: true }
        response: { suspend_on: high }
        container: { cgroup: /inspatial/web-1, init_pid: 4242 }
        rules: { files: [extra.yaml], builtins: true }
        outputs:
          append: "container=web-1"
          queue: 64
          retry: { initial: 250ms, max: 10s, give_up: 2m }
          stdout: true
          file: { path: $D/alerts.jsonl, max_size: 1MiB, keep: 3 }
          syslog: { socket: /dev/log, facility: local3 }
          http: { url: "http://127.0.0.1:2801/", timeout: 2s, headers: { Authorization: "Bearer a:b" } }
          otlp: { endpoint: "http://127.0.0.1:4318", timeout: 3s }
        host_users: { root: read-only, others: none }
        incidents: { rate: 0.5, max_burst: 7, rotate_bytes: 4MiB, keep: 2 }
        metrics_listen: 127.0.0.1:9464
        io_uring: true
        """;

    [Test]
    public void Validate_accepts_a_good_config_and_its_rule_files_with_exit_0()
    {
        Write("extra.yaml", GoodRules);
        ShellResult r = Config($"validate '{Write("c.yaml", Full)}'");
        Assert.That(r.ExitCode, Is.Zero, r.ToString());
        Assert.That(r.StdOut, Does.Contain(": ok: instance 'web-1'").And.Contain("3 mount(s), 1 rule file(s)"));
        Assert.That(Directory.Exists(Path.Combine(_dir, "mnt")), Is.False, "validate mounts nothing (and creates nothing)");
    }

    [Test]
    public void Validate_reports_an_empty_or_comment_only_file_as_empty_with_exit_2()
    {
        foreach ((string name, string text) in new[] { ("empty.yaml", ""), ("comments.yaml", "# only a comment\n\n"), ("blank.yaml", "\n\n\n") })
        {
            string config = Write(name, text);
            ShellResult r = Config($"validate '{config}'");
            Assert.That(r.ExitCode, Is.EqualTo(2), r.ToString());
            Assert.That(r.StdErr, Does.Contain($"{config}:1:1: the configuration is empty"), r.ToString());
            Assert.That(r.StdErr, Does.Not.Contain("Exception"), r.ToString());
        }
    }

    [Test]
    public void Validate_positions_every_missing_rule_file_and_exits_2()
    {
        Write("extra.yaml", GoodRules);
        string config = Write("c.yaml", $"mountpoint: $D/mnt\nmounts: [{{ path: /, source: $D/root }}]\nrules:\n  files:\n    - extra.yaml\n    - gone.yaml\n    - /nonexistent/also.yaml\n");
        ShellResult r = Config($"validate '{config}'");
        Assert.That(r.ExitCode, Is.EqualTo(2), r.ToString());
        Assert.That(r.StdErr, Does.Contain($"{config}:6:7: rules.files: {_dir}/gone.yaml does not exist"));
        Assert.That(r.StdErr, Does.Contain($"{config}:7:7: rules.files: /nonexistent/also.yaml does not exist"));
        Assert.That(r.StdErr, Does.Not.Contain("extra.yaml does not exist"), "the file that exists is not reported");
    }

    [Test]
    public void Validate_reports_errors_inside_a_rule_file_at_their_position()
    {
        Write("bad.yaml", "- rule: Broken\n  desc: d\n  condition: evt.op = create and no.such.field = 1\n  output: x\n  severity: warning\n");
        ShellResult r = Config($"validate '{Write("c.yaml", "mountpoint: $D/mnt\nmounts: [{ path: /, source: $D/root }]\nrules: { files: [bad.yaml] }\n")}'");
        Assert.That(r.ExitCode, Is.EqualTo(2), r.ToString());
        Assert.That(r.StdErr, Does.Match($@"{_dir}/bad.yaml:3:\d+: error R\d+"));
    }

    [Test]
    public void Validate_reports_every_error_of_the_config_each_at_its_position()
    {
        string config = Write("c.yaml", """
            mistake: 1
            mountpoint: $D/mnt
            mounts:
              - { path: /, source: $D/root }
              - { path: /data, source: /nonexistent }
              - { path: /tmp, memory: { size: lots } }
            isolation: extreme
            resources: { disk: 1GiB, inodes: -3, bogus: 1 }
            paths:
              forbidden: [relative/path]
            outputs: { retry: { max: 5 } }
            """);
        ShellResult r = Config($"validate '{config}'");
        Assert.That(r.ExitCode, Is.EqualTo(2), r.ToString());
        string[] lines = r.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines.Select(l => l.Split(": ")[0]), Is.EqualTo(new[]
        {
            $"{config}:1:1", $"{config}:5:28", $"{config}:6:35", $"{config}:7:12", $"{config}:8:34", $"{config}:8:38", $"{config}:10:15", $"{config}:11:26", config,
        }), r.StdErr);
        Assert.That(lines[^1], Is.EqualTo($"{config}: invalid (8 error(s))"));

        // Positive control: the same file with the errors fixed is valid.
        string fixedConfig = Write("fixed.yaml", "mountpoint: $D/mnt\nmounts:\n  - { path: /, source: $D/root }\n  - { path: /tmp, memory: { size: 1MiB } }\nisolation: maximum\nresources: { disk: 1GiB, inodes: 3 }\npaths:\n  forbidden: [/relative/path]\noutputs: { retry: { max: 5s } }\n");
        Assert.That(Config($"validate '{fixedConfig}'").ExitCode, Is.Zero);
    }

    [Test]
    public void Validate_does_not_report_what_follows_from_an_earlier_error()
    {
        // The only mount at / is refused; "mounts must include a mount at /" would only follow from leaving it out.
        string config = Write("c.yaml", "mountpoint: $D/mnt\nmounts:\n  - { path: /, source: $D/absent }\nisolation: extreme\n");
        ShellResult r = Config($"validate '{config}'");
        Assert.That(r.ExitCode, Is.EqualTo(2), r.ToString());
        Assert.That(r.StdErr, Does.Contain($"{config}:3:24: source directory").And.Not.Contain("must include a mount"));
        // ... and what comes after the refused root mount is still read in the same run.
        Assert.That(r.StdErr, Does.Contain($"{config}:4:12: isolation: 'extreme'"), r.StdErr);
        Assert.That(r.StdErr, Does.Contain("invalid (2 error(s))"), r.StdErr);
    }

    [TestCase("mounts: [{ path: /, source: $D/absent }]\nmountpoint: $D/mnt\n", 1, 29, "source directory")]
    [TestCase("mountpoint: $D/mnt\nmounts: [{ path: /, source: $D/root }]\nisolation: extreme\n", 3, 12, "isolation: 'extreme'")]
    [TestCase("mountpoint: $D/mnt\nmounts: [{ path: /, source: $D/root }]\nresources: { disk: lots }\n", 3, 20, "resources.disk")]
    [TestCase("mountpoint: $D/mnt\nmounts: [{ path: /, source: $D/root }]\nmetrics_listen: localhost:80\n", 3, 17, "metrics_listen")]
    [TestCase("mountpoint: $D/mnt\nmounts: [{ path: /, source: $D/root }]\nio_uring: maybe\n", 3, 11, "io_uring")]
    [TestCase("mountpoint: $D/mnt\nmounts: [{ path: /, source: $D/root }]\nmistake: 1\n", 3, 1, "unknown key 'mistake'")]
    public void Validate_refuses_a_bad_config_with_its_position_and_exit_2(string yaml, int line, int column, string reason)
    {
        string config = Write("c.yaml", yaml);
        ShellResult r = Config($"validate '{config}'");
        Assert.That(r.ExitCode, Is.EqualTo(2), r.ToString());
        Assert.That(r.StdErr, Does.StartWith($"{config}:{line}:{column}: ").And.Contain(reason));
    }

    [Test]
    public void Print_writes_the_effective_config_that_loads_again_to_the_same_config()
    {
        Write("extra.yaml", GoodRules);
        string config = Write("c.yaml", Full);
        ShellResult r = Config($"print '{config}' --name web-2 --isolation maximum --state-dir {_dir}/state --rules {_dir}/extra.yaml");
        Assert.That(r.ExitCode, Is.Zero, r.ToString());
        Assert.That(r.StdOut, Does.Contain("name: web-2").And.Contain("control: /run/inspatialfs/web-2").And.Contain("isolation: maximum"));

        string printed = Write("printed.yaml", r.StdOut);
        InstanceConfig original = ConfigLoader.LoadFile(config, new ConfigOverrides { Name = "web-2", Isolation = "maximum", StateDir = _dir + "/state" });
        InstanceConfig again = ConfigLoader.LoadFile(printed);
        Assert.That(again.Rules.Files, Is.EqualTo(new[] { _dir + "/extra.yaml", _dir + "/extra.yaml" }), "the --rules file is added to rules.files");
        Assert.That(ConfigWriter.ToYaml(again with { Origin = original.Origin, Rules = original.Rules }), Is.EqualTo(ConfigWriter.ToYaml(original)),
            "printing the printed config changes nothing");
        Assert.That(again.Mounts, Is.EqualTo(original.Mounts).Using<MountConfig>((a, b) => a.Path == b.Path && a.Kind == b.Kind && a.Source == b.Source && a.ReadOnly == b.ReadOnly && a.Direct == b.Direct && a.MemorySize == b.MemorySize));
        Assert.That(again.Resources, Is.EqualTo(original.Resources));
        Assert.That(again.Controls, Is.EqualTo(original.Controls));
        Assert.That(again.Container, Is.EqualTo(original.Container));
        Assert.That(again.Incidents, Is.EqualTo(original.Incidents));
        Assert.That(again.HostUsers, Is.EqualTo(original.HostUsers));
        Assert.That(again.MetricsListen, Is.EqualTo("127.0.0.1:9464"));
        Assert.That(again.Outputs.Http!.Headers["Authorization"], Is.EqualTo("Bearer a:b"));
        Assert.That(again.Outputs.RetryGiveUp, Is.EqualTo(TimeSpan.FromMinutes(2)));
        Assert.That(again.Outputs.Syslog, Is.EqualTo(original.Outputs.Syslog));
        Assert.That(again.Outputs.File, Is.EqualTo(original.Outputs.File));
        Assert.That(Config($"validate '{printed}'").ExitCode, Is.Zero, "config validate accepts what config print wrote");
    }

    [Test]
    public void Print_of_a_minimal_config_spells_out_the_defaults()
    {
        ShellResult r = Config($"print '{Write("c.yaml", "mountpoint: $D/mnt\nmounts: [{ path: /, source: $D/root }]\n")}'");
        Assert.That(r.ExitCode, Is.Zero, r.ToString());
        InstanceConfig printed = ConfigLoader.Load(r.StdOut, "printed.yaml");
        Assert.That(printed.Name, Is.EqualTo("mnt"));
        Assert.That(printed.StateDir, Is.EqualTo("/var/lib/inspatialfs/mnt"));
        Assert.That(r.StdOut, Does.Contain("isolation: standard").And.Contain("others: no-quota-writes").And.Contain("builtins: true"));
        Assert.That(r.StdOut, Does.Not.Contain("resources:"), "no limit is configured, so none is printed");
    }

    [Test]
    public void Print_refuses_a_bad_config_with_exit_2()
    {
        ShellResult r = Config($"print '{Write("c.yaml", "mountpoint: $D/mnt\nmounts: [{ path: /, source: $D/root }]\nisolation: extreme\n")}'");
        Assert.That(r.ExitCode, Is.EqualTo(2), r.ToString());
        Assert.That(r.StdOut, Is.Empty);
    }

    private static string RepoFile(params string[] parts) => Path.Combine([DaemonProcess.RepoRoot, .. parts]);

    [Test]
    public void Schema_command_writes_the_checked_in_schema()
    {
        ShellResult r = Config("schema");
        Assert.That(r.ExitCode, Is.Zero, r.ToString());
        Assert.That(r.StdOut, Is.EqualTo(File.ReadAllText(RepoFile("scripts", "examples", "config.schema.json"))),
            "scripts/examples/config.schema.json is stale: regenerate it with `bin/inspatialfs config schema > scripts/examples/config.schema.json`");
    }

    [Test]
    public void Schema_names_every_key_the_loader_accepts()
    {
        JsonObject schema = ConfigSchema.Build();
        foreach (string key in ConfigLoader.AcceptedKeys())
        {
            JsonNode? node = schema;
            foreach (string part in key.Replace("[]", "", StringComparison.Ordinal).Split('.'))
            {
                node = node?["type"]?.GetValue<string>() == "array" ? node["items"] : node;
                node = node?["properties"]?[part];
            }

            Assert.That(node, Is.Not.Null, key);
        }
    }

    /// <summary>YAML as the JSON a schema validator sees (yaml-language-server does the same): plain true/false/numbers typed.</summary>
    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode m => new JsonObject(m.Children.Select(c => KeyValuePair.Create(((YamlScalarNode)c.Key).Value!, ToJson(c.Value)))),
        YamlSequenceNode s => new JsonArray(s.Children.Select(ToJson).ToArray()),
        YamlScalarNode { Style: YamlDotNet.Core.ScalarStyle.Plain } p when p.Value is "true" or "false" => JsonValue.Create(p.Value == "true"),
        YamlScalarNode { Style: YamlDotNet.Core.ScalarStyle.Plain } p when long.TryParse(p.Value, out long n) => JsonValue.Create(n),
        YamlScalarNode { Style: YamlDotNet.Core.ScalarStyle.Plain } p when double.TryParse(p.Value, System.Globalization.CultureInfo.InvariantCulture, out double d) => JsonValue.Create(d),
        YamlScalarNode { Style: YamlDotNet.Core.ScalarStyle.Plain, Value: null or "" or "~" or "null" } => null,
        YamlScalarNode s => JsonValue.Create(s.Value),
        _ => null,
    };

    /// <summary>Built once: the library registers a schema by its $id, and a second registration is refused.</summary>
    private static readonly Lazy<JsonSchema> Schema = new(() => JsonSchema.FromText(File.ReadAllText(RepoFile("scripts", "examples", "config.schema.json"))));

    /// <param name="profile">A policy profile (the overlay mount program's): the per-container keys it leaves out are filled with placeholders.</param>
    private static EvaluationResults Evaluate(string yaml, bool profile = false)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        JsonNode? document = ToJson(stream.Documents[0].RootNode);
        if (profile && document is JsonObject o && !o.ContainsKey("mounts"))
        {
            o["mounts"] = new JsonArray(new JsonObject { ["path"] = "/", ["source"] = "/placeholder" });
        }

        return Schema.Value.Evaluate(System.Text.Json.JsonSerializer.SerializeToElement(document), new EvaluationOptions { OutputFormat = OutputFormat.List });
    }

    private static string Errors(EvaluationResults r) =>
        string.Join("\n", (r.Details ?? []).Where(d => d.Errors != null).SelectMany(d => d.Errors!.Select(e => $"{d.InstanceLocation}: {e.Value}")));

    [Test]
    public void Every_example_config_is_valid_against_the_schema()
    {
        string[] examples = [.. Directory.GetFiles(RepoFile("scripts", "examples"), "*.yaml", SearchOption.AllDirectories).Where(f => !f.EndsWith(".rules.yaml", StringComparison.Ordinal))];
        Assert.That(examples, Is.Not.Empty);
        foreach (string example in examples)
        {
            EvaluationResults r = Evaluate(File.ReadAllText(example), profile: example.Contains("/profiles/", StringComparison.Ordinal));
            Assert.That(r.IsValid, Is.True, example + "\n" + Errors(r));
        }

        EvaluationResults full = Evaluate(Full.Replace("$D", "/srv", StringComparison.Ordinal));
        Assert.That(full.IsValid, Is.True, "every section at once\n" + Errors(full));
    }

    [TestCase("mountpoint: /m\nmounts: [{ path: /, source: /s }]\nmistake: 1\n", "unknown top-level key")]
    [TestCase("mountpoint: /m\nmounts: [{ path: /, source: /s, sorce: /t }]\n", "unknown mount key")]
    [TestCase("mountpoint: /m\nmounts: [{ path: /, source: /s }]\nisolation: extreme\n", "bad enum")]
    [TestCase("mountpoint: /m\nmounts: [{ path: /, source: /s }]\nresources: { disk: lots }\n", "bad size")]
    [TestCase("mountpoint: /m\nmounts: [{ path: /, source: /s }]\noutputs: { retry: { max: 5 } }\n", "bad duration")]
    [TestCase("mountpoint: /m\nmounts: [{ source: /s }]\n", "mount without path")]
    public void Schema_refuses_what_the_loader_refuses(string yaml, string what)
    {
        Assert.That(Evaluate(yaml).IsValid, Is.False, what);
        Assert.That(Evaluate("mountpoint: /m\nmounts: [{ path: /, source: /s }]\n").IsValid, Is.True, "positive control");
    }
}
