using InSpatialFs.Security.Events;
using InSpatialFs.Security.Matching;
using InSpatialFs.Security.Rules;
using static InSpatialFs.Security.Tests.Rules.RuleTestKit;

namespace InSpatialFs.Security.Tests.Rules;

public sealed class ConditionCompilerTests
{
    private static FsEvent Sample()
    {
        FsEvent e = Ev(FsOp.Open, "/etc/ssh/sshd_config", proc: "Vim");
        e.Size = 4096;
        e.Uid = 1000;
        e.IsWrite = true;
        e.Mode = 0x8000 | 0x800 | 0x1ED; // regular file, setuid, 0755
        return e;
    }

    [TestCase("fs.path = /etc/ssh/sshd_config", true)]
    [TestCase("fs.path = \"/etc/ssh/sshd_config\"", true)]
    [TestCase("fs.path == /etc/ssh/sshd_config", true)]
    [TestCase("fs.path != /etc/passwd", true)]
    [TestCase("fs.path = /etc/passwd", false)]
    [TestCase("evt.size > 4095", true)]
    [TestCase("evt.size >= 4096", true)]
    [TestCase("evt.size < 4096", false)]
    [TestCase("evt.size <= 4096", true)]
    [TestCase("evt.size = 0x1000", true)]
    [TestCase("user.uid in (0, 1000)", true)]
    [TestCase("user.uid in (0, 1)", false)]
    [TestCase("proc.name in (vim, Vim)", true)]
    [TestCase("fs.path contains ssh/", true)]
    [TestCase("proc.name contains vim", false)]
    [TestCase("proc.name icontains vim", true)]
    [TestCase("fs.path startswith /etc/", true)]
    [TestCase("fs.path endswith _config", true)]
    [TestCase("fs.path glob /etc/*/sshd_*", true)]
    [TestCase("fs.path glob /etc/*_config", true)] // Falco's glob is fnmatch without FNM_PATHNAME: * crosses '/'
    [TestCase("fs.path glob /etc/**_config", true)]
    [TestCase("fs.path glob /etc/?_config", false)]
    [TestCase("fs.path pmatch (/usr, /etc/ssh)", true)]
    [TestCase("fs.path pmatch (/etc/ss)", false)]
    [TestCase("fs.dir = /etc/ssh", true)]
    [TestCase("fs.name = sshd_config", true)]
    [TestCase("evt.is_write", true)]
    [TestCase("evt.is_exec", false)]
    [TestCase("evt.is_write = true and not evt.is_exec", true)]
    [TestCase("evt.mode.setuid and evt.mode.type = file", true)]
    [TestCase("evt.mode.setgid", false)]
    [TestCase("evt.op = open", true)]
    [TestCase("evt.op in (unlink, open)", true)]
    [TestCase("evt.op != open", false)]
    [TestCase("container.level = standard and policy.class = allowed and evt.decision = allow", true)]
    [TestCase("fs.path = /x or (proc.name = Vim and evt.size = 4096)", true)]
    [TestCase("not (fs.path = /x or proc.name = Vim)", false)]
    public void Operators_evaluate_as_specified(string condition, bool expected) =>
        Assert.That(Matches(condition, Sample()), Is.EqualTo(expected), condition);

    [TestCase("fs.target exists", false)]
    [TestCase("not fs.target exists", true)]
    [TestCase("fs.target = /a", false)]
    [TestCase("fs.target != /a", false)]
    [TestCase("not fs.target = /a", true)]
    [TestCase("fs.target startswith /", false)]
    [TestCase("proc.name exists", true)]
    public void A_missing_field_makes_comparisons_false_and_exists_tells(string condition, bool expected) =>
        Assert.That(Matches(condition, Sample()), Is.EqualTo(expected), condition);

    [Test]
    public void Lists_and_macros_expand_including_nested_lists()
    {
        const string preamble = """
            - list: inner
              items: [/etc/ssh]
            - list: outer
              items: [inner, /usr]
            - macro: in_ssh
              condition: fs.path pmatch (outer)
            """;
        Assert.That(Matches("in_ssh and proc.name = Vim", Sample(), preamble), Is.True);
        Assert.That(Matches("in_ssh and proc.name = vi", Sample(), preamble), Is.False);
    }

    [TestCase("fs.nope = 1", RuleDiagnosticCodes.UnknownField)]
    [TestCase("fs.path ~= 1", RuleDiagnosticCodes.BadOperator)]
    [TestCase("fs.path like /x", RuleDiagnosticCodes.BadOperator)]
    [TestCase("evt.size contains 5", RuleDiagnosticCodes.BadOperator)]
    [TestCase("fs.path > /x", RuleDiagnosticCodes.BadOperator)]
    [TestCase("no_such_macro", RuleDiagnosticCodes.UndefinedMacro)]
    [TestCase("proc.name in missing_list", RuleDiagnosticCodes.UndefinedList)]
    [TestCase("evt.op = opne", RuleDiagnosticCodes.BadValue)]
    [TestCase("evt.size = big", RuleDiagnosticCodes.BadValue)]
    [TestCase("(fs.path = /x", RuleDiagnosticCodes.BadCondition)]
    [TestCase("fs.path = $a.fs.path", RuleDiagnosticCodes.BadCapture)]
    public void Condition_errors_have_codes(string condition, string code)
    {
        IReadOnlyList<RuleDiagnostic> errors = Errors("- rule: r\n  condition: " + Quote(condition) + "\n");
        Assert.That(errors.Select(e => e.Code), Does.Contain(code), string.Join("\n", errors));
    }

