namespace InSpatialFs.Security.Rules;

/// <summary>
/// Path globs as the policy writes them: <c>*</c> within one component, <c>**</c> across components,
/// <c>?</c> one character, <c>[abc]</c> / <c>[a-z]</c> / <c>[!a]</c> a class. Matches spans without allocating.
/// </summary>
internal static class Glob
{
    public static bool IsMatch(ReadOnlySpan<char> pattern, ReadOnlySpan<char> text)
    {
        while (pattern.Length > 0)
        {
            char p = pattern[0];
            if (p == '*')
            {
                bool across = pattern.Length > 1 && pattern[1] == '*';
                ReadOnlySpan<char> rest = pattern[(across ? 2 : 1)..];
                if (rest.Length == 0)
                {
                    return across || !text.Contains('/');
                }

                for (int i = 0; i <= text.Length; i++)
                {
                    if (IsMatch(rest, text[i..]))
                    {
                        return true;
                    }

                    if (i < text.Length && text[i] == '/' && !across)
                    {
                        return false;
                    }
                }

                return false;
            }

            if (text.Length == 0)
            {
                return false;
            }

            if (p == '?')
            {
                if (text[0] == '/')
                {
                    return false;
                }
            }
            else if (p == '[')
            {
                int close = pattern[1..].IndexOf(']');
                if (close < 0)
                {
                    if (text[0] != '[')
                    {
                        return false;
                    }
                }
                else
                {
                    if (!ClassMatches(pattern[1..(close + 1)], text[0]))
                    {
                        return false;
                    }

                    pattern = pattern[(close + 2)..];
                    text = text[1..];
                    continue;
                }
            }
            else if (p != text[0])
            {
                return false;
            }

            pattern = pattern[1..];
            text = text[1..];
        }

        return text.Length == 0;
    }

    private static bool ClassMatches(ReadOnlySpan<char> cls, char c)
    {
        bool negate = cls.Length > 0 && cls[0] is '!' or '^';
        if (negate)
        {
            cls = cls[1..];
        }

        bool hit = false;
        for (int i = 0; i < cls.Length; i++)
        {
            if (i + 2 < cls.Length && cls[i + 1] == '-')
            {
                hit |= c >= cls[i] && c <= cls[i + 2];
                i += 2;
            }
            else
            {
                hit |= c == cls[i];
            }
        }

        return hit != negate;
    }
}
