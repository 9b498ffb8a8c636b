using InSpatialFs.Security.Rules;

namespace InSpatialFs.Security.Tests.Rules;

public sealed class RuleReaderTests
{
    private static RuleFileSpec Read(string yaml, DiagnosticBag bag) => new RuleReader(bag).Read("f.yaml", yaml);

    /// <summary>The diagnostics a test is about: the minimal rules here leave out desc, output and priority (R027, tested below).</summary>
    private static IEnumerable<RuleDiagnostic> Besides(DiagnosticBag bag) => bag.Items.Where(d => d.Code != RuleDiagnosticCodes.IncompleteRule);

    [Test]
    public void A_rule_without_desc_output_or_priority_is_warned_of_as_Falco_refuses_it()
    {
        var bag = new DiagnosticBag();
        Read("- rule: r\n  condition: evt.op = open\n  desc: d\n", bag);
        RuleDiagnostic d = bag.Items.Single();
        Assert.That((d.Code, d.IsError, d.Line), Is.EqualTo((RuleDiagnosticCodes.IncompleteRule, false, 1)));
        Assert.That(d.Message, Does.Contain("has no output, priority"));
        var complete = new DiagnosticBag();
        Read("- rule: r\n  condition: evt.op = open\n  desc: d\n  output: o\n  priority: WARNING\n- rule: r\n  condition: evt.op = unlink\n  override: { condition: replace }\n", complete);
        Assert.That(complete.Items, Is.Empty, "positive control: a complete rule, and an override, need no more");
    }

    [Test]
    public void Items_carry_file_line_and_column()
    {
        var bag = new DiagnosticBag();
        RuleFileSpec spec = Read("- list: l\n  items: [a]\n\n- rule: r\n  condition: evt.op = open\n", bag);
        Assert.That(Besides(bag), Is.Empty);
        Assert.That(spec.Items[0].At, Is.EqualTo(new SourcePosition("f.yaml", 1, 3)));
        Assert.That(spec.Items[1].At, Is.EqualTo(new SourcePosition("f.yaml", 4, 3)));
        Assert.That(((RuleSpec)spec.Items[1]).Condition!.Value.At, Is.EqualTo(new SourcePosition("f.yaml", 5, 14)));
    }

    [Test]
    public void Bad_yaml_is_an_R001_error_with_its_position()
    {
        var bag = new DiagnosticBag();
        Read("- rule: r\n  condition: [unclosed\n", bag);
        RuleDiagnostic d = bag.Items.Single();
        Assert.That(d.Code, Is.EqualTo(RuleDiagnosticCodes.BadYaml));
        Assert.That(d.Line, Is.GreaterThan(1));
    }

    [TestCase("emergency", Severity.Critical)]
    [TestCase("alert", Severity.Critical)]
    [TestCase("critical", Severity.Critical)]
    [TestCase("error", Severity.High)]
    [TestCase("warning", Severity.Medium)]
    [TestCase("notice", Severity.Low)]
    [TestCase("informational", Severity.Info)]
    [TestCase("debug", Severity.Info)]
    [TestCase("HIGH", Severity.High)]
    public void Falco_priorities_map_onto_severities(string name, Severity expected) =>
        Assert.That(RuleReader.ParseSeverity(name), Is.EqualTo(expected));

    [TestCase("500ms", 500_000_000L)]
    [TestCase("10s", 10_000_000_000L)]
    [TestCase("5m", 300_000_000_000L)]
    [TestCase("1h", 3_600_000_000_000L)]
    public void Durations_parse(string text, long nanos)
    {
        Assert.That(RuleReader.TryParseDuration(text, out long n), Is.True);
        Assert.That(n, Is.EqualTo(nanos));
    }

    [TestCase("10")]
    [TestCase("s")]
    [TestCase("-5s")]
    [TestCase("10 parsecs")]
    public void Bad_durations_are_rejected(string text)
    {
        Assert.That(RuleReader.TryParseDuration(text, out _), Is.False);
        Assert.That(RuleReader.TryParseDuration("10s", out _), Is.True, "the control: a good duration parses");
    }

    [Test]
    public void Bad_duration_unknown_action_and_unknown_key_are_positioned_errors()
    {
        var bag = new DiagnosticBag();
        Read("- rule: r\n  condition: evt.op = open\n  actions: [alert, explode]\n  suppress: soon\n  colour: red\n", bag);
        Assert.That(Besides(bag).Select(d => (d.Code, d.Line)), Is.EquivalentTo(new[]
        {
            (RuleDiagnosticCodes.UnknownAction, 3),
            (RuleDiagnosticCodes.BadDuration, 4),
            (RuleDiagnosticCodes.UnknownKey, 5),
        }));
    }

    [Test]
    public void Sequence_without_maxspan_is_R009()
    {
        var bag = new DiagnosticBag();
        Read("- rule: r\n  sequence:\n    steps:\n      - {name: a, condition: evt.op = create}\n      - {name: b, condition: evt.op = open}\n", bag);
        Assert.That(bag.Items.Select(d => d.Code), Does.Contain(RuleDiagnosticCodes.SequenceWithoutMaxspan));
    }

    [Test]
    public void Test_events_may_be_json_lines_or_yaml_maps_and_repeat()
    {
        var bag = new DiagnosticBag();
        RuleFileSpec spec = Read("""
            - rule: r
              condition: evt.op = open
              tests:
                - name: t
                  events:
                    - '{"evt.op": "open", "fs.path": "/a", "proc.pid": 5}'
                    - {evt.op: open, fs.path: /b, proc.pid: 6, evt.is_exec: true}
                    - {repeat: 3, every: 1s, event: {evt.op: read, fs.path: "/c%i"}}
                  expect: no_match
            """, bag);
        Assert.That(Besides(bag), Is.Empty);
        RuleTestSpec test = ((RuleSpec)spec.Items[0]).Tests!.Single();
        Assert.That(test.Events, Has.Count.EqualTo(5));
        Assert.That(test.ExpectMatch, Is.False);
        var second = Events.FsEventJson.Parse(test.Events[1].Text);
        Assert.That((second.Path, second.Pid, second.IsExec), Is.EqualTo(("/b", 6, true)));
        var last = Events.FsEventJson.Parse(test.Events[4].Text);
        Assert.That(last.Path, Is.EqualTo("/c2"));
        Assert.That(last.TimeUnixNanos - Events.FsEventJson.Parse(test.Events[2].Text).TimeUnixNanos, Is.EqualTo(2 * RuleTestKit.Second));
    }
}
