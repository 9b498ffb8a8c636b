using System.Globalization;
using System.Text;
using InSpatialFs.Security.Rules;

namespace InSpatialFs.Security.Tests.Rules;

/// <summary>
/// Fuzz pass of the rule loader (issue 10): real rule files (the built-ins and Falco's) mutated with a fixed seed —
/// characters deleted, YAML and condition punctuation inserted, lines duplicated, swapped and cut. No exception may
/// escape the loader and every error must carry a file:line:column. A short pass runs in `make test`; set
/// FUZZ_ITERATIONS for a long one (FUZZ_SEED picks another seed).
/// </summary>
public sealed class RuleLoaderFuzzTests
{
    private const int ShortPass = 300;

    private static readonly string[] Insertions =
    [
        "[", "]", "{", "}", ":", "\"", "'", "-", "(", ")", ",", ">", "|", "\n", "  ", "\t", "%", "&a ", "*a", "!", "=",
        " and ", " or ", " not ", " in ", " pmatch ", " glob ", " exists", "proc.aname[", "tolower(", "val(", "$s.fd.name",
        "\n- rule: x\n  condition: ", "\n- macro: m\n  condition: ", "\n- list: l\n  items: [", "override: {", "\\", "#",
    ];

    private static IEnumerable<(string Name, string Text)> Corpus()
    {
        foreach (RuleSource builtIn in RuleLoader.BuiltInSources)
        {
            yield return (builtIn.Name, builtIn.Yaml);
        }

        string dir = Path.Combine(TestContext.CurrentContext.TestDirectory, "Rules", "Falco");
        foreach (string file in Directory.GetFiles(dir, "*.yaml"))
        {
            yield return (Path.GetFileName(file), File.ReadAllText(file));
        }
    }

    private static string Mutate(string text, Random rng)
    {
        var sb = new StringBuilder(text);
        int edits = rng.Next(1, 6);
        for (int i = 0; i < edits && sb.Length > 0; i++)
        {
            int at = rng.Next(sb.Length);
            switch (rng.Next(6))
            {
                case 0:
                    sb.Remove(at, Math.Min(sb.Length - at, rng.Next(1, 12)));
                    break;
                case 1:
                    sb.Insert(at, Insertions[rng.Next(Insertions.Length)]);
                    break;
                case 2:
                    {
                        string[] lines = sb.ToString().Split('\n');
                        int l = rng.Next(lines.Length);
                        sb.Clear().AppendJoin('\n', lines.Take(l + 1).Append(lines[l]).Concat(lines.Skip(l + 1)));
                        break;
                    }

                case 3:
                    {
                        string[] lines = sb.ToString().Split('\n');
                        int a = rng.Next(lines.Length), b = rng.Next(lines.Length);
                        (lines[a], lines[b]) = (lines[b], lines[a]);
                        sb.Clear().AppendJoin('\n', lines);
                        break;
                    }

                case 4:
                    sb.Length = at;
                    break;
                default:
                    sb[at] = (char)rng.Next(32, 127);
                    break;
            }
        }

        return sb.ToString();
    }

    [Test]
    public void Mutated_rule_files_never_throw_and_every_error_is_positioned()
    {
        int iterations = int.TryParse(Environment.GetEnvironmentVariable("FUZZ_ITERATIONS"), NumberStyles.None, CultureInfo.InvariantCulture, out int n) ? n : ShortPass;
        int seed = int.TryParse(Environment.GetEnvironmentVariable("FUZZ_SEED"), NumberStyles.None, CultureInfo.InvariantCulture, out int s) ? s : 20261127;
        var rng = new Random(seed);
        (string Name, string Text)[] corpus = [.. Corpus()];
        int failedLoads = 0;
        for (int i = 0; i < iterations; i++)
        {
            (string name, string text) = corpus[rng.Next(corpus.Length)];
            string mutated = Mutate(text, rng);
            RuleLoadResult result = RuleLoader.Load([new RuleSource(name, mutated)], includeBuiltIns: false);
            foreach (RuleDiagnostic d in result.Diagnostics)
            {
                Assert.That(d.Message, Does.Not.StartWith(RuleLoader.InternalErrorPrefix), $"seed {seed}, iteration {i}, {name}: {d}\n--- input ---\n{mutated}");
                Assert.That(d.Line > 0 && d.Column > 0, Is.True, $"seed {seed}, iteration {i}: unpositioned {d}");
            }

            failedLoads += result.Succeeded ? 0 : 1;
        }

        // A positive control: most mutations break something, and some still load.
        TestContext.Out.WriteLine($"{iterations} mutated files (seed {seed}), {failedLoads} with errors");
        Assert.That(failedLoads, Is.GreaterThan(0).And.LessThan(iterations));
    }
}
