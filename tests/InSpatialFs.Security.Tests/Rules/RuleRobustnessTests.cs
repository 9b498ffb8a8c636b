using System.Diagnostics;
using System.Text;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Matching;
using InSpatialFs.Security.Rules;
using static InSpatialFs.Security.Tests.Rules.RuleTestKit;

namespace InSpatialFs.Security.Tests.Rules;

/// <summary>
/// Issue 10 and 11 for the rule engine: hostile or broken rule files end in positioned errors, never in an exception,
/// an out-of-memory crash or exponential work; glob and regex matching are linear in the path.
/// </summary>
public sealed class RuleRobustnessTests
{
    [TestCase("- rule: x\n  condition: [a, b\n", 3)]
    [TestCase("- rule: x\n  condition: {a: b\n", 3)]
    [TestCase("- list: l\n  items: [a, b\n- rule: r\n", 3)]
    [TestCase("- rule: x\n  condition: \"unterminated\n", 3)]
    [TestCase("- rule: x\n\tcondition: tab\n", 2)]
    [TestCase("- &a [*a]\n", 1)]
    public void Malformed_yaml_is_a_positioned_R001_error(string yaml, int line)
    {
        RuleDiagnostic d = Load(yaml).Diagnostics.Single(x => x.IsError);
        Assert.That(d.Code, Is.EqualTo(RuleDiagnosticCodes.BadYaml), d.ToString());
        Assert.That(d.Line, Is.GreaterThanOrEqualTo(1).And.LessThanOrEqualTo(line), d.ToString());
        Assert.That(d.Column, Is.GreaterThanOrEqualTo(1), d.ToString());
    }

    [Test]
    public void Lists_that_double_at_each_level_are_an_error_not_an_out_of_memory_crash()
    {
        var yaml = new StringBuilder("- list: l0\n  items: [a, b]\n");
        for (int i = 1; i <= 40; i++)
        {
            yaml.Append($"- list: l{i}\n  items: [l{i - 1}, l{i - 1}]\n");
        }

        yaml.Append("- rule: r\n  condition: proc.name in (l40)\n");
        var sw = Stopwatch.StartNew();
        IReadOnlyList<RuleDiagnostic> errors = Errors(yaml.ToString());
        Assert.That(sw.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)));
        Assert.That(errors.Select(e => e.Code), Does.Contain(RuleDiagnosticCodes.TooLarge), string.Join("\n", errors));
        Assert.That(errors.All(e => e.Line > 0 && e.Column > 0), Is.True);
    }

    [Test]
    public void Macros_that_double_at_each_level_are_an_error_not_an_out_of_memory_crash()
    {
        var yaml = new StringBuilder("- macro: m0\n  condition: fd.name = /x\n");
        for (int i = 1; i <= 40; i++)
        {
            yaml.Append($"- macro: m{i}\n  condition: (m{i - 1} or m{i - 1})\n");
        }

        yaml.Append("- rule: r\n  condition: m40\n");
        var sw = Stopwatch.StartNew();
        RuleDiagnostic d = Errors(yaml.ToString())[0];
        Assert.That(sw.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)));
        Assert.That(d.Code, Is.EqualTo(RuleDiagnosticCodes.TooLarge), d.ToString());
        Assert.That(d.Line, Is.GreaterThan(1));
    }

    [Test]
    public void Deep_nesting_is_a_positioned_error_and_long_chains_are_fine()
    {
        string deep = new string('(', 5000) + "fd.name = /x" + new string(')', 5000);
        RuleDiagnostic d = Errors("- rule: r\n  condition: '" + deep + "'\n").Single();
        Assert.That((d.Code, d.Line), Is.EqualTo((RuleDiagnosticCodes.BadCondition, 2)));
        string chain = string.Join(" or ", Enumerable.Range(0, 20_000).Select(i => $"fd.name = /f{i}"));
        Assert.That(Matches(chain, Ev(FsOp.Open, "/f19999")), Is.True);
    }

    [Test]
    public void An_alias_bomb_is_refused_without_expanding_it()
    {
        var yaml = new StringBuilder("- list: l\n  items: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for (int i = 1; i <= 9; i++)
        {
            yaml.Append($"- list: l{i}\n  items: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]\n");
        }

        var sw = Stopwatch.StartNew();
        RuleDiagnostic d = Errors(yaml.ToString()).Single();
        Assert.That(sw.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)));
        Assert.That(d.Code, Is.EqualTo(RuleDiagnosticCodes.BadYaml));
    }

    [Test]
    public void Glob_matching_is_linear_not_exponential()
    {
        // Issue 11: /data/**a**a**a**a**a**b against a 106-character path took 9.8 s with backtracking.
        string path = "/data/" + new string('a', 100);
        var glob = Glob.Compile("/data/**a**a**a**a**a**b", GlobDialect.Fnmatch);
        Assert.That(glob.IsMatch(path), Is.False);
        Assert.That(glob.IsMatch(path + "b"), Is.True);
        var sw = Stopwatch.StartNew();
        string longPath = "/data/" + new string('a', 4000);
        for (int i = 0; i < 100; i++)
        {
            Assert.That(glob.IsMatch(longPath), Is.False);
        }

        Assert.That(sw.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)), "100 matches of a 4 KiB path");
    }

    [Test]
    public void A_rule_glob_with_many_stars_on_a_long_path_decides_in_time_through_the_engine()
    {
        RuleEngine engine = Engine("- rule: g\n  condition: fd.name glob '/data/*a*a*a*a*a*a*a*a*b'\n");
        FsEvent e = Ev(FsOp.Open, "/data/" + new string('a', 4000));
        var sw = Stopwatch.StartNew();
        Assert.That(Feed(engine, e), Is.Empty);
        Assert.That(sw.Elapsed, Is.LessThan(TimeSpan.FromSeconds(2)));
    }

    [Test]
    public void Regex_is_linear_time_too()
    {
        RuleEngine engine = Engine("- rule: re\n  condition: fd.name regex '^(a+)+$'\n");
        FsEvent e = Ev(FsOp.Open, new string('a', 5000) + "!");
        var sw = Stopwatch.StartNew();
        Assert.That(Feed(engine, e), Is.Empty);
        Assert.That(Feed(engine, Ev(FsOp.Open, "aaaa")), Is.EqualTo(new[] { "re" }));
        Assert.That(sw.Elapsed, Is.LessThan(TimeSpan.FromSeconds(2)));
    }

    [Test]
    public void An_oversized_file_is_refused_with_a_position()
    {
        string big = "# " + new string('x', RuleReader.MaxFileChars) + "\n";
        RuleDiagnostic d = Errors(big).Single();
        Assert.That((d.Code, d.Line, d.Column), Is.EqualTo((RuleDiagnosticCodes.BadYaml, 1, 1)));
    }
}
