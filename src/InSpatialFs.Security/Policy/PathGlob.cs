using InSpatialFs.Security.Matching;

namespace InSpatialFs.Security.Policy;

/// <summary>
/// One compiled path-policy pattern: absolute, split into components once. <c>*</c> and <c>?</c> match within a
/// component (the one glob matcher, <see cref="Glob"/>, in its <see cref="GlobDialect.PathComponent"/> dialect: they
/// never cross '/', and '[' and '\' are ordinary characters), <c>**</c> matches zero or more whole components (so
/// <c>/usr/**</c> also matches <c>/usr</c>).
///
/// Matching runs the pattern as a small automaton over the path's components: the set of pattern positions still
/// alive is one 64-bit mask, advanced once per component. The cost is linear in the path (times the pattern's
/// length), whatever the container names its files and however many <c>**</c> the operator wrote: there is no
/// backtracking over components to blow up. Within one component the glob is O(component × segment). Nothing allocates.
///
/// The state after a directory's path (<see cref="StateAfter"/>) says which descendants the pattern can still
/// match, independent of the directory's name: two directories whose states are equal have descendants classified
/// alike, which is how a rename is checked for moving protected objects (<see cref="PathPolicy"/>).
/// </summary>
public sealed class PathGlob
{
    /// <summary>Most components a pattern may have (one bit each in the state mask, plus the accepting bit).</summary>
    public const int MaxSegments = 62;

    private enum SegmentKind : byte { Literal, Wildcard, AnyDepth }

    private readonly string[] _segments;
    private readonly SegmentKind[] _kinds;
    // The compiled glob of each wildcard segment (null for literal and "**" segments).
    private readonly Glob?[] _globs;
    // _closure[i]: the positions reachable from i without consuming a component (a "**" may match none).
    private readonly ulong[] _closure;
    private readonly ulong _accept;
    private readonly ulong _live; // every position that can still consume a component

    private PathGlob(string pattern, string[] segments, SegmentKind[] kinds, string literalPrefix)
    {
        Pattern = pattern;
        _segments = segments;
        _kinds = kinds;
        _globs = new Glob?[segments.Length];
        for (int i = 0; i < segments.Length; i++)
        {
            if (kinds[i] == SegmentKind.Wildcard) _globs[i] = Glob.Compile(segments[i], GlobDialect.PathComponent);
        }

        LiteralPrefix = literalPrefix;
        int n = segments.Length;
        _accept = 1UL << n;
        _live = _accept - 1;
        _closure = new ulong[n + 1];
        for (int i = n; i >= 0; i--)
        {
            _closure[i] = (1UL << i) | (i < n && kinds[i] == SegmentKind.AnyDepth ? _closure[i + 1] : 0);
        }
    }

    public string Pattern { get; }

    /// <summary>The leading literal components ("/usr/lib" for "/usr/lib/*.so"): a cheap first filter and the ancestors a deny-by-default level must keep traversable.</summary>
    public string LiteralPrefix { get; }

    /// <summary>True when the pattern has no wildcard and names exactly one path.</summary>
    public bool IsExact => Array.IndexOf(_kinds, SegmentKind.Wildcard) < 0 && Array.IndexOf(_kinds, SegmentKind.AnyDepth) < 0;

    public static PathGlob Compile(string pattern)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(pattern);
        if (pattern[0] != '/')
        {
            throw new FormatException($"path pattern '{pattern}' must be absolute (start with '/')");
        }

        string[] parts = pattern.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length > MaxSegments)
        {
            throw new FormatException($"path pattern '{pattern}' has {parts.Length} components; at most {MaxSegments}");
        }

        var kinds = new SegmentKind[parts.Length];
        int literalCount = -1;
        for (int i = 0; i < parts.Length; i++)
        {
            string p = parts[i];
            if (p is "." or "..")
            {
                throw new FormatException($"path pattern '{pattern}' may not contain '.' or '..' components");
            }

            if (p == "**")
            {
                kinds[i] = SegmentKind.AnyDepth;
            }
            else if (p.Contains("**", StringComparison.Ordinal))
            {
                throw new FormatException($"path pattern '{pattern}': '**' must be a whole component");
            }
            else
            {
                kinds[i] = p.AsSpan().IndexOfAny('*', '?') >= 0 ? SegmentKind.Wildcard : SegmentKind.Literal;
            }

            if (kinds[i] != SegmentKind.Literal && literalCount < 0)
            {
                literalCount = i;
            }
        }

        if (literalCount < 0) literalCount = parts.Length;
        string prefix = "/" + string.Join('/', parts, 0, literalCount);
        string normalized = "/" + string.Join('/', parts);
        return new PathGlob(normalized, parts, kinds, prefix);
    }

    /// <summary>Matches a normalized absolute namespace path (no trailing slash, "/" for the root).</summary>
    public bool Matches(ReadOnlySpan<char> path)
    {
        if (!path.StartsWith(LiteralPrefix, StringComparison.Ordinal))
        {
            return false;
        }

        // The prefix must end on a component boundary ("/usr" must not admit "/usrx").
        if (path.Length > LiteralPrefix.Length && LiteralPrefix.Length > 1 && path[LiteralPrefix.Length] != '/')
        {
            return false;
        }

        return (StateAfter(path) & _accept) != 0;
    }

    /// <summary>The automaton's state after every component of <paramref name="path"/> (0: nothing at or below it can match).</summary>
    public ulong StateAfter(ReadOnlySpan<char> path)
    {
        ulong state = _closure[0];
        ReadOnlySpan<char> rest = path.Length > 0 && path[0] == '/' ? path[1..] : path;
        while (!rest.IsEmpty && state != 0)
        {
            int slash = rest.IndexOf('/');
            ReadOnlySpan<char> component = slash < 0 ? rest : rest[..slash];
            rest = slash < 0 ? ReadOnlySpan<char>.Empty : rest[(slash + 1)..];
            if (!component.IsEmpty)
            {
                state = Step(state, component);
            }
        }

        return state;
    }

    /// <summary>The part of a state that can still match something strictly below the path it was computed for.</summary>
    public ulong BelowPart(ulong state) => state & _live;

    /// <summary>True when the pattern can match some path strictly below a directory in state <paramref name="state"/>.</summary>
    public bool CanMatchBelow(ulong state) => (state & _live) != 0;

    private ulong Step(ulong state, ReadOnlySpan<char> component)
    {
        ulong next = 0;
        ulong live = state & _live;
        while (live != 0)
        {
            int i = System.Numerics.BitOperations.TrailingZeroCount(live);
            live &= live - 1;
            switch (_kinds[i])
            {
                case SegmentKind.AnyDepth:
                    next |= _closure[i];
                    break;
                case SegmentKind.Literal:
                    if (component.SequenceEqual(_segments[i])) next |= _closure[i + 1];
                    break;
                default:
                    if (_globs[i]!.IsMatch(component)) next |= _closure[i + 1];
                    break;
            }
        }

        return next;
    }

    public override string ToString() => Pattern;
}
