using InSpatialFs.Security.Events;
using InSpatialFs.Security.Rules;
using static InSpatialFs.Security.Tests.Rules.RuleTestKit;

namespace InSpatialFs.Security.Tests.Rules;

public sealed class RuleReloadAndToolingTests
{
    private const string Threshold = """
        - rule: burst
          condition: evt.op = unlink
          threshold: {by: [proc.pid], window: 10s, count: {gte: 3}}
        - rule: other
          condition: evt.op = rmdir
        """;

    private string _dir = "";

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("rules-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, string text)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Test]
    public void Reload_carries_threshold_state_of_unchanged_rules()
    {
        RuleEngine engine = Engine(Threshold);
        Feed(engine, Ev(FsOp.Unlink, "/a", 0), Ev(FsOp.Unlink, "/b", 1));
        RuleLoadResult r = engine.Reload([new RuleSource("test.yaml", Threshold + "\n  severity: high\n")]);
        Assert.That(r.Succeeded, Is.True);
        Assert.That(Feed(engine, Ev(FsOp.Unlink, "/c", 2)), Is.EqualTo(new[] { "burst" }));
    }

    [Test]
    public void Reload_resets_state_of_a_changed_rule()
    {
        RuleEngine engine = Engine(Threshold);
        Feed(engine, Ev(FsOp.Unlink, "/a", 0), Ev(FsOp.Unlink, "/b", 1));
        engine.Reload([new RuleSource("test.yaml", Threshold.Replace("window: 10s", "window: 20s", StringComparison.Ordinal))]);
        Assert.That(Feed(engine, Ev(FsOp.Unlink, "/c", 2)), Is.Empty);
        Assert.That(Feed(engine, Ev(FsOp.Unlink, "/d", 3), Ev(FsOp.Unlink, "/e", 4)), Is.EqualTo(new[] { "burst" }),
            "the control: the reloaded rule counts from zero and fires at its third event");
    }

    [Test]
    public void A_failing_reload_changes_nothing()
    {
        RuleEngine engine = Engine(Threshold);
        Feed(engine, Ev(FsOp.Unlink, "/a", 0), Ev(FsOp.Unlink, "/b", 1));
        RuleSet before = engine.RuleSet;
        RuleLoadResult r = engine.Reload([new RuleSource("test.yaml", "- rule: burst\n  condition: evt.op = unlnk\n")]);
        Assert.That(r.Succeeded, Is.False);
        Assert.That(r.Diagnostics.Single(d => d.IsError).Code, Is.EqualTo(RuleDiagnosticCodes.BadValue));
        Assert.That(engine.RuleSet, Is.SameAs(before));
        Assert.That(Feed(engine, Ev(FsOp.Unlink, "/c", 2), Ev(FsOp.RmDir, "/d", 2)), Is.EqualTo(new[] { "burst", "other" }));
        Assert.That(engine.GetStats().FailedReloads, Is.EqualTo(1));
    }

    [Test]
    public void Reload_swaps_in_new_rules_atomically_while_events_flow()
    {
        RuleEngine engine = Engine("- rule: a\n  condition: evt.op = unlink\n");
        using var stop = new CancellationTokenSource();
        int inconsistent = 0;
        var reader = Task.Run(() =>
        {
            var d = new List<Detection>();
            while (!stop.IsCancellationRequested)
            {
                d.Clear();
                engine.Analyze(Ev(FsOp.Unlink, "/x"), d);
                // Either the old set (a) or the new one (b), never both or neither.
                if (d.Count != 1)
                {
                    Interlocked.Increment(ref inconsistent);
                }
            }
        });
        for (int i = 0; i < 20; i++)
        {
            engine.Reload([new RuleSource("test.yaml", i % 2 == 0 ? "- rule: b\n  condition: evt.op = unlink\n" : "- rule: a\n  condition: evt.op = unlink\n")]);
        }

        stop.Cancel();
        reader.Wait();
        Assert.That(inconsistent, Is.Zero);
        Assert.That(engine.GetStats().Reloads, Is.EqualTo(20));
    }

    [Test]
    public void Validate_prints_positioned_errors_and_returns_2()
    {
        string bad = Write("bad.yaml", "- rule: r\n  condition: fs.pth = /x\n");
        var output = new StringWriter();
        Assert.That(RuleTooling.Validate([bad], output), Is.EqualTo(RuleTooling.LoadFailed));
        Assert.That(output.ToString(), Does.Contain($"{bad}:2:14: error R003: unknown field 'fs.pth'"));
        string good = Write("good.yaml", "- rule: r\n  condition: fs.path = /x\n");
        Assert.That(RuleTooling.Validate([good], new StringWriter()), Is.Zero);
    }

    [Test]
    public void Test_reports_a_failing_rule_test()
    {
        string file = Write("t.yaml", """
            - rule: r
              condition: fs.path = /x
              actions: [alert]
              tests:
                - name: hits
                  events: [{evt.op: open, fs.path: /x}]
                  expect: match
                - name: wrong expectation
                  events: [{evt.op: open, fs.path: /y}]
                  expect: match
                - name: wrong actions
                  events: [{evt.op: open, fs.path: /x}]
                  actions: [deny]
            """);
        var output = new StringWriter();
        Assert.That(RuleTooling.Test([file], output), Is.EqualTo(1));
        string text = output.ToString();
        Assert.That(text, Does.Contain("PASS r: hits"));
        Assert.That(text, Does.Contain("FAIL r: wrong expectation"));
        Assert.That(text, Does.Contain("FAIL r: wrong actions"));
        Assert.That(text, Does.Contain("1 passed, 2 failed"));
    }

    [Test]
    public void Replay_is_deterministic_and_prints_json_per_detection()
    {
        var events = new List<FsEvent>
        {
            Ev(FsOp.Open, "/etc/shadow", 0, proc: "cat"),
            Ev(FsOp.Create, "/tmp/payload", 1, proc: "curl"),
            Ev(FsOp.Open, "/etc/os-release", 2),
        };
        FsEvent exec = Ev(FsOp.Open, "/tmp/payload", 3);
        exec.IsExec = true;
        events.Add(exec);
        for (int i = 0; i < events.Count; i++)
        {
            events[i].Seq = (ulong)(i + 1);
        }

        string journal = Write("events.jsonl", string.Join("\n", events.Select(FsEventJson.ToJsonLine)) + "\n");
        var first = new StringWriter();
        var second = new StringWriter();
        Assert.That(RuleTooling.Replay([], journal, json: true, first), Is.Zero);
        Assert.That(RuleTooling.Replay([], journal, json: true, second), Is.Zero);
        Assert.That(first.ToString(), Is.EqualTo(second.ToString()));
        string[] lines = first.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(2));
        using var d0 = System.Text.Json.JsonDocument.Parse(lines[0]);
        using var d1 = System.Text.Json.JsonDocument.Parse(lines[1]);
        Assert.That(d0.RootElement.GetProperty("rule").GetString(), Is.EqualTo("Credential file read by unexpected process"));
        Assert.That(d0.RootElement.GetProperty("severity").GetString(), Is.EqualTo("high"));
        Assert.That(d0.RootElement.GetProperty("actions")[0].GetString(), Is.EqualTo("alert"));
        Assert.That(d0.RootElement.GetProperty("evt.seq").GetUInt64(), Is.EqualTo(1));
        Assert.That(d1.RootElement.GetProperty("rule").GetString(), Is.EqualTo("Drop and execute from temporary directory"));
        Assert.That(d1.RootElement.GetProperty("evt.seq").GetUInt64(), Is.EqualTo(4));
    }

