using InSpatialFs.Security.Rules;

namespace InSpatialFs.Security.Tests.Rules;

/// <summary>
/// Falco's own rule files (falcosecurity/rules, unmodified, in Rules/Falco/) load: every file-related rule compiles,
/// every other rule is skipped with its reason, and nothing is an error. The previous release loads the same way,
/// so an upgrade of the files keeps working.
/// </summary>
public sealed class FalcoRuleFilesTests
{
    private static readonly string Dir = Path.Combine(TestContext.CurrentContext.TestDirectory, "Rules", "Falco");

    private static readonly string[] Files = ["falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml"];

    private static RuleLoadResult LoadOne(string path) => RuleLoader.LoadFiles([path], includeBuiltIns: false);

    private static int RulesIn(string path) => File.ReadLines(path).Count(l => l.StartsWith("- rule:", StringComparison.Ordinal));

    [TestCase("")]
    [TestCase("previous")]
    public void Each_file_loads_alone_with_no_errors_and_every_rule_compiled_or_skipped_with_a_reason(string version)
    {
        int compiled = 0, skipped = 0;
        foreach (string file in Files)
        {
            string path = Path.Combine(Dir, version, file);
            RuleLoadResult result = LoadOne(path);
            Assert.That(result.Diagnostics.Where(d => d.IsError), Is.Empty, $"{file}:\n" + string.Join("\n", result.Diagnostics.Where(d => d.IsError)));
            RuleSet set = result.RuleSet!;
            Assert.That(set.Count + set.Skipped.Count, Is.EqualTo(RulesIn(path)), file + ": every rule is either compiled or skipped");
            Assert.That(set.Skipped.All(s => s.Reason.Length > 0), Is.True);
            compiled += set.Count;
            skipped += set.Skipped.Count;
            TestContext.Out.WriteLine($"{version}/{file}: {set.Count} compiled, {set.Skipped.Count} skipped");
            foreach (SkippedRule s in set.Skipped)
            {
                TestContext.Out.WriteLine($"  skipped: {s.Name}: {s.Reason}");
            }

            foreach (string name in set.Rules.Select(r => r.Name))
            {
                TestContext.Out.WriteLine($"  compiled: {name}");
            }
        }

        TestContext.Out.WriteLine($"{version}: {compiled} compiled, {skipped} skipped");
    }
}
