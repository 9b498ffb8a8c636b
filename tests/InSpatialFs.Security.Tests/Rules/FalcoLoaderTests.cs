using InSpatialFs.Security.Events;
using InSpatialFs.Security.Rules;
using static InSpatialFs.Security.Tests.Rules.RuleTestKit;

namespace InSpatialFs.Security.Tests.Rules;

/// <summary>Falco's loader semantics: engine version, overrides, exceptions, enabled, source, skipping, redefinition.</summary>
public sealed class FalcoLoaderTests
{
    private const string Base = """
        - required_engine_version: 0.50.0
        - list: editors
          items: [vi]
        - rule: edit
          desc: an editor opens a file
          condition: evt.type = open and proc.name in (editors)
          output: "%proc.name opened %fd.name"
          priority: WARNING
          tags: [a]
          exceptions:
            - name: known
              fields: [proc.name, fd.name]
              comps: [=, startswith]
              values:
                - [vi, /etc/vim]
        """;

    private static RuleLoadResult LoadPair(string site) =>
        RuleLoader.Load([new RuleSource("base.yaml", Base), new RuleSource("site.yaml", site)], includeBuiltIns: false);

    private static RuleSet Set(string site)
    {
        RuleLoadResult r = LoadPair(site);
        Assert.That(r.Diagnostics.Where(d => d.IsError), Is.Empty, string.Join("\n", r.Diagnostics));
        return r.RuleSet!;
    }

    private static bool Fires(RuleSet set, FsEvent e) => Feed(RuleEngine.FromRuleSet(set), e).Contains("edit");

    [Test]
    public void Required_engine_version_newer_than_ours_is_a_positioned_error_older_is_fine()
    {
        Assert.That(Set("- required_engine_version: 57\n").Count, Is.EqualTo(1));
        RuleDiagnostic d = LoadPair("\n- required_engine_version: 0.99.0\n").Diagnostics.Single(x => x.IsError);
        Assert.That((d.Code, d.File, d.Line), Is.EqualTo((RuleDiagnosticCodes.EngineVersion, "site.yaml", 2)));
        Assert.That(d.Message, Does.Contain("0.57.0"));
    }

    [Test]
    public void Override_priority_replace_and_output_append()
    {
        RuleSet set = Set("- rule: edit\n  priority: CRITICAL\n  output: \"(site)\"\n  override: {priority: replace, output: append}\n");
        CompiledRule rule = set.Find("edit")!;
        Assert.That((rule.Severity, rule.Priority), Is.EqualTo((Severity.Critical, "Critical")));
        Assert.That(rule.Output.Text, Is.EqualTo("%proc.name opened %fd.name (site)"));
    }

    [Test]
    public void Exceptions_append_values_to_an_exception_by_name_and_add_new_ones()
    {
        const string site = """
            - rule: edit
              exceptions:
                - name: known
                  values:
                    - [vi, /srv]
                - name: tmp
                  fields: fd.name
                  comps: pmatch
                  values: [/tmp]
              override: {exceptions: append}
            """;
        RuleSet set = Set(site);
        FsEvent e = Ev(FsOp.Open, "/etc/vim/vimrc", proc: "vi");
        Assert.That(Fires(set, e), Is.False);
        Assert.That(Fires(set, Ev(FsOp.Open, "/srv/x", proc: "vi")), Is.False);
        Assert.That(Fires(set, Ev(FsOp.Open, "/tmp/x", proc: "vi")), Is.False);
        Assert.That(Fires(set, Ev(FsOp.Open, "/home/x", proc: "vi")), Is.True);
    }

    [Test]
    public void Appending_fields_to_an_existing_exception_is_an_error()
    {
        const string site = "- rule: edit\n  exceptions:\n    - name: known\n      fields: [proc.name]\n      values: [[x]]\n  override: {exceptions: append}\n";
        Assert.That(LoadPair(site).Diagnostics.Where(d => d.IsError).Select(d => (d.Code, d.File, d.Line)),
            Is.EqualTo(new[] { (RuleDiagnosticCodes.BadValue, "site.yaml", 3) }));
    }

    [Test]
    public void Enabled_override_and_the_enabled_only_item()
    {
        Assert.That(Fires(Set("- rule: edit\n  enabled: false\n"), Ev(FsOp.Open, "/f", proc: "vi")), Is.False);
        Assert.That(Fires(Set("- rule: edit\n  enabled: false\n  override: {enabled: replace}\n"), Ev(FsOp.Open, "/f", proc: "vi")), Is.False);
        Assert.That(Fires(Set("- rule: edit\n  enabled: true\n"), Ev(FsOp.Open, "/f", proc: "vi")), Is.True,
            "the control: the same event fires the rule when it stays enabled");
    }

    [Test]
    public void Rules_for_another_source_are_skipped_with_a_warning_not_an_error()
    {
        RuleLoadResult r = LoadPair("- rule: audit\n  desc: k8s\n  condition: ka.verb = create\n  output: x\n  priority: NOTICE\n  source: k8s_audit\n");
        Assert.That(r.Succeeded, Is.True);
        SkippedRule skipped = r.RuleSet!.Skipped.Single();
        Assert.That((skipped.Name, skipped.Reason), Is.EqualTo(("audit", "source k8s_audit (only syscall rules are served here)")));
        Assert.That(r.Diagnostics.Single(d => d.Code == RuleDiagnosticCodes.RuleSkipped).Severity, Is.EqualTo(DiagnosticSeverity.Warning));
    }

