using InSpatialFs.Security.Rules;

namespace InSpatialFs.Security.Tests.Rules;

/// <summary>
/// How a server loads its rules: the built-in files without their embedded tests (blanked line for line before the
/// YAML is parsed). That must give exactly the rules a full load gives.
/// </summary>
public sealed class ServingLoadTests
{
    // Appends to a built-in rule's condition (the built-in rule must still be there to take it).
    private static readonly RuleSource Extra = new("extra.yaml",
        "- rule: Symlink to sensitive path\n  condition: and not proc.name = prefetch-test\n  override: {condition: append}\n");

    [Test]
    public void The_built_in_files_load_to_the_same_rules_with_their_tests_blanked()
    {
        foreach (RuleSource builtIn in RuleLoader.BuiltInSources)
        {
            string[] blanked = RuleLoader.WithoutTests(builtIn).Yaml.Split('\n');
            Assert.That(blanked, Has.Length.EqualTo(builtIn.Yaml.Split('\n').Length), builtIn.Name + ": lines stay where they were");
            Assert.That(blanked.Select(l => l.Trim()), Has.None.EqualTo("tests:"), builtIn.Name);
        }

        // The files depend on each other (00-base's macros), so they load together, as given files.
        RuleLoadResult full = RuleLoader.Load(RuleLoader.BuiltInSources, includeBuiltIns: false);
        RuleLoadResult served = RuleLoader.Load(RuleLoader.BuiltInSources.Select(RuleLoader.WithoutTests), includeBuiltIns: false);
        Assert.That(Describe(served), Is.EqualTo(Describe(full)));
        Assert.That(served.RuleSet!.Rules.Sum(r => r.Tests.Count), Is.Zero);
        Assert.That(full.RuleSet!.Rules.Sum(r => r.Tests.Count), Is.GreaterThan(40), "positive control: the files have tests");
    }

    [Test]
    public void A_serving_load_leaves_the_built_in_tests_out_and_reads_those_of_the_files_given()
    {
        var withTest = new RuleSource("own.yaml", """
            - rule: Own rule
              desc: d
              condition: evt.op = unlink and fd.name = /tmp/own
              output: o %fd.name
              severity: low
              tests:
                - name: bad
                  events: [{evt.op: unlink, fd.name: /tmp/own}]
                  expect: sometimes
            """);
        RuleLoadResult served = RuleLoader.Load([withTest], builtInTests: false);
        Assert.That(served.Diagnostics.Where(d => d.IsError).Select(d => d.Message), Has.Some.Contains("expect must be match or no_match"),
            "a bad test in a given file is still an error");

        RuleLoadResult full = RuleLoader.Load([Extra]);
        RuleLoadResult lean = RuleLoader.Load([Extra], builtInTests: false);
        Assert.That(Describe(lean), Is.EqualTo(Describe(full)));
        Assert.That(lean.RuleSet!.Rules.Sum(r => r.Tests.Count), Is.Zero);
    }

    private static string Describe(RuleLoadResult result)
    {
        Assert.That(result.Succeeded, Is.True, string.Join("\n", result.Diagnostics));
        RuleSet set = result.RuleSet!;
        return string.Join("\n", set.Rules.Select(r => $"{r.Name} [{r.DefinedIn}] {r.Kind} {r.Severity} {r.Actions} {r.Mode} {r.Enabled} {r.Explain()}")
            .Concat(set.Skipped.Select(r => $"skipped {r.Name}: {r.Reason}"))
            .Concat(result.Diagnostics.Select(d => d.ToString())));
    }
}
