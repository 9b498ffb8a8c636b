using System.Collections.Frozen;
using InSpatialFs.Security.Events;

namespace InSpatialFs.Security.Policy;

/// <summary>The class of a path and the pattern (or the level's default) that decided it, as a typed reason.</summary>
public readonly record struct PathMatch(PathClass Class, VerdictReason Why)
{
    /// <summary>The reason's text ("forbidden:/etc/shadow", "default:maximum").</summary>
    public string Reason => Why.Text!;
}

/// <summary>
/// Path classes compiled once: exact paths in frozen sets, globs as <see cref="PathGlob"/> lists filtered by
/// their literal prefix. Precedence forbidden &gt; readonly &gt; allowed &gt; the level's default:
/// standard allows, enhanced makes everything else read-only, maximum forbids everything else except the
/// directories leading to a listed path (read-only, so the allow-listed paths can be reached).
/// Runtime sockets are forbidden at every level. <see cref="Match"/> allocates nothing.
/// </summary>
public sealed class PathPolicy
{
    /// <summary>Container-runtime control sockets: reaching one is a container escape.</summary>
    public static readonly IReadOnlyList<string> RuntimeSockets =
    [
        "/var/run/docker.sock", "/run/docker.sock",
        "/run/containerd/**", "/var/run/containerd/**",
        "/run/crio/**", "/var/run/crio/**",
        "/run/podman/**", "/var/run/podman/**",
        "/run/*.sock", "/var/run/*.sock",
    ];

    private readonly ClassSet _forbidden;
    private readonly ClassSet _readOnly;
    private readonly ClassSet _allowed;
    private readonly FrozenSet<string> _ancestors;
    private readonly PathMatch _default;
    private readonly PathMatch _ancestor;

    public PathPolicy(IsolationLevel level, IEnumerable<string> forbidden, IEnumerable<string> readOnly, IEnumerable<string> allowed)
    {
        Level = level;
        _forbidden = new ClassSet(ReasonKind.ForbiddenPath, forbidden.Concat(RuntimeSockets).Distinct(StringComparer.Ordinal));
        _readOnly = new ClassSet(ReasonKind.ReadOnlyPath, readOnly);
        _allowed = new ClassSet(ReasonKind.AllowedPath, allowed);
        var byLevel = new VerdictReason(ReasonKind.IsolationLevel, FsEventJson.LevelName(level));
        _default = level switch
        {
            IsolationLevel.Standard => new PathMatch(PathClass.Allowed, byLevel),
            IsolationLevel.Enhanced => new PathMatch(PathClass.ReadOnly, byLevel),
            _ => new PathMatch(PathClass.Forbidden, byLevel),
        };
        _ancestor = new PathMatch(PathClass.ReadOnly, byLevel with { Kind = ReasonKind.LevelAncestor });

        var ancestors = new HashSet<string>(StringComparer.Ordinal);
        foreach (PathGlob g in _readOnly.All.Concat(_allowed.All))
        {
            string p = g.LiteralPrefix;
            ancestors.Add("/");
            for (int i = p.IndexOf('/', 1); i > 0; i = p.IndexOf('/', i + 1))
            {
                ancestors.Add(p[..i]);
            }

            ancestors.Add(p);
        }

        _ancestors = ancestors.ToFrozenSet(StringComparer.Ordinal);
    }

    public static PathPolicy FromOptions(SecurityOptions o) => new(o.Level, o.Forbidden, o.ReadOnly, o.Allowed);

    public IsolationLevel Level { get; }

    public IEnumerable<string> ForbiddenPatterns => _forbidden.All.Select(g => g.Pattern);
    public IEnumerable<string> ReadOnlyPatterns => _readOnly.All.Select(g => g.Pattern);
    public IEnumerable<string> AllowedPatterns => _allowed.All.Select(g => g.Pattern);

    public PathClass Classify(string path) => Match(path).Class;

    /// <summary>
    /// The directories (or files) below which forbidden and read-only patterns can match: their literal prefixes.
    /// The proxy looks there at start for files with several names (<see cref="ProtectedObjects"/>).
    /// </summary>
    public IReadOnlyList<string> ProtectedRoots => [.. _forbidden.All.Concat(_readOnly.All).Select(g => g.LiteralPrefix).Distinct(StringComparer.Ordinal)];

    /// <summary>
    /// False when no entry directly inside <paramref name="dirPath"/> can be forbidden: no forbidden pattern can match
    /// a child of it and the level does not forbid by default. A listing of such a directory needs no per-entry
    /// classification (the common case: forbidden patterns name a handful of places).
    /// </summary>
    public bool MayForbidChildrenOf(string dirPath)
    {
        if (_default.Class == PathClass.Forbidden) return true;
        foreach (PathGlob g in _forbidden.All)
        {
            string literal = g.LiteralPrefix;
            int slash = literal.LastIndexOf('/');
            ReadOnlySpan<char> parent = slash <= 0 ? "/" : literal.AsSpan(0, slash);
            if (literal != "/" && parent.SequenceEqual(dirPath)) return true; // names a child (or a glob rooted at one)
            if (!g.IsExact && IsAtOrBelow(dirPath, literal)) return true; // a wildcard part may reach the children
        }

        return false;
    }

