namespace InSpatialFs.Security.Matching;

/// <summary>
/// The two glob dialects the product speaks. They differ only in what <see cref="Glob.Compile"/> is told here;
/// the matching is the same code.
/// </summary>
internal enum GlobDialect : byte
{
    /// <summary>
    /// Falco's <c>glob</c> / <c>iglob</c> rule operators (and the components of <c>pmatch</c> prefixes): fnmatch(3)
    /// without flags. <c>*</c> matches any run of characters <b>including '/'</b>, <c>?</c> any one character,
    /// <c>[abc]</c> / <c>[a-z]</c> / <c>[!a]</c> / <c>[^a]</c> a class, <c>\c</c> the character c. <c>**</c> is two
    /// stars, i.e. one.
    /// </summary>
    Fnmatch,

    /// <summary>
    /// One component of a path-policy pattern (<c>paths:</c> forbidden / read_only / allowed, see
    /// <see cref="Policy.PathGlob"/>): <c>*</c> matches any run of characters and <c>?</c> any one character, but
    /// <b>neither matches '/'</b>; <c>[</c> and <c>\</c> are ordinary characters (no classes, no escapes: policy
    /// patterns never had them). <c>**</c> as a whole component, "any number of directories", is the path pattern's
    /// business (<see cref="Policy.PathGlob"/>), which splits the path into components and matches each one here.
    /// </summary>
    PathComponent,
}

/// <summary>
/// The one glob matcher, for rules and for path policy alike (<see cref="GlobDialect"/> says how they differ).
/// The pattern is compiled once; matching simulates the pattern's automaton over the text (a set of live pattern
/// positions per character), so it costs O(text × pattern) with no backtracking: <c>**a**a**a**b</c> against a long
/// path takes microseconds, not seconds. Nothing is allocated per match.
/// </summary>
internal sealed class Glob
{
    private enum Kind : byte
    {
        Literal,
        Any,
        Star,
        Class,
    }

    private readonly record struct Token(Kind Kind, char C, string? Class, bool Negate);

    /// <summary>Patterns up to this many tokens match with one 64-bit state word (all of Falco's rules do).</summary>
    private const int FastTokens = 63;

    private readonly Token[] _tokens;
    private readonly bool _ignoreCase;
    /// <summary>Whether <c>*</c> and <c>?</c> match '/' (<see cref="GlobDialect.Fnmatch"/>).</summary>
    private readonly bool _wildcardsCrossSlash;
    /// <summary>The pattern without wildcards (compared for equality), else null.</summary>
    private readonly string? _literal;

    private Glob(Token[] tokens, bool ignoreCase, bool wildcardsCrossSlash, string? literal)
    {
        _tokens = tokens;
        _ignoreCase = ignoreCase;
        _wildcardsCrossSlash = wildcardsCrossSlash;
        _literal = literal;
    }

    /// <param name="pattern">The pattern, in <paramref name="dialect"/>.</param>
    /// <param name="dialect">Which glob this is (rules or path policy); see <see cref="GlobDialect"/>.</param>
    /// <param name="ignoreCase">Case-insensitive (Falco's <c>iglob</c>), by invariant lower-casing.</param>
    public static Glob Compile(string pattern, GlobDialect dialect, bool ignoreCase = false)
    {
        bool fnmatch = dialect == GlobDialect.Fnmatch;
        var tokens = new List<Token>(pattern.Length);
        bool wild = false;
        for (int i = 0; i < pattern.Length; i++)
        {
            char p = pattern[i];
            switch (p)
            {
                case '*':
                    wild = true;
                    if (tokens.Count == 0 || tokens[^1].Kind != Kind.Star)
                    {
                        tokens.Add(new Token(Kind.Star, '\0', null, false));
                    }

                    break;
                case '?':
                    wild = true;
                    tokens.Add(new Token(Kind.Any, '\0', null, false));
                    break;
                case '\\' when fnmatch && i + 1 < pattern.Length:
                    tokens.Add(new Token(Kind.Literal, Fold(pattern[++i], ignoreCase), null, false));
                    break;
                case '[' when fnmatch && ClassEnd(pattern, i) is int end and > 0:
                    {
                        wild = true;
                        int start = i + 1;
                        bool negate = pattern[start] is '!' or '^';
                        if (negate)
                        {
                            start++;
                        }

                        string cls = pattern[start..end];
                        tokens.Add(new Token(Kind.Class, '\0', ignoreCase ? cls.ToLowerInvariant() : cls, negate));
                        i = end;
                        break;
                    }

                default:
                    tokens.Add(new Token(Kind.Literal, Fold(p, ignoreCase), null, false));
                    break;
            }
        }

        string? literal = wild ? null : new string(tokens.Select(t => t.C).ToArray());
        return new Glob([.. tokens], ignoreCase, fnmatch, literal);
    }

