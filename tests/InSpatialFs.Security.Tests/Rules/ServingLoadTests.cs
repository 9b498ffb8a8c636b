using InSpatialFs.Security.Rules;

namespace InSpatialFs.Security.Tests.Rules;

/// <summary>
/// How a server loads its rules: the built-in files without their embedded tests (blanked line for line before the
/// YAML is parsed), and parsed ahead on a thread of their own while the start goes on. Either must give exactly the
/// rules a full load gives.
/// </summary>
public sealed class ServingLoadTests
{
    // Appends to a built-in rule's condition: a parse handed to two loads, or changed by the first, would show here.
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

    [Test]
    public void Built_ins_parsed_ahead_load_as_they_do_in_place_and_serve_one_load_only()
    {
        Assert.That(RuleLoader.BuiltInsPrepared, Is.False, "no earlier test left a parse waiting");
        string inPlace = Describe(RuleLoader.Load([Extra], builtInTests: false));

        RuleLoader.PrepareBuiltIns();
        RuleLoader.PrepareBuiltIns(); // a second call while one waits starts nothing new
        Assert.That(RuleLoader.BuiltInsPrepared, Is.True);
        string ahead = Describe(RuleLoader.Load([Extra], builtInTests: false));
        Assert.That(RuleLoader.BuiltInsPrepared, Is.False, "the load took the parse");
        string afterwards = Describe(RuleLoader.Load([Extra], builtInTests: false));

        Assert.That(inPlace, Does.Contain("prefetch-test"), "positive control: the append is in the rule");
        Assert.That(ahead, Is.EqualTo(inPlace));
        Assert.That(afterwards, Is.EqualTo(inPlace));
    }

    [Test]
    public void A_parse_ahead_waits_for_a_load_that_wants_it()
    {
        RuleLoader.PrepareBuiltIns();
        Assert.That(RuleLoader.Load([Extra], includeBuiltIns: false).Succeeded, Is.False, "the append has no built-in rule to go to");
        Assert.That(RuleLoader.Load([Extra]).RuleSet!.Rules.Sum(r => r.Tests.Count), Is.GreaterThan(0), "a load with tests reads them itself");
        Assert.That(RuleLoader.BuiltInsPrepared, Is.True);
        Assert.That(RuleLoader.Load([Extra], builtInTests: false).Succeeded, Is.True);
        Assert.That(RuleLoader.BuiltInsPrepared, Is.False);
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
