namespace InSpatialFs.Security.Policy;

/// <summary>
/// One compiled path pattern: absolute, split into components once. <c>*</c> and <c>?</c> match within a
/// component, <c>**</c> matches zero or more whole components (so <c>/usr/**</c> also matches <c>/usr</c>).
/// Matching walks spans of the path: no regex, no allocation.
/// </summary>
public sealed class PathGlob
{
    private enum SegmentKind : byte { Literal, Wildcard, AnyDepth }

    private readonly string[] _segments;
    private readonly SegmentKind[] _kinds;

    private PathGlob(string pattern, string[] segments, SegmentKind[] kinds, string literalPrefix)
    {
        Pattern = pattern;
        _segments = segments;
        _kinds = kinds;
        LiteralPrefix = literalPrefix;
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

        ReadOnlySpan<char> rest = path.Length > 0 && path[0] == '/' ? path[1..] : path;
        return MatchFrom(0, rest);
    }

    private bool MatchFrom(int si, ReadOnlySpan<char> rest)
    {
        while (true)
        {
            if (si == _segments.Length)
            {
                return rest.IsEmpty;
            }

            if (_kinds[si] == SegmentKind.AnyDepth)
            {
                if (si == _segments.Length - 1)
                {
                    return true;
                }

                if (MatchFrom(si + 1, rest))
                {
                    return true;
                }

                while (!rest.IsEmpty)
                {
                    int s = rest.IndexOf('/');
                    rest = s < 0 ? ReadOnlySpan<char>.Empty : rest[(s + 1)..];
                    if (MatchFrom(si + 1, rest))
                    {
                        return true;
                    }
                }

                return false;
            }

            if (rest.IsEmpty)
            {
                return false;
            }

            int slash = rest.IndexOf('/');
            ReadOnlySpan<char> component = slash < 0 ? rest : rest[..slash];
            bool ok = _kinds[si] == SegmentKind.Literal
                ? component.SequenceEqual(_segments[si])
                : WildcardMatch(_segments[si], component);
            if (!ok)
            {
                return false;
            }

            rest = slash < 0 ? ReadOnlySpan<char>.Empty : rest[(slash + 1)..];
            si++;
        }
    }

    /// <summary>Classic greedy wildcard match with one backtrack point: linear in practice, no allocation.</summary>
    private static bool WildcardMatch(ReadOnlySpan<char> pattern, ReadOnlySpan<char> text)
    {
        int p = 0, t = 0, starP = -1, starT = 0;
        while (t < text.Length)
        {
            if (p < pattern.Length && (pattern[p] == '?' || pattern[p] == text[t]))
            {
                p++;
                t++;
            }
            else if (p < pattern.Length && pattern[p] == '*')
            {
                starP = p++;
                starT = t;
            }
            else if (starP >= 0)
            {
                p = starP + 1;
                t = ++starT;
            }
            else
            {
                return false;
            }
        }

        while (p < pattern.Length && pattern[p] == '*')
        {
            p++;
        }

        return p == pattern.Length;
    }

    public override string ToString() => Pattern;
}