    private static bool IsAtOrBelow(string path, string prefix) =>
        prefix == "/" || path == prefix || (path.StartsWith(prefix, StringComparison.Ordinal) && path.Length > prefix.Length && path[prefix.Length] == '/');

    /// <summary>
    /// A class protects the object it names under every name it can get. A rename of <paramref name="from"/> to
    /// <paramref name="to"/> moves everything below it: refused (returns a <see cref="ReasonKind.RenameExposes"/> reason) when some object below could end
    /// up classified less strictly than it is now. Per pattern, the automaton state after each directory's path says
    /// which descendants the pattern can still match; a protecting pattern (forbidden, read-only) must still match at
    /// least those under the new name, and where the level does not allow by default, an allowing pattern may not
    /// match more under the new name. Conservative: a subset check on states, not a walk of the real tree.
    /// The object <paramref name="from"/> itself is checked by the usual source and target classes.
    /// </summary>
    public VerdictReason? RenameWouldExpose(string from, string to)
    {
        if (ProtectionLost(_forbidden, from, to) is PathGlob f) return Exposes($"forbidden:{f.Pattern} (a rename would move what it protects)");
        if (ProtectionLost(_readOnly, from, to) is PathGlob r) return Exposes($"readonly:{r.Pattern} (a rename would move what it protects)");
        if (_default.Class == PathClass.Allowed) return null;
        foreach (PathGlob g in _allowed.All)
        {
            ulong before = g.BelowPart(g.StateAfter(from)), after = g.BelowPart(g.StateAfter(to));
            if ((after & ~before) != 0) return Exposes($"{_default.Reason} (a rename under allowed:{g.Pattern} would relax what lies below)");
        }

        if (_default.Class == PathClass.Forbidden)
        {
            // Directories leading to allow-listed paths are visible (read-only) at maximum; a rename may not make a
            // hidden directory one of them.
            string prefix = to == "/" ? "/" : to + "/";
            foreach (string a in _ancestors)
            {
                if (a.Length > prefix.Length && a.StartsWith(prefix, StringComparison.Ordinal)
                    && !_ancestors.Contains(string.Concat(from, a.AsSpan(to.Length))))
                {
                    return Exposes($"{_ancestor.Reason} (a rename would reveal what lies below)");
                }
            }
        }

        return null;
    }

    private static VerdictReason Exposes(string explanation) => new(ReasonKind.RenameExposes, explanation);

    private static PathGlob? ProtectionLost(ClassSet set, string from, string to)
    {
        foreach (PathGlob g in set.All)
        {
            ulong before = g.BelowPart(g.StateAfter(from));
            if (before != 0 && (before & ~g.BelowPart(g.StateAfter(to))) != 0) return g;
        }

        return null;
    }

    public PathMatch Match(string path)
    {
        if (_forbidden.TryMatch(path, out VerdictReason r)) return new PathMatch(PathClass.Forbidden, r);
        if (_readOnly.TryMatch(path, out r)) return new PathMatch(PathClass.ReadOnly, r);
        if (_allowed.TryMatch(path, out r)) return new PathMatch(PathClass.Allowed, r);
        if (_default.Class == PathClass.Forbidden && _ancestors.Contains(path)) return _ancestor;
        return _default;
    }

    /// <summary>One class: exact paths in a frozen map to their reason, globs in a list.</summary>
    private sealed class ClassSet
    {
        private readonly FrozenDictionary<string, VerdictReason> _exact;
        private readonly PathGlob[] _globs;
        private readonly VerdictReason[] _globReasons;

        public ClassSet(ReasonKind kind, IEnumerable<string> patterns)
        {
            var all = patterns.Select(PathGlob.Compile).ToList();
            All = all;
            _exact = all.Where(g => g.IsExact).DistinctBy(g => g.Pattern)
                .ToFrozenDictionary(g => g.Pattern, g => new VerdictReason(kind, g.Pattern), StringComparer.Ordinal);
            _globs = all.Where(g => !g.IsExact).ToArray();
            _globReasons = _globs.Select(g => new VerdictReason(kind, g.Pattern)).ToArray();
        }

        public IReadOnlyList<PathGlob> All { get; }

        public bool TryMatch(string path, out VerdictReason reason)
        {
            if (_exact.TryGetValue(path, out reason)) return true;
            PathGlob[] globs = _globs;
            for (int i = 0; i < globs.Length; i++)
            {
                if (globs[i].Matches(path))
                {
                    reason = _globReasons[i];
                    return true;
                }
            }

            reason = default;
            return false;
        }
    }
}
