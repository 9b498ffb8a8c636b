using InSpatialFs.Security.Matching;
using InSpatialFs.Security.Policy;

namespace InSpatialFs.Security.Tests.Matching;

/// <summary>
/// One glob matcher serves rules (Falco's fnmatch) and path policy (one component at a time): each documented
/// difference of the dialects is pinned here, both ways, so neither side drifts into the other.
/// </summary>
public sealed class GlobDialectTests
{
    // pattern, text, fnmatch, path component
    [TestCase("*", "a/b", true, false)]            // '*' crosses '/' only in fnmatch
    [TestCase("a?b", "a/b", true, false)]          // so does '?'
    [TestCase("a?b", "axb", true, true)]
    [TestCase("*.so", "libc.so", true, true)]
    [TestCase("*.so", "lib/c.so", true, false)]
    [TestCase("[a-c].conf", "b.conf", true, false)] // classes: fnmatch only; in a policy pattern '[' is a character
    [TestCase("[a-c].conf", "[a-c].conf", false, true)]
    [TestCase("[a-c]*", "[a-c]x", false, true)]
    [TestCase("\\*x", "*x", true, false)]           // escapes: fnmatch only; in a policy pattern '\' is a character
    [TestCase("\\*x", "\\abcx", false, true)]
    [TestCase("**", "a/b/c", true, false)]          // in fnmatch "**" is one star; in a component it never sees '/'
    [TestCase("a*b*c", "aXbYc", true, true)]
    [TestCase("a*b*c", "aXbY", false, false)]
    public void The_dialects_differ_exactly_as_documented(string pattern, string text, bool fnmatch, bool pathComponent)
    {
        Assert.That(Glob.Compile(pattern, GlobDialect.Fnmatch).IsMatch(text), Is.EqualTo(fnmatch), "fnmatch");
        Assert.That(Glob.Compile(pattern, GlobDialect.PathComponent).IsMatch(text), Is.EqualTo(pathComponent), "path component");
    }

    [Test]
    public void Ignore_case_folds_both_sides_and_only_when_asked()
    {
        Assert.That(Glob.Compile("/ETC/*.CONF", GlobDialect.Fnmatch, ignoreCase: true).IsMatch("/etc/x.conf"), Is.True);
        Assert.That(Glob.Compile("/ETC/*.CONF", GlobDialect.Fnmatch).IsMatch("/etc/x.conf"), Is.False);
    }

    [TestCase("/data/[x]*", "/data/[x]yz", true)]
    [TestCase("/data/[x]*", "/data/xyz", false)]
    [TestCase("/data/a\\*", "/data/a\\b", true)]
    [TestCase("/data/a\\*", "/data/a*", false)]
    [TestCase("/home/*/.ssh", "/home/alice/.ssh", true)]
    [TestCase("/home/*/.ssh", "/home/a/b/.ssh", false)]
    [TestCase("/home/**/.ssh", "/home/a/b/.ssh", true)]
    public void A_path_pattern_matches_its_components_in_the_path_dialect(string pattern, string path, bool expected) =>
        Assert.That(PathGlob.Compile(pattern).Matches(path), Is.EqualTo(expected));
}
