using InSpatialFs.Security.Events;
using InSpatialFs.Security.Policy;

namespace InSpatialFs.Security.Tests.Policy;

public sealed class PathGlobTests
{
    [TestCase("/etc/shadow", "/etc/shadow", true)]
    [TestCase("/etc/shadow", "/etc/shadow2", false)]
    [TestCase("/etc/shadow", "/etc", false)]
    [TestCase("/etc/shadow", "/etc/shadow/x", false)]
    [TestCase("/usr/**", "/usr", true)]
    [TestCase("/usr/**", "/usr/bin/ls", true)]
    [TestCase("/usr/**", "/usrx/bin", false)]
    [TestCase("/usr/**", "/", false)]
    [TestCase("/run/*.sock", "/run/docker.sock", true)]
    [TestCase("/run/*.sock", "/run/a/docker.sock", false)]
    [TestCase("/run/*.sock", "/run/.sock", true)]
    [TestCase("/home/*/.ssh/**", "/home/alice/.ssh/id_rsa", true)]
    [TestCase("/home/*/.ssh/**", "/home/alice/bob/.ssh/id_rsa", false)]
    [TestCase("/**/.git/**", "/src/app/.git/config", true)]
    [TestCase("/**/.git/**", "/.git", true)]
    [TestCase("/**/.git/**", "/src/git/config", false)]
    [TestCase("/a/**/b/*.txt", "/a/b/x.txt", true)]
    [TestCase("/a/**/b/*.txt", "/a/x/y/b/x.txt", true)]
    [TestCase("/a/**/b/*.txt", "/a/x/y/b/x.txtz", false)]
    [TestCase("/lib/ld-?.so", "/lib/ld-2.so", true)]
    [TestCase("/lib/ld-?.so", "/lib/ld-23.so", false)]
    [TestCase("/**", "/", true)]
    [TestCase("/**", "/anything/at/all", true)]
    [TestCase("/", "/", true)]
    [TestCase("/", "/a", false)]
    [TestCase("/data/*", "/data", false)]
    [TestCase("/data/a*b*c", "/data/aXbYc", true)]
    [TestCase("/data/a*b*c", "/data/aXbY", false)]
    public void Glob_matches_as_specified(string pattern, string path, bool expected)
    {
        Assert.That(PathGlob.Compile(pattern).Matches(path), Is.EqualTo(expected), $"{pattern} vs {path}");
    }

    [TestCase("relative/path")]
    [TestCase("/a/../b")]
    [TestCase("/a/**x/b")]
    public void Invalid_patterns_are_rejected(string pattern)
    {
        Assert.That(() => PathGlob.Compile(pattern), Throws.TypeOf<FormatException>());
        Assert.That(() => PathGlob.Compile("/a/b"), Throws.Nothing, "the control: a valid pattern compiles");
    }

    [Test]
    public void Literal_prefix_stops_at_the_first_wildcard()
    {
        Assert.That(PathGlob.Compile("/usr/lib/*.so").LiteralPrefix, Is.EqualTo("/usr/lib"));
        Assert.That(PathGlob.Compile("/etc/shadow").IsExact, Is.True);
        Assert.That(PathGlob.Compile("/etc/*").IsExact, Is.False);
    }
}

public sealed class PathPolicyTests
{
    private static PathPolicy Demo(IsolationLevel level) =>
        new(level, ["/etc/shadow", "/root/.ssh/**"], ["/usr/**", "/data/ro/**"], ["/tmp/**", "/data/**"]);

    [TestCase("/etc/shadow", PathClass.Forbidden, "forbidden:/etc/shadow")]
    [TestCase("/root/.ssh/id_rsa", PathClass.Forbidden, "forbidden:/root/.ssh/**")]
    [TestCase("/usr/bin/ls", PathClass.ReadOnly, "readonly:/usr/**")]
    [TestCase("/data/ro/x", PathClass.ReadOnly, "readonly:/data/ro/**")]
    [TestCase("/data/rw/x", PathClass.Allowed, "allowed:/data/**")]
    [TestCase("/tmp/x", PathClass.Allowed, "allowed:/tmp/**")]
    [TestCase("/var/run/docker.sock", PathClass.Forbidden, "forbidden:/var/run/docker.sock")]
    [TestCase("/run/containerd/containerd.sock", PathClass.Forbidden, "forbidden:/run/containerd/**")]
    public void Precedence_is_forbidden_then_readonly_then_allowed(string path, PathClass cls, string reason)
    {
        foreach (IsolationLevel level in Enum.GetValues<IsolationLevel>())
        {
            PathMatch m = Demo(level).Match(path);
            Assert.That(m.Class, Is.EqualTo(cls), $"{level} {path}");
            Assert.That(m.Reason, Is.EqualTo(reason));
        }
    }

