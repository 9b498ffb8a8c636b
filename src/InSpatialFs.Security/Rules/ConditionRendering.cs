using System.Text;

namespace InSpatialFs.Security.Rules;

/// <summary>Renders an expanded condition for <c>rules explain</c> (macros and lists already expanded).</summary>
internal static class ConditionRendering
{
    public static string Render(Cond c)
    {
        var sb = new StringBuilder();
        Render(c, sb, parentIsAnd: false);
        return sb.ToString();
    }

    private static void Render(Cond c, StringBuilder sb, bool parentIsAnd)
    {
        switch (c)
        {
            case AndCond a:
                for (int i = 0; i < a.Children.Count; i++)
                {
                    if (i > 0)
                    {
                        sb.Append(" and ");
                    }

                    Render(a.Children[i], sb, true);
                }

                break;
            case OrCond o:
                if (parentIsAnd)
                {
                    sb.Append('(');
                }

                for (int i = 0; i < o.Children.Count; i++)
                {
                    if (i > 0)
                    {
                        sb.Append(" or ");
                    }

                    Render(o.Children[i], sb, false);
                }

                if (parentIsAnd)
                {
                    sb.Append(')');
                }

                break;
            case NotCond n:
                sb.Append("not ");
                bool wrap = n.Inner is AndCond or OrCond;
                if (wrap)
                {
                    sb.Append('(');
                }

                Render(n.Inner, sb, false);
                if (wrap)
                {
                    sb.Append(')');
                }

                break;
            case NameCond name: sb.Append(name.Name); break;
            case BoolFieldCond b: sb.Append(b.Field.Text); break;
            case ExistsCond ex: sb.Append(ex.Field.Text).Append(" exists"); break;
            case ConstCond k: sb.Append(k.Value ? "(always)" : "(never)"); break;
            case CompareCond cmp:
                sb.Append(cmp.Field.Text).Append(' ').Append(cmp.Op.Name()).Append(' ');
                RenderOperand(cmp.Value, sb);
                break;
            default: break;
        }
    }

    private static void RenderOperand(Operand o, StringBuilder sb)
    {
        switch (o)
        {
            case ValueOperand v: sb.Append(Quote(v.Text)); break;
            case CaptureOperand cap: sb.Append('$').Append(cap.Step).Append('.').Append(cap.Field.Text); break;
            case FieldOperand f: sb.Append("val(").Append(f.Field.Text).Append(')'); break;
            case ListOperand l:
                sb.Append('(').AppendJoin(", ", l.Items.Select(i => Quote(i.Text))).Append(')');
                break;
            default: break;
        }
    }

    private static string Quote(string s) =>
        s.Length > 0 && s.All(ch => char.IsAsciiLetterOrDigit(ch) || ch is '/' or '.' or '_' or '-' or '*' or '?' or '<' or '>')
            ? s
            : "\"" + s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";
}
