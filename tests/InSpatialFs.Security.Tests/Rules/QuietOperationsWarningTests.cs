using InSpatialFs.Security.Rules;

namespace InSpatialFs.Security.Tests.Rules;

/// <summary>
/// Issue 17: reads, getattr and allowed lookups are not events, so a rule only on them validates and never fires. The
/// loader says so (R026) instead of leaving the author to find out; the rule still loads (it fires on denials).
/// </summary>
[TestFixture]
public sealed class QuietOperationsWarningTests
{
    private static RuleLoadResult Load(string condition) => RuleLoader.Load(
        [new RuleSource("quiet.yaml", $"- rule: R\n  desc: d\n  condition: {condition}\n  output: o\n  severity: warning\n")], includeBuiltIns: false);

    [TestCase("evt.op in (read, getattr)", "which are never events: it never fires")]
    [TestCase("evt.type = read", "which are never events")]
    [TestCase("evt.op = lookup and fs.path startswith /x", "which are events only when denied: it fires on denials only")]
    [TestCase("evt.op in (lookup, getxattr)", "events only when denied (getxattr: never)")]
    public void A_rule_only_on_operations_that_are_not_events_loads_with_an_R026_warning(string condition, string says)
    {
        RuleLoadResult r = Load(condition);
        Assert.That(r.Succeeded, Is.True, string.Join("\n", r.Diagnostics));
        RuleDiagnostic warning = r.Diagnostics.Single(d => d.Code == RuleDiagnosticCodes.QuietOperations);
        Assert.That(warning.IsError, Is.False);
        Assert.That(warning.Message, Does.Contain(says));
        Assert.That((warning.Line, warning.Column), Is.EqualTo((1, 3)));
    }

    [TestCase("evt.op = create")]
    [TestCase("evt.op in (open, read)")]
    [TestCase("fs.path startswith /etc")]
    public void A_rule_that_can_match_an_event_has_no_R026_warning(string condition)
    {
        RuleLoadResult r = Load(condition);
        Assert.That(r.Succeeded, Is.True, string.Join("\n", r.Diagnostics));
        Assert.That(r.Diagnostics.Where(d => d.Code == RuleDiagnosticCodes.QuietOperations), Is.Empty);
    }
}
