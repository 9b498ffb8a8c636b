namespace InSpatialFs.Security.Rules;

/// <summary>
/// Falco's exceptions turned into condition text, exactly as Falco's rule compiler writes them, so they parse and
/// match the same way: a tuple exception (<c>fields: [a, b]</c>, comps default <c>=</c>) gives one
/// <c>(a c1 v1 and b c2 v2)</c> per row; a single-field exception (comps <c>in</c>, <c>pmatch</c> or
/// <c>intersects</c>, default <c>in</c>) gives <c>(f in (v1, v2, ...))</c>. Values with blanks are quoted; a scalar
/// value for a list operator is parenthesised, so a list name there expands.
/// </summary>
internal static class ExceptionConditions
{
    private static readonly System.Buffers.SearchValues<char> NeedsQuotes = System.Buffers.SearchValues.Create(" \t,=()");

    /// <summary>One condition text per row (tuple exceptions) or per exception (single field), with the position to report.</summary>
    public static List<(string Text, SourceText At)> Build(IReadOnlyList<ExceptionSpec> exceptions, DiagnosticBag diagnostics, out bool failed)
    {
        failed = false;
        var result = new List<(string, SourceText)>();
        foreach (ExceptionSpec ex in exceptions)
        {
            if (!ex.HasFields)
            {
                diagnostics.Error(RuleDiagnosticCodes.BadValue, ex.At, $"exception '{ex.Name}' has no fields");
                failed = true;
                continue;
            }

            if (!ex.FieldsIsList)
            {
                failed |= !Single(ex, diagnostics, result);
                continue;
            }

            failed |= !Tuples(ex, diagnostics, result);
        }

        return result;
    }

    private static bool Single(ExceptionSpec ex, DiagnosticBag diagnostics, List<(string, SourceText)> result)
    {
        string comp = ex.HasComps ? ex.Comps[0].Text.Trim() : "in";
        if (ex.CompsIsList || comp is not ("in" or "pmatch" or "intersects"))
        {
            diagnostics.Error(RuleDiagnosticCodes.BadOperator, ex.HasComps ? ex.Comps[0].At : ex.At,
                $"exception '{ex.Name}': with a single field, comps is one of in, pmatch, intersects");
            return false;
        }

        var items = new List<string>();
        foreach (ExceptionValue v in ex.Values)
        {
            if (v.Scalar is not { } scalar)
            {
                diagnostics.Error(RuleDiagnosticCodes.BadValue, v.At, $"exception '{ex.Name}': with a single field, each value is one string");
                return false;
            }

            items.Add(Quote(scalar.Text));
        }

        if (items.Count > 0)
        {
            result.Add(($"{ex.Fields[0].Text} {comp} ({string.Join(", ", items)})", ex.Values[0].Scalar!.Value));
        }

        return true;
    }

    private static bool Tuples(ExceptionSpec ex, DiagnosticBag diagnostics, List<(string, SourceText)> result)
    {
        List<string> comps = ex.HasComps ? ex.Comps.ConvertAll(c => c.Text.Trim()) : ex.Fields.ConvertAll(_ => "=");
        if (!ex.CompsIsList && ex.HasComps || comps.Count != ex.Fields.Count)
        {
            diagnostics.Error(RuleDiagnosticCodes.BadValue, ex.At, $"exception '{ex.Name}': fields and comps must be lists of equal length");
            return false;
        }

        foreach (string comp in comps)
        {
            if (!CmpOps.TryParse(comp, out _))
            {
                diagnostics.Error(RuleDiagnosticCodes.BadOperator, ex.At, $"exception '{ex.Name}': '{comp}' is not a comparison operator ({CmpOps.Known})");
                return false;
            }
        }

        foreach (ExceptionValue row in ex.Values)
        {
            if (row.Items is not { } values || values.Count != ex.Fields.Count)
            {
                diagnostics.Error(RuleDiagnosticCodes.BadValue, row.At,
                    $"exception '{ex.Name}': a row has {row.Items?.Count ?? 1} values for {ex.Fields.Count} fields");
                return false;
            }

            var terms = new List<string>(values.Count);
            for (int k = 0; k < values.Count; k++)
            {
                _ = CmpOps.TryParse(comps[k], out CmpOp op); // checked above
                string value;
                if (values[k].Items is { } list)
                {
                    if (list.Any(i => i.Scalar == null))
                    {
                        diagnostics.Error(RuleDiagnosticCodes.BadValue, values[k].At, $"exception '{ex.Name}': a value list holds only strings");
                        return false;
                    }

                    value = "(" + string.Join(", ", list.Select(i => Quote(i.Scalar!.Value.Text))) + ")";
                }
                else
                {
                    string text = values[k].Scalar!.Value.Text;
                    value = op.TakesList() ? (text.StartsWith('(') ? text : "(" + text + ")") : Quote(text);
                }

                terms.Add($"{ex.Fields[k].Text} {comps[k]} {value}");
            }

            result.Add((string.Join(" and ", terms), values[0].Scalar ?? new SourceText("", row.At)));
        }

        return true;
    }

    /// <summary>Falco's quote_item (a value with a blank is quoted unless it already is), also for empty values and ones a bare string cannot hold.</summary>
    private static string Quote(string s)
    {
        if (s.Length > 0 && s[0] is '"' or '\'')
        {
            return s;
        }

        return s.Length == 0 || s.AsSpan().IndexOfAny(NeedsQuotes) >= 0 ? "\"" + s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"" : s;
    }
}
