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

    [TestCase("", 32)]
    [TestCase("previous", 30)]
    public void Each_file_loads_alone_with_no_errors_and_every_rule_compiled_or_skipped_with_a_reason(string version, int expectedCompiled)
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
        Assert.That(compiled, Is.EqualTo(expectedCompiled), "the file-related rules that compile (README.md says how many)");
    }

    [Test]
    public void The_three_files_load_together_and_on_top_of_the_built_ins_with_no_errors()
    {
        string[] paths = [.. Files.Select(f => Path.Combine(Dir, f))];
        foreach (bool builtIns in new[] { false, true })
        {
            RuleLoadResult result = RuleLoader.LoadFiles(paths, builtIns);
            Assert.That(result.Diagnostics.Where(d => d.IsError), Is.Empty, string.Join("\n", result.Diagnostics.Where(d => d.IsError)));
            Assert.That(result.RuleSet!.Rules.Count(r => paths.Contains(r.DefinedIn)), Is.EqualTo(32));
            Assert.That(result.Diagnostics.Count(d => d.Code == RuleDiagnosticCodes.RuleSkipped), Is.EqualTo(61));
        }
    }

    [Test]
    public void Skipped_rules_name_what_they_need()
    {
        RuleSet set = LoadOne(Path.Combine(Dir, "falco_rules.yaml")).RuleSet!;
        Assert.That(set.Skipped.Single(s => s.Name == "Disallowed SSH Connection Non Standard Port").Reason, Does.StartWith("needs fd.connected"));
        Assert.That(set.Skipped.Single(s => s.Name == "Terminal shell in container").Reason, Is.EqualTo("needs evt.type execve, execveat (system calls a filesystem does not see)"));
        Assert.That(set.Rules.Select(r => r.Name), Is.SupersetOf(new[] { "Read sensitive file untrusted", "Clear Log Activities", "Create Symlink Over Sensitive Files" }));
    }
}
