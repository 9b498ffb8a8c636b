using System.Globalization;
using System.Text.RegularExpressions;

namespace InSpatialFs.Security.Rules;

/// <summary>Type checks of one comparison: operator against field type, values against the field, lists flattened.</summary>
internal sealed partial class ConditionCompiler
{
    private void Error(string code, Context ctx, int at, string message) => _diagnostics.Error(code, ctx.Source.PositionOf(at), message);

    private Cond? CheckCompare(CompareCond cmp, Context ctx, SkipReasons needs)
    {
        if (!Bind(cmp.Field, ctx, needs, out EventField? field))
        {
            return null;
        }

        if (field == null)
        {
            return cmp; // skipped anyway; its values need no checking
        }

        CmpOp op = cmp.Op;
        bool legacyNumber = field.LegacyNumber != null && (op.IsOrdering() || AllNumeric(cmp.Value));
        FieldType type = legacyNumber ? FieldType.Number : field.Type;
        if ((type != FieldType.Text && op.IsTextOnly()) || (type != FieldType.Number && op.IsOrdering())
            || (type == FieldType.Bool && op is CmpOp.In or CmpOp.Intersects))
        {
            Error(RuleDiagnosticCodes.BadOperator, ctx, cmp.OpAt, $"operator '{op.Name()}' does not apply to {type.ToString().ToLowerInvariant()} field '{cmp.Field.Text}'");
            return null;
        }

        switch (cmp.Value)
        {
            case CaptureOperand cap:
                return CheckCapture(cmp, cap, field, ctx, needs);
            case FieldOperand other:
                if (!Bind(other.Field, ctx, needs, out EventField? rhs))
                {
                    return null;
                }

                if (rhs != null && (rhs.Type != field.Type || op.TakesList()))
                {
                    Error(RuleDiagnosticCodes.BadOperator, ctx, cmp.OpAt, $"'{cmp.Field.Text} {op.Name()} {other.Field.Text}' compares unlike values");
                    return null;
                }

                if (rhs != null && !op.ComparesTwoFields(field.Type == FieldType.Text))
                {
                    Error(RuleDiagnosticCodes.BadOperator, ctx, cmp.OpAt, $"operator '{op.Name()}' cannot compare two fields ('{cmp.Field.Text} {op.Name()} {other.Field.Text}')");
                    return null;
                }

                return cmp;
            default:
                break;
        }

        List<ValueOperand>? values = Flatten(cmp, ctx);
        if (values == null)
        {
            return null;
        }

        if (op.TakesList() && values.Count == 0)
        {
            return new ConstCond(false, cmp.At);
        }

        foreach (ValueOperand item in values)
        {
            if (!CheckValue(cmp, field, type, item, ctx, needs))
            {
                return null;
            }
        }

        Operand resolved = op.TakesList() ? new ListOperand(values, true, cmp.Value.Offset) : values[0] with { Quoted = true };
        return cmp with { Value = resolved };
    }

    private static bool AllNumeric(Operand value) => value switch
    {
        ValueOperand v => TryParseNumber(v.Text, out _),
        ListOperand l => l.Items.Count > 0 && l.Items.All(i => TryParseNumber(i.Text, out _)),
        _ => false,
    };

    private Cond? CheckCapture(CompareCond cmp, CaptureOperand cap, EventField field, Context ctx, SkipReasons needs)
    {
        if (ctx.Steps == null || !ctx.Steps.Contains(cap.Step))
        {
            Error(RuleDiagnosticCodes.BadCapture, ctx, cap.At, $"'${cap.Step}' is not an earlier step of this sequence");
            return null;
        }

        if (!Bind(cap.Field, ctx, needs, out EventField? capField))
        {
            return null;
        }

        if (capField != null && (capField.Type != field.Type || cmp.Op is CmpOp.In or CmpOp.Intersects or CmpOp.Pmatch or CmpOp.Glob or CmpOp.IGlob or CmpOp.Regex))
        {
            Error(RuleDiagnosticCodes.BadOperator, ctx, cmp.OpAt, $"'{cmp.Field.Text} {cmp.Op.Name()} ${cap.Step}.{cap.Field.Text}' compares unlike values");
            return null;
        }

        if (capField != null && !cmp.Op.ComparesTwoFields(field.Type == FieldType.Text))
        {
            Error(RuleDiagnosticCodes.BadOperator, ctx, cmp.OpAt, $"operator '{cmp.Op.Name()}' cannot compare two fields ('{cmp.Field.Text} {cmp.Op.Name()} ${cap.Step}.{cap.Field.Text}')");
            return null;
        }

        return cmp;
    }

