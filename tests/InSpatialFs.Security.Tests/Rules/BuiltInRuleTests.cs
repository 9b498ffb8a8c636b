using InSpatialFs.Security.Rules;

namespace InSpatialFs.Security.Tests.Rules;

public sealed class BuiltInRuleTests
{
    [Test]
    public void Built_in_rules_load_without_errors_or_warnings()
    {
        RuleLoadResult result = RuleLoader.Load([]);
        Assert.That(result.Diagnostics, Is.Empty, string.Join("\n", result.Diagnostics));
        Assert.That(result.RuleSet!.Count, Is.GreaterThanOrEqualTo(20));
    }

    [Test]
    public void Every_built_in_rule_passes_its_embedded_tests()
    {
        var output = new StringWriter();
        int exit = RuleTooling.Test([], output);
        Assert.That(exit, Is.Zero, output.ToString());
        int testCount = RuleLoader.Load([]).RuleSet!.Rules.Sum(r => r.Tests.Count);
        Assert.That(output.ToString(), Does.Not.Contain("FAIL"));
        Assert.That(output.ToString(), Does.Contain($"{testCount} passed, 0 failed"));
        TestContext.Out.Write(output.ToString());
    }

    [Test]
    public void Every_built_in_rule_has_a_positive_and_a_negative_test()
    {
        RuleSet set = RuleLoader.Load([]).RuleSet!;
        foreach (CompiledRule rule in set.Rules)
        {
            Assert.That(rule.Tests.Any(t => t.ExpectMatch), Is.True, rule.Name + " has no positive test");
            Assert.That(rule.Tests.Any(t => !t.ExpectMatch), Is.True, rule.Name + " has no negative test");
        }
    }

    [Test]
    public void Built_in_rules_are_enabled_and_non_disruptive_by_default()
    {
        RuleSet set = RuleLoader.Load([]).RuleSet!;
        Assert.That(set.Rules.All(r => r.Enabled), Is.True);
        Assert.That(set.Rules.Where(r => (r.Actions & ResponseAction.Deny) != 0).Select(r => r.Name), Is.Empty);
    }
}
