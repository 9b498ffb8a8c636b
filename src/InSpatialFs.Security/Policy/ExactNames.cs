using System.Buffers;
using System.Text;
using System.Text.Unicode;

namespace InSpatialFs.Security.Policy;

/// <summary>
/// Names are bytes on Linux; the proxy and the policy work on strings. This codec maps name bytes to a string
/// without losing anything: valid UTF-8 decodes as usual, and each byte of an invalid sequence becomes the lone
/// low surrogate U+DC00+byte (0x80..0xFF; the scheme Python calls "surrogateescape"). A lone low surrogate never
/// comes out of valid UTF-8 (a decoded supplementary character is always a high+low pair), so two different byte
/// strings never decode to the same string: no two names fold together, as they did when invalid bytes all became
/// U+FFFD. Policy patterns are valid UTF-8, so an escaped byte can only ever be matched by a wildcard.
/// Display (events, logs, terminals) shows each escaped byte as the text <c>\xNN</c> (<see cref="ForDisplay"/>).
/// </summary>
public static class ExactNames
{
    private const char EscapeBase = '\uDC00';

    /// <summary>Decodes name or path bytes losslessly (valid UTF-8 takes the vectorised fast path).</summary>
    public static string Decode(ReadOnlySpan<byte> bytes)
    {
        if (Utf8.IsValid(bytes))
        {
            return Encoding.UTF8.GetString(bytes);
        }

        char[] rented = ArrayPool<char>.Shared.Rent(bytes.Length * 2);
        try
        {
            Span<char> chars = rented;
            int written = 0;
            while (!bytes.IsEmpty)
            {
                OperationStatus status = Utf8.ToUtf16(bytes, chars[written..], out int read, out int produced, replaceInvalidSequences: false);
                written += produced;
                bytes = bytes[read..];
                if (status == OperationStatus.Done)
                {
                    break;
                }

                // InvalidData or NeedMoreData (a truncated sequence at the end): escape one byte and go on.
                chars[written++] = (char)(EscapeBase + bytes[0]);
                bytes = bytes[1..];
            }

            return new string(chars[..written]);
        }
        finally
        {
            ArrayPool<char>.Shared.Return(rented);
        }
    }

    /// <summary>True when <paramref name="s"/> holds an escaped byte (a lone low surrogate).</summary>
    public static bool HasEscapedBytes(ReadOnlySpan<char> s)
    {
        int i = s.IndexOfAnyInRange('\uD800', '\uDFFF');
        if (i < 0)
        {
            return false;
        }

        for (; i < s.Length; i++)
        {
            char c = s[i];
            if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                i++; // a real supplementary character
            }
            else if (char.IsSurrogate(c))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The bytes a decoded string stands for (the exact inverse of <see cref="Decode"/>).</summary>
    public static byte[] Encode(string s)
    {
        ArgumentNullException.ThrowIfNull(s);
        if (!HasEscapedBytes(s))
        {
            return Encoding.UTF8.GetBytes(s);
        }

        var output = new ArrayBufferWriter<byte>(s.Length + 8);
        Span<byte> one = stackalloc byte[4];
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                int n = Encoding.UTF8.GetBytes(s.AsSpan(i, 2), one);
                output.Write(one[..n]);
                i++;
            }
            else if (c is >= '\uDC80' and <= '\uDCFF')
            {
                output.Write([(byte)(c - EscapeBase)]);
            }
            else
            {
                int n = Encoding.UTF8.GetBytes(s.AsSpan(i, 1), one);
                output.Write(one[..n]);
            }
        }

        return output.WrittenSpan.ToArray();
    }

    /// <summary>
    /// A decoded name for people and JSON: escaped bytes as the text <c>\xNN</c> (JSON cannot carry a lone
    /// surrogate). Strings without escaped bytes are returned as they are, without copying.
    /// </summary>
    public static string ForDisplay(string s)
    {
        if (s is null || !HasEscapedBytes(s))
        {
            return s!;
        }

        var sb = new StringBuilder(s.Length + 16);
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                sb.Append(c).Append(s[i + 1]);
                i++;
            }
            else if (char.IsSurrogate(c))
            {
                int b = c is >= '\uDC80' and <= '\uDCFF' ? c - EscapeBase : 0xFFFD;
                sb.Append(b <= 0xFF ? $"\\x{b:x2}" : "\uFFFD");
            }
            else
            {
                sb.Append(c);
            }
        }

        return sb.ToString();
    }
}
