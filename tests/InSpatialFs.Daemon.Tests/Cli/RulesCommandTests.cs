using System.Text.Json;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.Daemon.Tests.Cli;

/// <summary>`inspatialfs rules ...` run as the built binary (bin/inspatialfs), the way a rule author uses it.</summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class RulesCommandTests
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
        _dir = Path.Combine(Path.GetTempPath(), "inspatialfs-rules-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void RemoveDirectory() => Directory.Delete(_dir, recursive: true);

    private static ShellResult Rules(string arguments) =>
        Shell.Run($"'{DaemonProcess.Binary}' rules {arguments}", TimeSpan.FromMinutes(1));

    private string Write(string name, string text)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    private const string GoodRules = """
        - list: secret_dirs
          items: [/srv/secrets]

        - rule: Secret read by shell
          desc: a shell reads below /srv/secrets
          condition: evt.op = open and fs.path pmatch (secret_dirs) and proc.name in (sh, bash)
          output: "%proc.name read %fs.path"
          severity: warning
          actions: [alert, block-process]
          tests:
            - name: sh reads a secret
              events: [{evt.op: open, fs.path: /srv/secrets/token, proc.name: sh}]
              expect: match
              actions: [alert, block-process]
            - name: app reads a secret
              events: [{evt.op: open, fs.path: /srv/secrets/token, proc.name: app}]
              expect: no_match
        """;

    [Test]
    public void Test_without_files_runs_the_built_in_set_and_passes()
    {
        ShellResult r = Rules("test");
        Assert.That(r.ExitCode, Is.Zero, r.ToString());
        string[] lines = r.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines.Count(l => l.StartsWith("PASS ", StringComparison.Ordinal)), Is.GreaterThanOrEqualTo(23), "every built-in rule ships tests");
        Assert.That(lines.Any(l => l.StartsWith("FAIL ", StringComparison.Ordinal)), Is.False);
        Assert.That(lines[^1], Does.Match(@"^\d+ passed, 0 failed$"));
    }

    [Test]
    public void Test_of_a_file_runs_only_its_rules_and_fails_when_an_expectation_is_wrong()
    {
        string good = Write("good.yaml", GoodRules);
        ShellResult pass = Rules($"test '{good}'");
        Assert.That(pass.ExitCode, Is.Zero, pass.ToString());
        Assert.That(pass.StdOut, Does.Contain("2 passed, 0 failed"));

        string wrong = Write("wrong.yaml", GoodRules.Replace("expect: no_match", "expect: match", StringComparison.Ordinal));
        ShellResult fail = Rules($"test '{wrong}'");
        Assert.That(fail.ExitCode, Is.EqualTo(1), fail.ToString());
        Assert.That(fail.StdOut, Does.Contain("FAIL Secret read by shell: app reads a secret (" + wrong + ":"));
        Assert.That(fail.StdOut, Does.Contain("1 passed, 1 failed"));
    }

    [Test]
    public void Validate_accepts_a_good_file()
    {
        ShellResult r = Rules($"validate '{Write("good.yaml", GoodRules)}'");
        Assert.That(r.ExitCode, Is.Zero, r.ToString());
        Assert.That(r.StdOut, Does.Match(@"ok: \d+ rules, 0 warning\(s\)"));
    }

    [Test]
    public void Validate_reports_file_line_and_column_of_an_unknown_field_and_exits_2()
    {
        // Line 3 of the file; the unknown field starts at column 25 of the condition text's line.
        string broken = Write("broken.yaml", """
            - rule: Broken
              desc: refers to a field that does not exist
              condition: evt.op = open and fs.pathh = /etc/shadow
              output: x
              severity: high
            """);
        ShellResult r = Rules($"validate '{broken}'");
        Assert.That(r.ExitCode, Is.EqualTo(2), r.ToString());
        Assert.That(r.StdOut, Does.Match(System.Text.RegularExpressions.Regex.Escape(broken) + @":3:\d+: .*R003.*fs\.pathh"));
        Assert.That(r.StdOut, Does.Contain("failed: 1 error(s)"));
    }

    [Test]
    public void Validate_without_a_file_is_a_usage_error()
    {
        ShellResult r = Rules("validate");
        Assert.That(r.ExitCode, Is.EqualTo(2), r.ToString());
    }

    [Test]
    public void Replay_json_prints_one_object_per_detection_with_rule_severity_actions_and_seq()
    {
        string events = Write("events.jsonl", """
            {"evt.time": "2026-11-27T12:00:00.000000001Z", "evt.seq": 10, "evt.op": "open", "fs.path": "/etc/os-release", "proc.name": "cat", "proc.pid": 5, "container.id": "web-1"}
            {"evt.time": "2026-11-27T12:00:00.000001000Z", "evt.seq": 11, "evt.op": "open", "fs.path": "/etc/shadow", "proc.name": "cat", "proc.pid": 5, "container.id": "web-1"}
            {"evt.time": "2026-11-27T12:00:00.000002000Z", "evt.seq": 12, "evt.op": "open", "fs.path": "/srv/secrets/token", "proc.name": "sh", "proc.pid": 6, "container.id": "web-1"}
            {"evt.time": "2026-11-27T12:00:00.000003000Z", "evt.seq": 13, "evt.op": "symlink", "fs.path": "/tmp/x", "fs.link_target": "/etc/shadow", "proc.name": "ln", "proc.pid": 7, "container.id": "web-1"}
            """);
        string rules = Write("site.yaml", GoodRules);
        ShellResult r = Rules($"replay --rules '{rules}' --events '{events}' --json");
        Assert.That(r.ExitCode, Is.Zero, r.ToString());

        var detections = r.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var summary = detections.Select(d => (
            Rule: d.GetProperty("rule").GetString(),
            Seq: d.GetProperty("evt.seq").GetInt64(),
            Severity: d.GetProperty("severity").GetString(),
            Actions: string.Join(",", d.GetProperty("actions").EnumerateArray().Select(a => a.GetString())))).ToList();
        Assert.That(summary, Is.EquivalentTo(new[]
        {
            ("Credential file read by unexpected process", 11L, "high", "alert"),
            ("Secret read by shell", 12L, "medium", "alert,block-process"),
            ("Symlink to sensitive path", 13L, "high", "alert"),
        }));
    }

    [Test]
    public void Replay_of_an_unreadable_line_exits_1_and_names_the_line()
    {
        string events = Write("events.jsonl", "{\"evt.op\": \"open\", \"fs.path\": \"/a\"}\nnot json\n");
        ShellResult r = Rules($"replay --events '{events}'");
        Assert.That(r.ExitCode, Is.EqualTo(1), r.ToString());
        Assert.That(r.StdOut, Does.Contain(events + ":2:"));
    }

    [Test]
    public void Replay_without_events_is_a_usage_error()
    {
        Assert.That(Rules("replay").ExitCode, Is.EqualTo(2));
    }

    [Test]
    public void Explain_expands_macros_and_lists()
    {
        ShellResult r = Rules("explain 'Drop and execute from temporary directory'");
        Assert.That(r.ExitCode, Is.Zero, r.ToString());
        Assert.That(r.StdOut, Does.Contain("kind: sequence"));
        // The `exec` macro and the `tmp_dirs` list appear expanded, never by name.
        Assert.That(r.StdOut, Does.Contain("evt.is_exec"));
        Assert.That(r.StdOut, Does.Contain("/dev/shm"));
        Assert.That(r.StdOut, Does.Not.Contain("tmp_dirs"));
    }

    [Test]
    public void Explain_shows_a_rule_from_a_file_and_exits_1_for_an_unknown_rule()
    {
        string rules = Write("site.yaml", GoodRules);
        ShellResult r = Rules($"explain 'Secret read by shell' --rules '{rules}'");
        Assert.That(r.ExitCode, Is.Zero, r.ToString());
        Assert.That(r.StdOut, Does.Contain("fs.path pmatch (/srv/secrets)"));
        Assert.That(r.StdOut, Does.Contain("severity: medium, actions: [alert, block-process]"));

        ShellResult missing = Rules("explain 'No such rule'");
        Assert.That(missing.ExitCode, Is.EqualTo(1));
        Assert.That(missing.StdOut, Does.Contain("no rule named 'No such rule'"));
    }

    [Test]
    public void List_json_parses_and_holds_built_in_and_loaded_rules()
    {
        string rules = Write("site.yaml", GoodRules);
        ShellResult r = Rules($"list --json --rules '{rules}'");
        Assert.That(r.ExitCode, Is.Zero, r.ToString());
        using JsonDocument doc = JsonDocument.Parse(r.StdOut);
        var byName = doc.RootElement.EnumerateArray().ToDictionary(e => e.GetProperty("rule").GetString()!, e => e.Clone());
        Assert.That(byName, Has.Count.GreaterThanOrEqualTo(24));
        Assert.That(byName["Mass delete by one process"].GetProperty("kind").GetString(), Is.EqualTo("threshold"));
        Assert.That(byName["Mass delete by one process"].GetProperty("source").GetString(), Does.StartWith("builtin:"));
        Assert.That(byName["Secret read by shell"].GetProperty("source").GetString(), Is.EqualTo(rules));
        Assert.That(byName["Secret read by shell"].GetProperty("mode").GetString(), Is.EqualTo("enforce"));
    }

    [Test]
    public void List_of_a_broken_file_exits_2()
    {
        string broken = Write("broken.yaml", "- rule: X\n  condition: evt.op = = open\n  output: x\n  severity: high\n");
        ShellResult r = Rules($"list --rules '{broken}'");
        Assert.That(r.ExitCode, Is.EqualTo(2), r.ToString());
        Assert.That(r.StdOut, Does.Contain(broken + ":2:"));
    }

    [Test]
    public void Every_subcommand_has_help()
    {
        foreach (string verb in new[] { "validate", "test", "replay", "explain", "list" })
        {
            ShellResult r = Rules(verb + " --help");
            Assert.That(r.ExitCode, Is.Zero, verb);
            Assert.That(r.StdOut, Does.Contain("Usage:").And.Contain("rules " + verb), verb);
        }
    }
}