    [Test]
    public void Forbidden_wins_even_inside_an_allowed_tree()
    {
        var p = new PathPolicy(IsolationLevel.Standard, ["/data/secret/**"], [], ["/data/**"]);
        Assert.That(p.Classify("/data/secret/k"), Is.EqualTo(PathClass.Forbidden));
        Assert.That(p.Classify("/data/other"), Is.EqualTo(PathClass.Allowed));
    }

    [TestCase(IsolationLevel.Standard, "/opt/app", PathClass.Allowed)]
    [TestCase(IsolationLevel.Enhanced, "/opt/app", PathClass.ReadOnly)]
    [TestCase(IsolationLevel.Maximum, "/opt/app", PathClass.Forbidden)]
    [TestCase(IsolationLevel.Maximum, "/", PathClass.ReadOnly)]
    [TestCase(IsolationLevel.Maximum, "/data", PathClass.Allowed)]
    [TestCase(IsolationLevel.Maximum, "/etc", PathClass.Forbidden)]
    public void Unlisted_paths_take_the_level_default(IsolationLevel level, string path, PathClass expected)
    {
        Assert.That(Demo(level).Classify(path), Is.EqualTo(expected));
    }

    [Test]
    public void Maximum_keeps_directories_leading_to_listed_paths_traversable_read_only()
    {
        var p = new PathPolicy(IsolationLevel.Maximum, [], ["/usr/lib/*.so"], ["/srv/app/data/**"]);
        Assert.Multiple(() =>
        {
            Assert.That(p.Classify("/usr"), Is.EqualTo(PathClass.ReadOnly));
            Assert.That(p.Classify("/usr/lib"), Is.EqualTo(PathClass.ReadOnly));
            Assert.That(p.Classify("/usr/lib/libc.so"), Is.EqualTo(PathClass.ReadOnly));
            Assert.That(p.Classify("/usr/lib/libc.a"), Is.EqualTo(PathClass.Forbidden));
            Assert.That(p.Classify("/srv"), Is.EqualTo(PathClass.ReadOnly));
            Assert.That(p.Classify("/srv/app/data/x"), Is.EqualTo(PathClass.Allowed));
            Assert.That(p.Classify("/srv/other"), Is.EqualTo(PathClass.Forbidden));
        });
    }

    private static readonly string[] ListedDirectories = ["/", "/etc", "/etc/ssl", "/run", "/var/run", "/data", "/data/secret", "/data/secret/deep", "/home", "/home/u", "/home/u/.ssh", "/meta/d000", "/usr/lib"];
    private static readonly string[] ChildNames = ["shadow", "passwd", "x.sock", "docker.sock", "k", "id_rsa", "id_rsa.pub", "f000001", "libc.so", "containerd", "secret", ".ssh", "private"];

    [TestCase(IsolationLevel.Standard)]
    [TestCase(IsolationLevel.Enhanced)]
    [TestCase(IsolationLevel.Maximum)]
    public void A_directory_said_to_have_no_forbidden_children_has_none(IsolationLevel level)
    {
        var p = new PathPolicy(level, ["/etc/shadow", "/data/secret/**", "/home/*/.ssh/id_*", "/etc/ssl/private"], ["/usr/lib/*.so"], ["/data/**"]);
        foreach (string dir in ListedDirectories)
        {
            bool any = ChildNames.Any(n => p.Classify(dir == "/" ? "/" + n : dir + "/" + n) == PathClass.Forbidden);
            if (any)
            {
                Assert.That(p.MayForbidChildrenOf(dir), Is.True, $"{level}: {dir} has a forbidden child");
            }
        }
    }

    [TestCase("/meta/d000", false)]
    [TestCase("/meta", false)]
    [TestCase("/usr/share/doc", false)]
    [TestCase("/data", true)] // "/data/secret/**" forbids /data/secret itself
    [TestCase("/home/u", true)] // below the literal part of "/home/*/...": conservatively classified
    [TestCase("/", true)] // "/run/*.sock" (runtime sockets are always forbidden) is rooted at a child
    [TestCase("/etc", true)]
    [TestCase("/etc/ssl", true)]
    [TestCase("/data/secret", true)]
    [TestCase("/data/secret/deep", true)]
    [TestCase("/home/u/.ssh", true)]
    [TestCase("/run", true)]
    public void Listings_classify_entries_only_where_a_forbidden_pattern_can_reach(string dir, bool expected)
    {
        var p = new PathPolicy(IsolationLevel.Standard, ["/etc/shadow", "/data/secret/**", "/home/*/.ssh/id_*", "/etc/ssl/private"], [], []);
        Assert.That(p.MayForbidChildrenOf(dir), Is.EqualTo(expected));
    }

