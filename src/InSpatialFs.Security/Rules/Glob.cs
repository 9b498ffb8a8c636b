namespace InSpatialFs.Security.Rules;

/// <summary>
/// Falco's <c>glob</c> / <c>iglob</c>: fnmatch(3) without flags, so <c>*</c> matches any run of characters
/// including '/', <c>?</c> one character, <c>[abc]</c> / <c>[a-z]</c> / <c>[!a]</c> / <c>[^a]</c> a class, and
/// <c>\c</c> the character c. The pattern is compiled once; matching simulates the pattern's automaton over the
/// text (a set of live pattern positions per character), so it costs O(text × pattern) with no backtracking:
/// <c>**a**a**a**b</c> against a long path takes microseconds, not seconds. Nothing is allocated per match.
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
    /// <summary>The pattern without wildcards (compared for equality), else null.</summary>
    private readonly string? _literal;

    private Glob(Token[] tokens, bool ignoreCase, string? literal)
    {
        _tokens = tokens;
        _ignoreCase = ignoreCase;
        _literal = literal;
    }

    public static Glob Compile(string pattern, bool ignoreCase = false)
    {
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
                case '\\' when i + 1 < pattern.Length:
                    tokens.Add(new Token(Kind.Literal, Fold(pattern[++i], ignoreCase), null, false));
                    break;
                case '[' when ClassEnd(pattern, i) is int end and > 0:
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
        return new Glob([.. tokens], ignoreCase, literal);
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

    /// <summary>One-shot match (compiles the pattern; rules compile once and call <see cref="IsMatch(ReadOnlySpan{char})"/>).</summary>
    public static bool IsMatch(string pattern, ReadOnlySpan<char> text) => Compile(pattern).IsMatch(text);

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
        Kind.Any => true,
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
                    next |= 1UL << i;
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
                    next[i] = any = true;
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
