using System.Text.RegularExpressions;
using InSpatialFs.Daemon.Config;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.Daemon.Tests.Cli;

/// <summary>
/// Issue 17: the README documents every command `--help` lists (and each subcommand of those that have them) and every
/// key the config loader accepts. Commands are read from the built binary's help, keys from the loader's own table, so
/// a command or key added without documentation fails here.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed partial class ReadmeCoverageTests
{
    private static string Readme => File.ReadAllText(Path.Combine(DaemonProcess.RepoRoot, "README.md"));

    [OneTimeSetUp]
    public void RequireBinary()
    {
        if (!File.Exists(DaemonProcess.Binary))
        {
            Assert.Ignore($"{DaemonProcess.Binary} is missing (run `make build`)");
        }
    }

    [GeneratedRegex(@"^  (?<name>[a-z][a-z0-9-]*)(?: <[A-Z]+>)*\s{2,}", RegexOptions.Multiline)]
    private static partial Regex CommandLine();

    /// <summary>The names in the "Commands:" part of a help text.</summary>
    private static string[] Commands(string help)
    {
        int start = help.IndexOf("Commands:", StringComparison.Ordinal);
        return start < 0 ? [] : [.. CommandLine().Matches(help[start..]).Select(m => m.Groups["name"].Value)];
    }

    private static string Help(string arguments)
    {
        ShellResult r = Shell.Run($"'{DaemonProcess.Binary}' {arguments} --help");
        Assert.That(r.ExitCode, Is.Zero, r.ToString());
        return r.StdOut;
    }

    /// <summary>`inspatialfs T` or `inspatialfs T [NAME] S` inside backticks, as the README's command table writes them.</summary>
    private static bool Documented(string readme, string top, string? sub) =>
        Regex.IsMatch(readme, "`inspatialfs " + Regex.Escape(top) + (sub == null ? @"[ `]" : "( NAME)? " + Regex.Escape(sub) + @"[ `]"));

    [Test]
    public void Every_command_in_help_is_documented_in_the_readme()
    {
        string readme = Readme;
        string[] top = Commands(Help(""));
        Assert.That(top, Is.SupersetOf(new[] { "mount", "ctl", "rules", "config", "oci-spec" }), "the help parser reads the command list");
        var missing = new List<string>();
        foreach (string t in top)
        {
            if (!Documented(readme, t, null)) missing.Add(t);
            foreach (string s in Commands(Help(t)))
            {
                if (!Documented(readme, t, s)) missing.Add(t + " " + s);
            }
        }

        if (!Documented(readme, "ctl", "list")) missing.Add("ctl list");
        Assert.That(missing, Is.Empty, "commands --help lists that README.md does not document");
        Assert.That(Documented(readme, "ctl", "no-such-command"), Is.False, "negative control: the matcher can fail");
    }

    [Test]
    public void Every_config_key_the_loader_accepts_is_documented_in_the_readme()
    {
        string readme = Readme;
        IReadOnlyList<string> keys = ConfigLoader.AcceptedKeys();
        Assert.That(keys, Has.Count.GreaterThan(40));
        Assert.That(keys.Where(k => !readme.Contains("`" + k + "`", StringComparison.Ordinal)), Is.Empty, "keys README.md does not name (as `key`)");
        Assert.That(readme.Contains("`no_such_key`", StringComparison.Ordinal), Is.False, "negative control");
    }
}