    [Test]
    public void A_deny_by_default_level_classifies_every_listing()
    {
        var p = new PathPolicy(IsolationLevel.Maximum, [], [], ["/data/**"]);
        Assert.That(p.MayForbidChildrenOf("/data"), Is.True);
    }
}

public sealed class PathGlobAutomatonTests
{
    [Test]
    public void Many_double_stars_match_in_linear_time_on_deep_paths()
    {
        // Backtracking over components would take O(depth^stars) here; the state-set automaton is linear.
        PathGlob g = PathGlob.Compile("/**/a/**/a/**/a/**/a/**/a/**/a/**/b");
        string deep = "/" + string.Join('/', Enumerable.Repeat("a", 3000)) + "/c";
        var watch = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < 20; i++)
        {
            Assert.That(g.Matches(deep), Is.False);
        }

        Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(2)), "20 matches of a 3000-component path");
        Assert.That(g.Matches(deep[..^2] + "/b"), Is.True, "positive control");
    }

    [Test]
    public void State_after_a_directory_says_what_below_it_can_match()
    {
        PathGlob shadow = PathGlob.Compile("/etc/shadow");
        Assert.That(shadow.CanMatchBelow(shadow.StateAfter("/etc")), Is.True);
        Assert.That(shadow.CanMatchBelow(shadow.StateAfter("/e2")), Is.False);
        Assert.That(shadow.CanMatchBelow(shadow.StateAfter("/etc/shadow")), Is.False, "the file itself, nothing below");

        PathGlob anywhere = PathGlob.Compile("/**/id_rsa");
        Assert.That(anywhere.BelowPart(anywhere.StateAfter("/home/a")), Is.EqualTo(anywhere.BelowPart(anywhere.StateAfter("/x"))),
            "a pattern that matches at any depth does not care where a directory moves");
    }

    [Test]
    public void Patterns_with_too_many_components_are_refused()
    {
        Assert.That(() => PathGlob.Compile("/" + string.Join('/', Enumerable.Repeat("a", 63))), Throws.TypeOf<FormatException>());
        Assert.That(PathGlob.Compile("/" + string.Join('/', Enumerable.Repeat("a", 62))).IsExact, Is.True);
    }
}

public sealed class RenamePolicyTests
{
    private static PathPolicy Demo(IsolationLevel level) =>
        new(level, ["/etc/shadow", "/root/.ssh/**", "/data/app/secret.key", "/**/id_rsa"], ["/etc/passwd", "/usr/**"], ["/tmp/**", "/data/**"]);

    [TestCase(IsolationLevel.Standard, "/etc", "/e2", true)]
    [TestCase(IsolationLevel.Standard, "/root", "/tmp/r", true)]
    [TestCase(IsolationLevel.Standard, "/root/.ssh", "/root/ssh2", true)]
    [TestCase(IsolationLevel.Enhanced, "/data/app", "/data/app2", true)]
    [TestCase(IsolationLevel.Maximum, "/data/app", "/data/app2", true)]
    [TestCase(IsolationLevel.Standard, "/tmp/build", "/tmp/build2", false)]
    [TestCase(IsolationLevel.Standard, "/home/a", "/home/b", false)]
    [TestCase(IsolationLevel.Enhanced, "/data/x", "/data/y", false)]
    [TestCase(IsolationLevel.Standard, "/etc/apt", "/etc/apt2", false)]
    public void A_rename_may_not_move_protected_objects_below_it_to_weaker_names(IsolationLevel level, string from, string to, bool refused)
    {
        VerdictReason? reason = Demo(level).RenameWouldExpose(from, to);
        if (reason is VerdictReason r) Assert.That(r.Kind, Is.EqualTo(ReasonKind.RenameExposes));
        Assert.That(reason is not null, Is.EqualTo(refused), $"{level} {from} -> {to}: {reason}");
    }

    [Test]
    public void At_enhanced_a_rename_may_not_bring_read_only_contents_under_an_allowing_pattern()
    {
        var policy = new PathPolicy(IsolationLevel.Enhanced, [], [], ["/data/*", "/tmp/**"]);
        Assert.That(policy.RenameWouldExpose("/data/app", "/tmp/app"), Is.Not.Null, "/data/app/file was read-only, would become writable");
        Assert.That(policy.RenameWouldExpose("/tmp/a", "/tmp/b"), Is.Null, "positive control");
    }
}