    [Test]
    public void Explain_prints_the_expanded_condition()
    {
        var output = new StringWriter();
        Assert.That(RuleTooling.Explain("Namespace or mount tool executed", [], output), Is.Zero);
        Assert.That(output.ToString(), Does.Contain("condition: evt.op = open and evt.is_exec and fd.filename in (mount, umount, nsenter"));
        Assert.That(RuleTooling.Explain("no such rule", [], new StringWriter()), Is.EqualTo(1));
    }

    [Test]
    public void List_json_includes_built_in_and_loaded_rules()
    {
        string file = Write("site.yaml", "- rule: site rule\n  condition: fs.path = /x\n  severity: low\n  actions: [deny]\n  mode: monitor\n");
        var output = new StringWriter();
        Assert.That(RuleTooling.List([file], json: true, output), Is.Zero);
        using var doc = System.Text.Json.JsonDocument.Parse(output.ToString());
        var rules = doc.RootElement.EnumerateArray().ToList();
        Assert.That(rules.Any(r => r.GetProperty("source").GetString()!.StartsWith("builtin:", StringComparison.Ordinal)), Is.True);
        System.Text.Json.JsonElement site = rules.Single(r => r.GetProperty("rule").GetString() == "site rule");
        Assert.That(site.GetProperty("severity").GetString(), Is.EqualTo("low"));
        Assert.That(site.GetProperty("mode").GetString(), Is.EqualTo("monitor"));
        Assert.That(site.GetProperty("actions")[0].GetString(), Is.EqualTo("deny"));
        Assert.That(site.GetProperty("inline").GetBoolean(), Is.True);
    }
}

public sealed class RuleToolingFileErrorTests
{
    [Test]
    public void A_missing_rules_file_is_an_R020_error()
    {
        var output = new StringWriter();
        Assert.That(RuleTooling.Validate(["/nonexistent/rules.yaml"], output), Is.EqualTo(RuleTooling.LoadFailed));
        Assert.That(output.ToString(), Does.Contain("/nonexistent/rules.yaml:0:0: error R020"));
    }

    [Test]
    public void Replay_reports_unreadable_lines_with_their_number()
    {
        string path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "{\"evt.op\": \"open\", \"fs.path\": \"/x\"}\n{\"evt.op\": \"frobnicate\"}\n");
            var output = new StringWriter();
            Assert.That(RuleTooling.Replay([], path, json: false, output), Is.EqualTo(1));
            Assert.That(output.ToString(), Does.Contain($"{path}:2: field 'evt.op'"));
            Assert.That(output.ToString(), Does.Contain("0 detection(s), 1 unreadable line(s)"));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
