using System.Globalization;
using System.Text;

namespace InSpatialFs.Daemon.Hosting;

/// <summary>
/// Makes untrusted text (file names a container chose, process names, rule outputs built from them) safe to show on a
/// terminal or in a log: control characters become visible escapes (\n, \t, \r, \x1b, ...), so a name cannot move the
/// cursor, recolour the screen, forge a log line or split one; a backslash is doubled so an escape can never be faked.
/// Text that is already safe is returned as is (no allocation).
/// </summary>
internal static class TerminalText
{
    public static string Escape(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return text ?? "";
        }

        int first = 0;
        while (first < text.Length && !NeedsEscape(text[first]))
        {
            first++;
        }

        if (first == text.Length)
        {
            return text;
        }

        var sb = new StringBuilder(text.Length + 16);
        sb.Append(text, 0, first);
        for (int i = first; i < text.Length; i++)
        {
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                sb.Append(c).Append(text[++i]); // a valid pair: an ordinary character outside the BMP
                continue;
            }

            switch (c)
            {
                case '\\': sb.Append(@"\\"); break;
                case '\n': sb.Append(@"\n"); break;
                case '\r': sb.Append(@"\r"); break;
                case '\t': sb.Append(@"\t"); break;
                default:
                    if (!NeedsEscape(c))
                    {
                        sb.Append(c);
                    }
                    else if (c <= 0xFF)
                    {
                        sb.Append(@"\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        // a lone surrogate or U+FFFD: what invalid UTF-8 decodes to
                        sb.Append(@"\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    }

                    break;
            }
        }

        return sb.ToString();
    }

    /// <summary>C0 and C1 controls, DEL, backslash, surrogates and the replacement character.</summary>
    private static bool NeedsEscape(char c) =>
        c < 0x20 || c is '\\' or '\x7f' || (c >= 0x80 && c < 0xA0) || char.IsSurrogate(c) || c == '\uFFFD';
}
