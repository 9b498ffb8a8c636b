using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.Daemon.Tests.Cli;

/// <summary>
/// Mounted tests run the daemon built from the tree under test: the source stamp (scripts/source-stamp.sh) is compiled
/// into bin/inspatialfs and the test kit refuses a binary whose stamp is not this tree's.
/// </summary>
[TestFixture]
public sealed class SourceStampTests
{
    private string _dir = "";

    [SetUp]
    public void CreateDirectory() => _dir = Directory.CreateTempSubdirectory("inspatialfs-stamp-").FullName;

    [TearDown]
    public void RemoveDirectory() => Directory.Delete(_dir, recursive: true);

    [Test]
    public void A_binary_built_from_other_sources_is_refused_and_one_built_from_this_tree_is_accepted()
    {
        string stale = FakeDaemon("stale", "sources 0123456789abcdef");
        string unstamped = FakeDaemon("unstamped", null);
        string current = FakeDaemon("current", "sources " + DaemonBinary.TreeStamp);

        Assert.That(DaemonBinary.WhyStale(stale), Does.Contain("was built from other sources").And.Contain("0123456789abcdef")
            .And.Contain(DaemonBinary.TreeStamp).And.Contain("run make build"));
        Assert.That(DaemonBinary.WhyStale(unstamped), Does.Contain("its stamp (none)"));
        Assert.That(() => DaemonBinary.EnsureCurrent(stale), Throws.InvalidOperationException.With.Message.Contains("run make build"));
        Assert.That(DaemonBinary.WhyStale(current), Is.Null, "the control: a binary of this tree passes");
        Assert.That(() => DaemonBinary.EnsureCurrent(current), Throws.Nothing);
    }

    [Test]
    public void The_stamp_follows_what_the_build_reads_and_ignores_build_output_and_notes()
    {
        string tree = Path.Combine(_dir, "tree");
        Directory.CreateDirectory(Path.Combine(tree, "scripts"));
        Directory.CreateDirectory(Path.Combine(tree, "src", "A", "obj"));
        File.Copy(Path.Combine(DaemonProcess.RepoRoot, "scripts", "source-stamp.sh"), Path.Combine(tree, "scripts", "source-stamp.sh"));
        File.WriteAllText(Path.Combine(tree, "Directory.Build.props"), "<Project />");
        File.WriteAllText(Path.Combine(tree, "Directory.Packages.props"), "<Project />");
        File.WriteAllText(Path.Combine(tree, "src", "A", "A.cs"), "class A {}");
        File.WriteAllText(Path.Combine(tree, "src", "A", "rules.yaml"), "- rule: r");
        Directory.CreateDirectory(Path.Combine(tree, "native", "keeper"));
        File.WriteAllText(Path.Combine(tree, "native", "keeper", "early-keeper.c"), "int x;");
        string first = Stamp(tree);

        File.WriteAllText(Path.Combine(tree, "src", "A", "obj", "A.dll"), "output");
        File.WriteAllText(Path.Combine(tree, "src", "A", "README.md"), "notes");
        Assert.That(Stamp(tree), Is.EqualTo(first), "build output and notes do not change the stamp");

        File.WriteAllText(Path.Combine(tree, "src", "A", "A.cs"), "class A { }");
        string edited = Stamp(tree);
        Assert.That(edited, Is.Not.EqualTo(first), "a changed source changes it");
        Assert.That(edited, Does.Match("^[0-9a-f]{16}$"));

        File.WriteAllText(Path.Combine(tree, "src", "A", "rules.yaml"), "- rule: s");
        string ruleEdited = Stamp(tree);
        Assert.That(ruleEdited, Is.Not.EqualTo(edited), "an embedded rule file changes it");

        File.WriteAllText(Path.Combine(tree, "native", "keeper", "early-keeper.c"), "int y;");
        Assert.That(Stamp(tree), Is.Not.EqualTo(ruleEdited), "the C file linked into the binary changes it");
    }

    [Test]
    [Category("Mount")]
    public void The_built_daemon_prints_the_stamp_of_this_tree()
    {
        string binary = Path.Combine(DaemonProcess.RepoRoot, "bin", "inspatialfs");
        if (!File.Exists(binary))
        {
            Assert.Ignore($"{binary} is missing (run `make build`)");
        }

        ShellResult version = Shell.Run($"'{binary}' --version");
        Assert.That(version.ExitCode, Is.Zero, version.ToString());
        Assert.That(version.StdOut, Does.StartWith("0.1.0"));
        Assert.That(DaemonBinary.StampOf(binary), Is.EqualTo(DaemonBinary.TreeStamp), "run make build");
    }

    /// <summary>A stand-in for bin/inspatialfs whose `--version` prints a version line and then <paramref name="stampLine"/>.</summary>
    private string FakeDaemon(string name, string? stampLine)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, $"#!/bin/sh\necho 0.1.0\n{(stampLine is null ? "" : $"echo '{stampLine}'\n")}");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    private static string Stamp(string tree) => Shell.Check($"'{tree}/scripts/source-stamp.sh'").Trim();
}