    [Test]
    public void Condition_errors_point_at_the_offending_column()
    {
        RuleDiagnostic d = Errors("- rule: r\n  condition: evt.op = open and fs.pth = /x\n").Single();
        Assert.That((d.Code, d.Line, d.Column), Is.EqualTo((RuleDiagnosticCodes.UnknownField, 2, 32)));
    }

    [Test]
    public void An_error_inside_a_macro_points_into_the_macro()
    {
        RuleDiagnostic d = Errors("- macro: m\n  condition: fs.pth = /x\n- rule: r\n  condition: m\n").Single();
        Assert.That((d.Code, d.Line), Is.EqualTo((RuleDiagnosticCodes.UnknownField, 2)));
    }

    [Test]
    public void Unused_lists_and_macros_are_warnings_not_errors()
    {
        RuleLoadResult r = Load("- list: l\n  items: [a]\n- macro: m\n  condition: evt.op = open\n- rule: r\n  condition: evt.op = unlink\n  desc: d\n  output: o\n  priority: WARNING\n");
        Assert.That(r.Succeeded, Is.True);
        Assert.That(r.Diagnostics.Select(d => (d.Code, d.Severity)), Is.EquivalentTo(new[]
        {
            (RuleDiagnosticCodes.UnusedList, DiagnosticSeverity.Warning),
            (RuleDiagnosticCodes.UnusedMacro, DiagnosticSeverity.Warning),
        }));
    }

    [Test]
    public void Macro_cycle_is_reported()
    {
        Assert.That(Errors("- macro: a\n  condition: b\n- macro: b\n  condition: a\n- rule: r\n  condition: a\n").Select(d => d.Code),
            Does.Contain(RuleDiagnosticCodes.MacroCycle));
    }

    [TestCase("evt.op = open and fs.path = /x", new[] { FsOp.Open })]
    [TestCase("evt.op in (unlink, rmdir) or evt.op = rename", new[] { FsOp.Unlink, FsOp.RmDir, FsOp.Rename })]
    [TestCase("(evt.op = open or evt.op = create) and evt.is_write", new[] { FsOp.Open, FsOp.Create })]
    public void Rules_that_pin_evt_op_sit_only_in_those_buckets(string condition, FsOp[] ops)
    {
        RuleSet set = Load("- rule: r\n  condition: " + Quote(condition) + "\n").RuleSet!;
        var buckets = Enumerable.Range(0, FsOpNames.Count).Where(op => set.Analysed[op].Length > 0).Select(op => (FsOp)op);
        Assert.That(buckets, Is.EquivalentTo(ops));
    }

    [Test]
    public void A_rule_that_does_not_pin_evt_op_is_in_every_bucket()
    {
        RuleSet set = Load("- rule: r\n  condition: not evt.op = open\n").RuleSet!;
        Assert.That(set.Analysed.All(b => b.Length == 1), Is.True);
    }

    [Test]
    public void Explain_expands_macros_and_lists()
    {
        RuleSet set = Load("- list: l\n  items: [a, b]\n- macro: m\n  condition: proc.name in (l)\n- rule: r\n  condition: evt.op = open and m\n").RuleSet!;
        Assert.That(set.Find("r")!.Explain(), Is.EqualTo("evt.op = open and proc.name in (a, b)"));
    }

    [Test]
    public void Exceptions_exclude_matching_tuples()
    {
        const string yaml = """
            - rule: r
              condition: evt.op = open
              exceptions:
                - name: known
                  fields: [proc.name, fs.path]
                  comps: [=, startswith]
                  values:
                    - [sshd, /etc/ssh]
                    - [cron, /etc/cron]
                - name: single
                  fields: proc.name
                  comps: in
                  values: [backup, restic]
            """;
        RuleEngine engine = Engine(yaml);
        Assert.That(Feed(engine, Ev(FsOp.Open, "/etc/ssh/key", proc: "sshd")), Is.Empty);
        Assert.That(Feed(engine, Ev(FsOp.Open, "/etc/cron.d/x", proc: "cron")), Is.Empty);
        Assert.That(Feed(engine, Ev(FsOp.Open, "/anything", proc: "restic")), Is.Empty);
        Assert.That(Feed(engine, Ev(FsOp.Open, "/etc/cron.d/x", proc: "sshd")), Is.EqualTo(new[] { "r" }));
    }

    [TestCase("/etc/x", "/etc/*", true)]
    [TestCase("/etc/a/x", "/etc/*", true)]
    [TestCase("/etc/a/x", "/etc/**", true)]
    [TestCase("/etc/a/x", "/etc/?", false)]
    [TestCase("/etc/*x", "/etc/\\*x", true)]
    [TestCase("/etc/ax", "/etc/\\*x", false)]
    [TestCase("/etc/x.conf", "/etc/?.conf", true)]
    [TestCase("/etc/b.conf", "/etc/[a-c].conf", true)]
    [TestCase("/etc/d.conf", "/etc/[!a-c].conf", true)]
    [TestCase("/etc/a.conf", "/etc/[!a-c].conf", false)]
    public void Glob_matches_as_fnmatch_does(string path, string pattern, bool expected) =>
        Assert.That(Glob.Compile(pattern, GlobDialect.Fnmatch).IsMatch(path), Is.EqualTo(expected));

    [Test]
    public void Output_template_substitutes_fields()
    {
        RuleEngine engine = Engine("- rule: r\n  condition: evt.op = open\n  output: \"%proc.name opened %fs.path.\"\n");
        var detections = new List<Detection>();
        engine.Analyze(Ev(FsOp.Open, "/etc/x", proc: "cat"), detections);
        Assert.That(detections.Single().Output, Is.EqualTo("cat opened /etc/x."));
    }
}