    /// <summary>The right-hand side as plain values, list names replaced by their items.</summary>
    private List<ValueOperand>? Flatten(CompareCond cmp, Context ctx)
    {
        var values = new List<ValueOperand>();
        switch (cmp.Value)
        {
            case ValueOperand v:
                values.Add(v);
                break;
            case ListOperand list:
                foreach (ValueOperand item in list.Items)
                {
                    if (!item.Quoted && ExpandList(item.Text) is { } expanded)
                    {
                        values.AddRange(expanded.Select(s => new ValueOperand(s, true, item.At)));
                    }
                    else if (!list.Parenthesized)
                    {
                        Error(RuleDiagnosticCodes.UndefinedList, ctx, item.At, $"undefined list '{item.Text}'");
                        return null;
                    }
                    else
                    {
                        values.Add(item with { Quoted = true });
                    }

                    if (values.Count > MaxListItems)
                    {
                        Error(RuleDiagnosticCodes.TooLarge, ctx, list.At, $"the value list has more than {MaxListItems} items");
                        return null;
                    }
                }

                break;
            default:
                break;
        }

        return values;
    }

    private bool CheckValue(CompareCond cmp, EventField field, FieldType type, ValueOperand item, Context ctx, SkipReasons needs)
    {
        string text = item.Text;
        string? problem = null;
        switch (type)
        {
            case FieldType.Number when !TryParseNumber(text, out _):
                problem = "a number";
                break;
            case FieldType.Bool when text is not ("true" or "false"):
                problem = "true or false";
                break;
            case FieldType.Text when field.OpsOf != null && cmp.Op is CmpOp.Eq or CmpOp.Ne or CmpOp.In or CmpOp.Intersects:
                if (field.OpsOf(text) == 0)
                {
                    if (field.Domain != null)
                    {
                        problem = "one of " + string.Join(", ", field.Domain);
                    }
                    else
                    {
                        needs.EventTypes.Add(text); // a system call no filesystem sees: the rule can only be skipped if all are such
                    }
                }

                break;
            case FieldType.Text when field.Domain != null && !cmp.Op.IsTextOnly() && !field.Domain.Contains(text):
                problem = "one of " + string.Join(", ", field.Domain);
                break;
            case FieldType.Text when cmp.Op is CmpOp.BContains or CmpOp.BStartsWith && FieldTransformers.ParseHex(text) == null:
                problem = "hex bytes (e.g. 4d5a)";
                break;
            case FieldType.Text when cmp.Op == CmpOp.Regex:
                problem = RegexProblem(text);
                break;
            default:
                break;
        }

        if (problem != null)
        {
            Error(RuleDiagnosticCodes.BadValue, ctx, item.At, $"'{text}' is not a valid value of {cmp.Field.Text} (expected {problem})");
            return false;
        }

        return true;
    }

    private static string? RegexProblem(string pattern)
    {
        if (pattern.Length > 4096)
        {
            return "a regular expression of at most 4096 characters";
        }

        try
        {
            _ = new Regex(pattern, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant);
            return null;
        }
        catch (Exception ex) when (ex is ArgumentException or NotSupportedException)
        {
            return "a regular expression the linear-time engine accepts: " + ex.Message;
        }
    }

    internal static bool TryParseNumber(string s, out long n)
    {
        if (s.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            return long.TryParse(s.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out n);
        }

        if (s.StartsWith("0o", StringComparison.OrdinalIgnoreCase))
        {
            n = 0;
            foreach (char c in s.AsSpan(2))
            {
                if (c is < '0' or > '7' || n > long.MaxValue / 8)
                {
                    return false;
                }

                n = (n * 8) + (c - '0');
            }

            return s.Length > 2;
        }

        return long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out n);
    }
}
