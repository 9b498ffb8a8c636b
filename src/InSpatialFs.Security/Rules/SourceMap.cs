using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace InSpatialFs.Security.Rules;

/// <summary>
/// Where each character of a scalar's value came from in the file. YAML folds block scalars (<c>&gt;</c> joins lines
/// with spaces and drops indentation) and unescapes quoted ones, so an offset in the value is not an offset in the
/// file; this map walks the value and the raw text side by side (only whitespace and escapes differ) so a position
/// inside a multi-line condition is its exact file:line:column.
/// </summary>
internal sealed class ScalarMap
{
    private readonly int[] _lines;
    private readonly int[] _columns;

    private ScalarMap(int[] lines, int[] columns)
    {
        _lines = lines;
        _columns = columns;
    }

    /// <summary>The (1-based) line and column of value character <paramref name="offset"/> (past the end: the last one).</summary>
    public (int Line, int Column) Position(int offset)
    {
        if (_lines.Length == 0)
        {
            return (0, 0);
        }

        int i = Math.Clamp(offset, 0, _lines.Length - 1);
        return (_lines[i], _columns[i] + (offset > i ? offset - i : 0));
    }

    /// <summary>A map for a scalar spanning lines or written with escapes; null when value offsets are plain column offsets.</summary>
    public static ScalarMap? For(YamlScalarNode node, string value, SourceLines text)
    {
        int start = (int)node.Start.Index, end = Math.Min((int)node.End.Index, text.Length);
        if (value.Length == 0 || start < 0 || start >= end || node.Start.Line == node.End.Line && node.Style == ScalarStyle.Plain)
        {
            return null;
        }

        int r = start;
        if (node.Style is ScalarStyle.Literal or ScalarStyle.Folded)
        {
            // Skip the header line ("> ", "|-", a comment): the content starts on the next line.
            while (r < end && text[r] != '\n')
            {
                r++;
            }
        }
        else if (node.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted)
        {
            r++; // the opening quote
        }

        var lines = new int[value.Length];
        var columns = new int[value.Length];
        for (int k = 0; k < value.Length; k++)
        {
            char v = value[k];
            if (!char.IsWhiteSpace(v))
            {
                int probe = r;
                while (probe < end && text[probe] != v)
                {
                    probe++;
                }

                if (probe < end)
                {
                    r = probe;
                }
            }

            (lines[k], columns[k]) = text.LineColumn(Math.Min(r, end));
            if (r < end && text[r] == v)
            {
                r++;
            }
        }

        return new ScalarMap(lines, columns);
    }
}

/// <summary>A file's text with its line starts, for index → line:column.</summary>
internal sealed class SourceLines
{
    private readonly string _text;
    private readonly List<int> _starts = [0];

    public SourceLines(string text)
    {
        _text = text;
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] == '\n')
            {
                _starts.Add(i + 1);
            }
        }
    }

    public int Length => _text.Length;

    public char this[int index] => _text[index];

    public (int Line, int Column) LineColumn(int index)
    {
        int i = _starts.BinarySearch(index);
        int line = i >= 0 ? i : ~i - 1;
        return (line + 1, index - _starts[line] + 1);
    }
}