    [Test]
    public void A_rule_needing_fields_a_filesystem_cannot_have_is_skipped_and_says_which()
    {
        RuleLoadResult r = LoadPair("- rule: net\n  desc: n\n  condition: evt.type = connect and fd.sport = 22 and fd.sip != 127.0.0.1\n  output: x\n  priority: NOTICE\n");
        Assert.That(r.Succeeded, Is.True);
        Assert.That(r.RuleSet!.Skipped.Single().Reason, Is.EqualTo("needs fd.sip, fd.sport"));
        var list = new StringWriter();
        string file = Path.Combine(Path.GetTempPath(), $"net-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(file, "- rule: net\n  condition: fd.sport = 22\n");
        try
        {
            Assert.That(RuleTooling.List([file], json: false, list, includeBuiltIns: false), Is.Zero);
        }
        finally
        {
            File.Delete(file);
        }

        Assert.That(list.ToString(), Does.Contain("net").And.Contain("skipped: needs fd.sport"));
    }

    [Test]
    public void A_rule_on_system_calls_only_is_skipped_naming_them()
    {
        RuleLoadResult r = LoadPair("- rule: spawn\n  condition: evt.type in (execve, execveat) and proc.name = sh\n");
        Assert.That(r.RuleSet!.Skipped.Single().Reason, Is.EqualTo("needs evt.type execve, execveat (system calls a filesystem does not see)"));
    }

    [Test]
    public void Skip_if_unknown_filter_skips_a_rule_on_a_field_nobody_knows_instead_of_failing()
    {
        Assert.That(LoadPair("- rule: r\n  condition: foo.bar = 1\n").Diagnostics.Single(d => d.IsError).Code, Is.EqualTo(RuleDiagnosticCodes.UnknownField));
        RuleLoadResult r = LoadPair("- rule: r\n  condition: foo.bar = 1\n  skip-if-unknown-filter: true\n  warn_evttypes: false\n");
        Assert.That(r.Succeeded, Is.True, string.Join("\n", r.Diagnostics));
        Assert.That(r.RuleSet!.Skipped.Single().Reason, Is.EqualTo("needs foo.bar"));
    }

    [Test]
    public void Redefining_a_list_macro_or_rule_warns_and_the_later_one_wins()
    {
        RuleLoadResult r = LoadPair("- list: editors\n  items: [nano]\n- rule: edit\n  condition: evt.type = unlink\n");
        Assert.That(r.Diagnostics.Where(d => d.Code == RuleDiagnosticCodes.Redefined).Select(d => (d.File, d.Line)),
            Is.EqualTo(new[] { ("site.yaml", 1), ("site.yaml", 3) }));
        Assert.That(r.Diagnostics.First(d => d.Code == RuleDiagnosticCodes.Redefined).Message, Does.Contain("base.yaml:2:3"));
        Assert.That(Fires(r.RuleSet!, Ev(FsOp.Unlink, "/x")), Is.True);
    }

    [Test]
    public void A_built_in_list_redefined_by_a_user_file_is_warned_about()
    {
        RuleLoadResult r = RuleLoader.Load([new RuleSource("site.yaml", "- list: shadow_files\n  items: [/etc/shadow]\n")]);
        Assert.That(r.Diagnostics.Single(d => d.Code == RuleDiagnosticCodes.Redefined).Message, Does.Contain("builtin:00-base.yaml"));
    }

    [Test]
    public void Only_the_files_given_load_without_built_ins()
    {
        Assert.That(RuleLoader.Load([new RuleSource("site.yaml", Base)], includeBuiltIns: false).RuleSet!.Count, Is.EqualTo(1));
        Assert.That(RuleLoader.Load([new RuleSource("site.yaml", Base)]).RuleSet!.Count, Is.GreaterThan(20));
    }

    [Test]
    public void Append_output_is_added_to_every_rule_with_its_own_fields()
    {
        RuleLoadResult r = RuleLoader.Load([new RuleSource("base.yaml", Base)], includeBuiltIns: false, appendOutput: "container=%container.id uid=%user.uid");
        var detections = new List<Detection>();
        RuleEngine.FromRuleSet(r.RuleSet!).Analyze(Ev(FsOp.Open, "/f", proc: "vi"), detections);
        Assert.That(detections.Single().Output, Is.EqualTo("vi opened /f container=web-1 uid=0"));
        Assert.That(r.RuleSet!.Find("edit")!.Output.Fields.Select(f => f.Key), Is.EqualTo(new[] { "proc.name", "fd.name", "container.id", "user.uid" }));
    }

    [Test]
    public void An_unknown_override_mode_or_a_key_that_cannot_be_appended_is_an_error()
    {
        Assert.That(LoadPair("- rule: edit\n  priority: ERROR\n  override: {priority: append}\n").Diagnostics.Where(d => d.IsError).Select(d => d.Message),
            Has.Some.Contains("cannot be appended"));
        Assert.That(LoadPair("- rule: edit\n  desc: x\n  append: true\n  override: {desc: append}\n").Diagnostics.Where(d => d.IsError).Select(d => d.Message),
            Has.Some.Contains("both append: true and override"));
    }
}

public sealed class RuleTestEventTests
{
    [Test]
    public void A_test_event_with_a_misspelt_key_fails_the_test_instead_of_being_emptied()
    {
        RuleSet set = RuleTestKit.Load("""
            - rule: r
              condition: fd.name = /x
              tests:
                - name: typo
                  events: [{evt.type: openat, fd.nmae: /x}]
                  expect: no_match
                - name: falco keys
                  events: [{evt.type: openat, fd.name: /x, proc.cmdline: "cat /x", "proc.aname[2]": sshd}]
                  expect: match
            """).RuleSet!;
        CompiledRule rule = set.Find("r")!;
        Assert.That(RuleTooling.RunTest(set, rule, rule.Tests[0]), Does.Contain("unknown field 'fd.nmae'"));
        Assert.That(RuleTooling.RunTest(set, rule, rule.Tests[1]), Is.Null);
    }
}
