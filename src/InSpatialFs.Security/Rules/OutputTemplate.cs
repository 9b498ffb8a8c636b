using System.Text;
using InSpatialFs.Security.Events;

namespace InSpatialFs.Security.Rules;

/// <summary>
/// A rule's output as Falco writes it: text with <c>%field</c> and <c>%field[arg]</c> references, bound at compile
/// time. A value the event does not have prints as <c>&lt;NA&gt;</c>, as in Falco; so does a Falco field a filesystem
/// cannot know (<c>%fd.lport</c>, <c>%container.image.repository</c>), which does not stop the rule from loading.
/// The referenced fields are Falco's <c>output_fields</c> of an alert.
/// </summary>
internal sealed class OutputTemplate
{
    private readonly (string Literal, string? Key, EventField? Field)[] _parts;

    private OutputTemplate((string, string?, EventField?)[] parts, string text)
    {
        _parts = parts;
        Text = text;
        Fields = parts.Where(p => p.Item2 != null).Select(p => (p.Item2!, p.Item3)).DistinctBy(p => p.Item1).ToArray();
    }

    /// <summary>The template as written (with any appended text).</summary>
    public string Text { get; }

    /// <summary>The fields referenced, by the name written, for output_fields; null field: a Falco field we do not have.</summary>
    public IReadOnlyList<(string Key, EventField? Field)> Fields { get; }

    /// <param name="append">Falco's <c>-p</c> / append_output: text added to every rule's output (with its own fields).</param>
    public static OutputTemplate? Compile(SourceText? text, DiagnosticBag diagnostics, string fallback, string? append = null)
    {
        string s = text?.Text.Trim() ?? fallback;
        if (!string.IsNullOrWhiteSpace(append))
        {
            s = s + " " + append.Trim();
        }

        var parts = new List<(string, string?, EventField?)>();
        var literal = new StringBuilder();
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] != '%' || i + 1 >= s.Length || !char.IsAsciiLetter(s[i + 1]))
            {
                literal.Append(s[i]);
                continue;
            }

            int end = i + 1;
            while (end < s.Length && (char.IsAsciiLetterOrDigit(s[end]) || s[end] is '.' or '_'))
            {
                end++;
            }

            string name = s[(i + 1)..end];
            string? arg = null;
            if (end < s.Length && s[end] == '[' && s.IndexOf(']', end) is int close and > 0)
            {
                arg = s[(end + 1)..close];
                end = close + 1;
            }

            // "%fd.name." at the end of a sentence: trailing dots are punctuation.
            FieldLookup lookup = EventFields.Resolve(name, arg, out EventField? field);
            while (lookup == FieldLookup.Unknown && arg == null && name.EndsWith('.'))
            {
                name = name[..^1];
                end--;
                lookup = EventFields.Resolve(name, arg, out field);
            }

            string key = arg == null ? name : $"{name}[{arg}]";
            if (lookup is FieldLookup.Unknown or FieldLookup.BadArgument && key != "container.info")
            {
                diagnostics.Error(RuleDiagnosticCodes.UnknownField, text?.PositionOf(i) ?? SourcePosition.None, $"unknown field '%{key}' in output");
                return null;
            }

            if (key == "container.info")
            {
                // Falco keeps %container.info in old rule files and prints nothing for it now.
                parts.Add((literal.ToString(), null, null));
                literal.Clear();
                i = end - 1;
                continue;
            }

            parts.Add((literal.ToString(), key, field));
            literal.Clear();
            i = end - 1;
        }

        parts.Add((literal.ToString(), null, null));
        return new OutputTemplate([.. parts], s);
    }

    public string Format(FsEvent e)
    {
        var sb = new StringBuilder();
        foreach ((string literal, string? key, EventField? field) in _parts)
        {
            sb.Append(literal);
            if (key != null)
            {
                sb.Append(field?.Format(e) ?? "<NA>");
            }
        }

        return sb.ToString();
    }
}
