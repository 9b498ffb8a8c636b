using InSpatialFs.Security.Events;
using InSpatialFs.Security.Rules;
using static InSpatialFs.Security.Tests.Rules.RuleTestKit;

namespace InSpatialFs.Security.Tests.Rules;

public sealed class RuleCollectorTests
{
    private const string Base = """
        - list: editors
          items: [vi]
        - macro: is_open
          condition: evt.op = open
        - rule: edit
          condition: is_open and proc.name in (editors)
          severity: low
          tags: [a]
        """;

    private static RuleSet LoadPair(string site)
    {
        RuleLoadResult r = RuleLoader.Load([new RuleSource("base.yaml", Base), new RuleSource("site.yaml", site)], includeBuiltIns: false);
        Assert.That(r.Diagnostics.Where(d => d.IsError), Is.Empty);
        return r.RuleSet!;
    }

    private static bool Fires(RuleSet set, FsEvent e) => Feed(RuleEngine.FromRuleSet(set), e).Contains("edit");

    [Test]
    public void List_override_append_adds_items()
    {
        RuleSet set = LoadPair("- list: editors\n  items: [nano]\n  override: {items: append}\n");
        Assert.That(Fires(set, Ev(FsOp.Open, "/f", proc: "nano")), Is.True);
        Assert.That(Fires(set, Ev(FsOp.Open, "/f", proc: "vi")), Is.True);
    }

    [Test]
    public void List_override_replace_drops_old_items()
    {
        RuleSet set = LoadPair("- list: editors\n  items: [nano]\n  override: {items: replace}\n");
        Assert.That(Fires(set, Ev(FsOp.Open, "/f", proc: "nano")), Is.True);
        Assert.That(Fires(set, Ev(FsOp.Open, "/f", proc: "vi")), Is.False);
    }

    [Test]
    public void Falco_append_true_appends_to_a_list()
    {
        RuleSet set = LoadPair("- list: editors\n  items: [emacs]\n  append: true\n");
        Assert.That(Fires(set, Ev(FsOp.Open, "/f", proc: "emacs")), Is.True);
    }

    [Test]
    public void Rule_condition_append_narrows_a_rule_without_copying_it()
    {
        RuleSet set = LoadPair("- rule: edit\n  condition: and not fs.path startswith /tmp\n  override: {condition: append}\n");
        Assert.That(Fires(set, Ev(FsOp.Open, "/etc/x", proc: "vi")), Is.True);
        Assert.That(Fires(set, Ev(FsOp.Open, "/tmp/x", proc: "vi")), Is.False);
    }

    [Test]
    public void Rule_condition_replace_and_severity_replace()
    {
        RuleSet set = LoadPair("- rule: edit\n  condition: evt.op = unlink\n  severity: critical\n  override: {condition: replace, severity: replace}\n");
        Assert.That(Fires(set, Ev(FsOp.Unlink, "/x", proc: "rm")), Is.True);
        Assert.That(Fires(set, Ev(FsOp.Open, "/x", proc: "vi")), Is.False);
        Assert.That(set.Find("edit")!.Severity, Is.EqualTo(Severity.Critical));
    }

    [Test]
    public void Macro_append_and_tags_append()
    {
        RuleSet set = LoadPair("- macro: is_open\n  condition: or evt.op = create\n  append: true\n- rule: edit\n  tags: [b]\n  override: {tags: append}\n");
        Assert.That(Fires(set, Ev(FsOp.Create, "/x", proc: "vi")), Is.True);
        Assert.That(set.Find("edit")!.Tags, Is.EquivalentTo(new[] { "a", "b" }));
    }

    [Test]
    public void A_later_full_definition_replaces_the_earlier_rule()
    {
        RuleSet set = LoadPair("- rule: edit\n  condition: evt.op = rmdir\n");
        Assert.That(Fires(set, Ev(FsOp.RmDir, "/d")), Is.True);
        Assert.That(Fires(set, Ev(FsOp.Open, "/f", proc: "vi")), Is.False);
        Assert.That(set.Count, Is.EqualTo(1));
    }

    [Test]
    public void Enabled_false_alone_disables_a_rule()
    {
        RuleSet set = LoadPair("- rule: edit\n  enabled: false\n");
        Assert.That(Fires(set, Ev(FsOp.Open, "/f", proc: "vi")), Is.False);
        Assert.That(Fires(LoadPair("- rule: edit\n  enabled: true\n"), Ev(FsOp.Open, "/f", proc: "vi")), Is.True,
            "the control: the same event fires the rule when it stays enabled");
    }

    [Test]
    public void Override_of_an_undefined_item_is_R015()
    {
        RuleLoadResult r = RuleLoader.Load([new RuleSource("base.yaml", Base), new RuleSource("site.yaml", "- rule: nope\n  condition: x\n  override: {condition: append}\n")], includeBuiltIns: false);
        RuleDiagnostic d = r.Diagnostics.Single(x => x.IsError);
        Assert.That((d.Code, d.File, d.Line), Is.EqualTo((RuleDiagnosticCodes.OverrideOfUnknown, "site.yaml", 1)));
    }

    [Test]
    public void A_site_file_can_override_a_built_in_rule()
    {
        string site = "- list: credential_readers\n  items: [vault]\n  override: {items: append}\n";
        RuleSet set = RuleLoader.Load([new RuleSource("site.yaml", site)]).RuleSet!;
        RuleEngine engine = RuleEngine.FromRuleSet(set);
        Assert.That(Feed(engine, Ev(FsOp.Open, "/etc/shadow", proc: "vault")), Is.Empty);
        Assert.That(Feed(engine, Ev(FsOp.Open, "/etc/shadow", proc: "cat")), Is.EqualTo(new[] { "Credential file read by unexpected process" }));
    }
}

public sealed class RuleCollectorOverrideErrorTests
{
    [Test]
    public void An_override_key_without_a_mode_is_an_error()
    {
        const string yaml = "- rule: r\n  condition: evt.op = open\n- rule: r\n  condition: and fs.path = /x\n  severity: high\n  override: {condition: append}\n";
        RuleDiagnostic d = RuleTestKit.Errors(yaml).Single();
        Assert.That((d.Code, d.Line), Is.EqualTo((RuleDiagnosticCodes.BadItem, 3)));
        Assert.That(d.Message, Does.Contain("'severity'"));
    }

    [Test]
    public void Rule_info_lists_what_each_rule_is()
    {
        RuleSet set = RuleTestKit.Load("- rule: r\n  condition: evt.op = open\n  severity: warning\n  actions: [deny, log]\n  tags: [t]\n").RuleSet!;
        RuleInfo info = set.Info.Single();
        Assert.That(info, Is.EqualTo(info with
        {
            Name = "r",
            Severity = Severity.Medium,
            Actions = ResponseAction.Deny | ResponseAction.Log,
            Mode = RuleMode.Enforce,
            Enabled = true,
            Kind = "stateless",
            Inline = true,
            Source = "test.yaml",
        }));
        Assert.That(set.Explain("r"), Is.EqualTo("evt.op = open"));
    }
}
