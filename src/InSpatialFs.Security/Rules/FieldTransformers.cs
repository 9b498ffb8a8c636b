using System.Buffers;
using System.Text;
using InSpatialFs.Security.Events;

namespace InSpatialFs.Security.Rules;

/// <summary>
/// Falco's field transformers: <c>tolower</c>, <c>toupper</c>, <c>b64</c> (base64 decode), <c>basename</c> and
/// <c>len</c>. A transformed field is a field like any other; its text is produced into a per-thread buffer owned by
/// that transformed field, so evaluation allocates nothing (two transformers in one check have two buffers).
/// </summary>
internal static class FieldTransformers
{
    /// <summary>Longest transformed value kept (longer inputs are cut, as Falco cuts field values).</summary>
    private const int MaxChars = 16 * 1024;

    /// <summary>The transformed field, or null with <paramref name="error"/> set when the input type does not fit.</summary>
    public static EventField? Apply(string transformer, EventField inner, out string? error)
    {
        error = null;
        if (transformer is not ("tolower" or "toupper" or "b64" or "basename" or "len"))
        {
            error = $"unknown transformer '{transformer}' (tolower, toupper, b64, basename, len)";
            return null;
        }

        if (inner.Type != FieldType.Text)
        {
            error = $"{transformer}() applies to text fields, and {inner.Name} is a {inner.Type.ToString().ToLowerInvariant()}";
            return null;
        }

        TextGetter get = inner.Text!;
        string name = $"{transformer}({inner.Name})";
        if (transformer == "len")
        {
            return new EventField
            {
                Name = name,
                Type = FieldType.Number,
                Number = (FsEvent e, out bool p) => get(e, out p).Length,
            };
        }

        if (transformer == "basename")
        {
            return new EventField
            {
                Name = name,
                Type = FieldType.Text,
                Text = (FsEvent e, out bool p) =>
                {
                    ReadOnlySpan<char> s = get(e, out p);
                    int slash = s.LastIndexOf('/');
                    return slash < 0 ? s : s[(slash + 1)..];
                },
            };
        }

#pragma warning disable CA2000 // lives as long as the compiled rule that captures it; its per-thread arrays are plain memory the GC reclaims
        var buffer = new ThreadLocal<char[]>(() => new char[256]);
#pragma warning restore CA2000
        TextGetter transform = transformer switch
        {
            "tolower" => (FsEvent e, out bool p) => Case(get(e, out p), buffer, upper: false),
            "toupper" => (FsEvent e, out bool p) => Case(get(e, out p), buffer, upper: true),
            _ => (FsEvent e, out bool p) => // b64
            {
                ReadOnlySpan<char> decoded = Base64(get(e, out bool has), buffer, has, out bool ok);
                p = ok;
                return decoded;
            },
        };
        return new EventField { Name = name, Type = FieldType.Text, Text = transform };
    }

    private static char[] Room(ThreadLocal<char[]> buffer, int length)
    {
        char[] b = buffer.Value!;
        if (b.Length < length)
        {
            b = new char[Math.Min(MaxChars, Math.Max(length, b.Length * 2))];
            buffer.Value = b;
        }

        return b;
    }

    private static ReadOnlySpan<char> Case(ReadOnlySpan<char> s, ThreadLocal<char[]> buffer, bool upper)
    {
        s = s[..Math.Min(s.Length, MaxChars)];
        char[] b = Room(buffer, s.Length);
        Span<char> dest = b.AsSpan(0, s.Length);
        if (upper)
        {
            s.ToUpperInvariant(dest);
        }
        else
        {
            s.ToLowerInvariant(dest);
        }

        return dest;
    }

    /// <summary>b64: the base64-decoded value as UTF-8 text; not base64 makes the field absent.</summary>
    private static ReadOnlySpan<char> Base64(ReadOnlySpan<char> s, ThreadLocal<char[]> buffer, bool has, out bool present)
    {
        present = has;
        if (!present)
        {
            return default;
        }

        s = s[..Math.Min(s.Length, MaxChars)];
        byte[] bytes = ArrayPool<byte>.Shared.Rent(Math.Max(4, s.Length));
        try
        {
            if (!Convert.TryFromBase64Chars(s, bytes, out int written))
            {
                present = false;
                return default;
            }

            char[] b = Room(buffer, written);
            int chars = Encoding.UTF8.GetChars(bytes.AsSpan(0, written), b);
            return b.AsSpan(0, chars);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(bytes);
        }
    }

    /// <summary>bcontains/bstartswith take hex bytes ("4d5a"); null when the text is not an even run of hex digits.</summary>
    public static byte[]? ParseHex(string hex)
    {
        if (hex.Length == 0 || hex.Length % 2 != 0)
        {
            return null;
        }

        try
        {
            return Convert.FromHexString(hex);
        }
        catch (FormatException)
        {
            return null;
        }
    }

    /// <summary>Tests a text value's UTF-8 bytes without allocating (values over 4 KiB are encoded into a pooled buffer).</summary>
    public static bool Bytes(ReadOnlySpan<char> s, byte[] needle, bool prefixOnly)
    {
        int max = Encoding.UTF8.GetMaxByteCount(s.Length);
        byte[]? rented = null;
        Span<byte> utf8 = max <= 4096 ? stackalloc byte[max] : (rented = ArrayPool<byte>.Shared.Rent(max));
        try
        {
            int n = Encoding.UTF8.GetBytes(s, utf8);
            ReadOnlySpan<byte> bytes = utf8[..n];
            return prefixOnly ? bytes.StartsWith(needle) : bytes.IndexOf(needle) >= 0;
        }
        finally
        {
            if (rented != null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }
}