    /// <summary>Index of the ']' closing a class opened at <paramref name="open"/>, or -1 ('[' is then a literal).</summary>
    private static int ClassEnd(string pattern, int open)
    {
        int i = open + 1;
        if (i < pattern.Length && pattern[i] is '!' or '^')
        {
            i++;
        }

        if (i < pattern.Length && pattern[i] == ']')
        {
            i++; // a leading ']' is a member of the class
        }

        for (; i < pattern.Length; i++)
        {
            if (pattern[i] == ']')
            {
                return i;
            }
        }

        return -1;
    }

    private static char Fold(char c, bool ignoreCase) => ignoreCase ? char.ToLowerInvariant(c) : c;

    public bool IsMatch(ReadOnlySpan<char> text)
    {
        if (_literal != null)
        {
            return _ignoreCase ? text.Equals(_literal, StringComparison.OrdinalIgnoreCase) : text.SequenceEqual(_literal);
        }

        return _tokens.Length <= FastTokens ? MatchSmall(text) : MatchLarge(text);
    }

    private bool Accepts(Token t, char c) => t.Kind switch
    {
        Kind.Literal => t.C == c,
        Kind.Any => _wildcardsCrossSlash || c != '/',
        Kind.Class => ClassMatches(t.Class!, c) != t.Negate,
        _ => false,
    };

    /// <summary>Adds, for every live position on a star, the position after it (a star may match nothing).</summary>
    private ulong Closure(ulong live)
    {
        for (int i = 0; i < _tokens.Length; i++)
        {
            if ((live & (1UL << i)) != 0 && _tokens[i].Kind == Kind.Star)
            {
                live |= 1UL << (i + 1);
            }
        }

        return live;
    }

    private bool MatchSmall(ReadOnlySpan<char> text)
    {
        int n = _tokens.Length;
        ulong live = Closure(1UL);
        foreach (char raw in text)
        {
            char c = Fold(raw, _ignoreCase);
            ulong next = 0;
            for (int i = 0; i < n; i++)
            {
                if ((live & (1UL << i)) == 0)
                {
                    continue;
                }

                Token t = _tokens[i];
                if (t.Kind == Kind.Star)
                {
                    if (_wildcardsCrossSlash || c != '/') next |= 1UL << i;
                }
                else if (Accepts(t, c))
                {
                    next |= 1UL << (i + 1);
                }
            }

            if (next == 0)
            {
                return false;
            }

            live = Closure(next);
        }

        return (live & (1UL << n)) != 0;
    }

    private bool MatchLarge(ReadOnlySpan<char> text)
    {
        int n = _tokens.Length;
        Span<bool> live = n < 1024 ? stackalloc bool[n + 1] : new bool[n + 1];
        Span<bool> next = n < 1024 ? stackalloc bool[n + 1] : new bool[n + 1];
        live[0] = true;
        CloseLarge(live);
        foreach (char raw in text)
        {
            char c = Fold(raw, _ignoreCase);
            next.Clear();
            bool any = false;
            for (int i = 0; i < n; i++)
            {
                if (!live[i])
                {
                    continue;
                }

                Token t = _tokens[i];
                if (t.Kind == Kind.Star)
                {
                    if (_wildcardsCrossSlash || c != '/') next[i] = any = true;
                }
                else if (Accepts(t, c))
                {
                    next[i + 1] = any = true;
                }
            }

            if (!any)
            {
                return false;
            }

            next.CopyTo(live);
            CloseLarge(live);
        }

        return live[n];
    }

    private void CloseLarge(Span<bool> live)
    {
        for (int i = 0; i < _tokens.Length; i++)
        {
            if (live[i] && _tokens[i].Kind == Kind.Star)
            {
                live[i + 1] = true;
            }
        }
    }

    private static bool ClassMatches(string cls, char c)
    {
        for (int i = 0; i < cls.Length; i++)
        {
            if (i + 2 < cls.Length && cls[i + 1] == '-')
            {
                if (c >= cls[i] && c <= cls[i + 2])
                {
                    return true;
                }

                i += 2;
            }
            else if (c == cls[i])
            {
                return true;
            }
        }

        return false;
    }
}
