using System.Globalization;
using System.Text;
using InSpatialFs.Security.Events;

namespace InSpatialFs.Security.Rules;

/// <summary>A compiled condition: the event, and the events earlier sequence steps captured (by step index).</summary>
internal delegate bool EventPredicate(FsEvent e, FsEvent?[]? captures);

internal sealed class CompiledCondition
{
    public required Cond Expanded { get; init; }
    public required EventPredicate Predicate { get; init; }
    /// <summary>Bit per <see cref="FsOp"/> the condition can match (all bits when it does not pin evt.op).</summary>
    public required ulong OpMask { get; init; }

    public string Explain() => ConditionCompiler.Render(Expanded);
}

/// <summary>
/// Stage 3: condition text → syntax tree → macros and lists expanded and type-checked → predicate
/// closures. Field accessors are bound here, so evaluation does no name lookup and no reflection.
/// Type errors are reported against the file position of the text they are in (a macro's own file).
/// </summary>
internal sealed class ConditionCompiler
{
    public const ulong AllOps = ulong.MaxValue;

    /// <summary>Lists at or below this size are scanned; larger ones use a hash set (both allocation-free).</summary>
    private const int LinearListMax = 8;

    private readonly CollectedRules _rules;
    private readonly DiagnosticBag _diagnostics;
    private readonly Dictionary<string, Cond?> _expandedMacros = new(StringComparer.Ordinal);
    private readonly HashSet<string> _expanding = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<string>?> _expandedLists = new(StringComparer.Ordinal);

    public ConditionCompiler(CollectedRules rules, DiagnosticBag diagnostics)
    {
        _rules = rules;
        _diagnostics = diagnostics;
    }

    /// <summary>Compiles a condition; <paramref name="captureSteps"/> are the step names <c>$step.field</c> may use. Null on error.</summary>
    public CompiledCondition? Compile(ConditionSource source, IReadOnlyList<string>? captureSteps = null, Cond? andNot = null)
    {
        Cond? parsed = ParseReporting(source);
        if (parsed == null)
        {
            return null;
        }

        Cond? expanded = Expand(parsed, source, captureSteps);
        if (expanded == null)
        {
            return null;
        }

        if (andNot != null)
        {
            expanded = new AndCond(expanded, new NotCond(andNot, 0));
        }

        return new CompiledCondition { Expanded = expanded, Predicate = Build(expanded, captureSteps), OpMask = OpMaskOf(expanded) };
    }

    /// <summary>Expands an exception's tree (fields, comps, values) for the rule at <paramref name="at"/>.</summary>
    public Cond? CompileExceptions(IReadOnlyList<ExceptionSpec> exceptions)
    {
        Cond? any = null;
        foreach (ExceptionSpec ex in exceptions)
        {
            foreach (List<SourceText> row in ex.Values)
            {
                if (row.Count != ex.Fields.Count)
                {
                    _diagnostics.Error(RuleDiagnosticCodes.BadValue, row.Count > 0 ? row[0].At : ex.At,
                        $"exception '{ex.Name}': a row has {row.Count} values for {ex.Fields.Count} fields");
                    return null;
                }

                Cond? all = null;
                for (int i = 0; i < row.Count; i++)
                {
                    string comp = i < ex.Comps.Count ? ex.Comps[i].Text : "=";
                    bool listOp = comp is "in" or "pmatch";
                    // An exception value is a (list), a list name, or else one literal value.
                    string text = row[i].Text;
                    bool listSyntax = text.TrimStart().StartsWith('(') || _rules.Lists.ContainsKey(text);
                    Operand value = listOp && listSyntax ? ConditionParser.ParseOperandText(text, true) : new ValueOperand(text, true, 0);

                    var cmp = new CompareCond(ex.Fields[i].Text, comp, value, 0, 0);
                    Cond? checkedCmp = Expand(cmp, ConditionSource.From(row[i]), null);
                    if (checkedCmp == null)
                    {
                        return null;
                    }

                    all = all == null ? checkedCmp : new AndCond(all, checkedCmp);
                }

                if (all != null)
                {
                    any = any == null ? all : new OrCond(any, all);
                }
            }
        }

        return any;
    }

    /// <summary>Expands every macro not yet expanded (so errors in unused macros are reported) and warns on unused items.</summary>
    public void CheckUnused()
    {
        foreach (CollectedMacro m in _rules.Macros.Values)
        {
            if (!m.Used)
            {
                ExpandMacro(m);
                _diagnostics.Warning(RuleDiagnosticCodes.UnusedMacro, m.At, $"macro '{m.Name}' is not used by any rule");
            }
        }

        foreach (CollectedList l in _rules.Lists.Values)
        {
            if (!l.Used)
            {
                _diagnostics.Warning(RuleDiagnosticCodes.UnusedList, l.At, $"list '{l.Name}' is not used by any rule or macro");
            }
        }
    }

    private Cond? ParseReporting(ConditionSource source)
    {
        try
        {
            return ConditionParser.Parse(source.Text);
        }
        catch (ConditionSyntaxException ex)
        {
            string code = ex.Message.StartsWith("unknown operator", StringComparison.Ordinal) ? RuleDiagnosticCodes.BadOperator : RuleDiagnosticCodes.BadCondition;
            _diagnostics.Error(code, source.PositionOf(ex.Offset), ex.Message);
            return null;
        }
    }

    private Cond? ExpandMacro(CollectedMacro m)
    {
        m.Used = true;
        if (_expandedMacros.TryGetValue(m.Name, out Cond? done))
        {
            return done;
        }

        if (!_expanding.Add(m.Name))
        {
            _diagnostics.Error(RuleDiagnosticCodes.MacroCycle, m.At, $"macro '{m.Name}' refers to itself");
            return null;
        }

        Cond? parsed = ParseReporting(m.Condition);
        Cond? expanded = parsed == null ? null : Expand(parsed, m.Condition, null);
        _expanding.Remove(m.Name);
        _expandedMacros[m.Name] = expanded;
        return expanded;
    }

    private List<string>? ExpandList(string name, HashSet<string>? visiting = null)
    {
        if (_expandedLists.TryGetValue(name, out List<string>? done))
        {
            return done;
        }

        if (!_rules.Lists.TryGetValue(name, out CollectedList? list))
        {
            return null;
        }

        list.Used = true;
        visiting ??= new HashSet<string>(StringComparer.Ordinal);
        if (!visiting.Add(name))
        {
            return [];
        }

        var items = new List<string>();
        foreach (SourceText item in list.Items)
        {
            if (_rules.Lists.ContainsKey(item.Text) && ExpandList(item.Text, visiting) is { } nested)
            {
                items.AddRange(nested);
            }
            else
            {
                items.Add(item.Text);
            }
        }

        _expandedLists[name] = items;
        return items;
    }

    private Cond? Expand(Cond c, ConditionSource src, IReadOnlyList<string>? steps)
    {
        switch (c)
        {
            case AndCond a:
                {
                    Cond? l = Expand(a.Left, src, steps), r = Expand(a.Right, src, steps);
                    return l == null || r == null ? null : new AndCond(l, r);
                }

            case OrCond o:
                {
                    Cond? l = Expand(o.Left, src, steps), r = Expand(o.Right, src, steps);
                    return l == null || r == null ? null : new OrCond(l, r);
                }

            case NotCond n:
                return Expand(n.Inner, src, steps) is { } inner ? new NotCond(inner, n.At) : null;
            case ConstCond k:
                return k;
            case NameCond name:
                if (EventFields.TryGet(name.Name, out EventField f))
                {
                    if (f.Type == FieldType.Bool)
                    {
                        return name;
                    }

                    _diagnostics.Error(RuleDiagnosticCodes.BadOperator, src.PositionOf(name.At), $"field '{name.Name}' is not boolean; compare it with an operator");
                    return null;
                }

                if (_rules.Macros.TryGetValue(name.Name, out CollectedMacro? macro))
                {
                    return ExpandMacro(macro);
                }

                if (name.Name.Contains('.', StringComparison.Ordinal))
                {
                    _diagnostics.Error(RuleDiagnosticCodes.UnknownField, src.PositionOf(name.At), $"unknown field '{name.Name}'");
                }
                else
                {
                    _diagnostics.Error(RuleDiagnosticCodes.UndefinedMacro, src.PositionOf(name.At), $"undefined macro '{name.Name}'");
                }

                return null;
            case ExistsCond ex:
                if (!EventFields.TryGet(ex.Field, out _))
                {
                    _diagnostics.Error(RuleDiagnosticCodes.UnknownField, src.PositionOf(ex.At), $"unknown field '{ex.Field}'");
                    return null;
                }

                return ex;
            case CompareCond cmp:
                return CheckCompare(cmp, src, steps);
            default:
                return null;
        }
    }

    private static bool IsTextOnlyOp(string op) => op is "contains" or "icontains" or "startswith" or "endswith" or "glob" or "pmatch";

    private Cond? CheckCompare(CompareCond cmp, ConditionSource src, IReadOnlyList<string>? steps)
    {
        if (!EventFields.TryGet(cmp.Field, out EventField field))
        {
            _diagnostics.Error(RuleDiagnosticCodes.UnknownField, src.PositionOf(cmp.At), $"unknown field '{cmp.Field}'");
            return null;
        }

        if (!ConditionParser.Operators.Contains(cmp.Op))
        {
            _diagnostics.Error(RuleDiagnosticCodes.BadOperator, src.PositionOf(cmp.OpAt), $"unknown operator '{cmp.Op}'");
            return null;
        }

        bool ordering = cmp.Op is "<" or "<=" or ">" or ">=";
        if ((field.Type != FieldType.Text && IsTextOnlyOp(cmp.Op)) || (field.Type != FieldType.Number && ordering)
            || (field.Type == FieldType.Bool && cmp.Op == "in"))
        {
            _diagnostics.Error(RuleDiagnosticCodes.BadOperator, src.PositionOf(cmp.OpAt), $"operator '{cmp.Op}' does not apply to {field.Type.ToString().ToLowerInvariant()} field '{cmp.Field}'");
            return null;
        }

        Operand value = cmp.Value;
        if (value is CaptureOperand cap)
        {
            if (steps == null || !steps.Contains(cap.Step))
            {
                _diagnostics.Error(RuleDiagnosticCodes.BadCapture, src.PositionOf(cap.At), $"'${cap.Step}' is not an earlier step of this sequence");
                return null;
            }

            if (!EventFields.TryGet(cap.Field, out EventField capField))
            {
                _diagnostics.Error(RuleDiagnosticCodes.UnknownField, src.PositionOf(cap.At), $"unknown field '{cap.Field}' in capture");
                return null;
            }

            if (capField.Type != field.Type || cmp.Op is "in" or "pmatch" or "glob")
            {
                _diagnostics.Error(RuleDiagnosticCodes.BadOperator, src.PositionOf(cmp.OpAt), $"'{cmp.Field} {cmp.Op} ${cap.Step}.{cap.Field}' compares unlike values");
                return null;
            }

            return cmp;
        }

        // Resolve list names and flatten into quoted values.
        List<ValueOperand> values = [];
        if (value is ListOperand list)
        {
            foreach (ValueOperand item in list.Items)
            {
                if (!item.Quoted && ExpandList(item.Text) is { } expanded)
                {
                    values.AddRange(expanded.Select(s => new ValueOperand(s, true, item.At)));
                }
                else if (!item.Quoted && list.Items.Count == 1 && cmp.Value is ListOperand { Items.Count: 1 } && !src.Text.AsSpan(list.At).StartsWith("("))
                {
                    _diagnostics.Error(RuleDiagnosticCodes.UndefinedList, src.PositionOf(item.At), $"undefined list '{item.Text}'");
                    return null;
                }
                else
                {
                    values.Add(item with { Quoted = true });
                }
            }
        }
        else if (value is ValueOperand v)
        {
            values.Add(v);
        }

        if (values.Count != 1 && cmp.Op is "=" or "!=" or "<" or "<=" or ">" or ">=")
        {
            _diagnostics.Error(RuleDiagnosticCodes.BadOperator, src.PositionOf(cmp.OpAt), $"operator '{cmp.Op}' takes one value; use 'in' for a list");
            return null;
        }

        foreach (ValueOperand item in values)
        {
            bool ok = field.Type switch
            {
                FieldType.Number => TryParseNumber(item.Text, out _),
                FieldType.Bool => item.Text is "true" or "false",
                _ => field.Domain == null || IsTextOnlyOp(cmp.Op) || field.Domain.Contains(item.Text),
            };
            if (!ok)
            {
                string expect = field.Type switch
                {
                    FieldType.Number => "a number",
                    FieldType.Bool => "true or false",
                    _ => "one of " + string.Join(", ", field.Domain!),
                };
                _diagnostics.Error(RuleDiagnosticCodes.BadValue, src.PositionOf(item.At), $"'{item.Text}' is not a valid value of {cmp.Field} (expected {expect})");
                return null;
            }
        }

        Operand resolved = values.Count == 1 && cmp.Op is not ("in" or "pmatch") ? values[0] with { Quoted = true } : new ListOperand(values, value.Offset);
        return cmp with { Value = resolved };
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

    // ---- op index ----

    internal static ulong OpMaskOf(Cond c) => c switch
    {
        AndCond a => OpMaskOf(a.Left) & OpMaskOf(a.Right),
        OrCond o => OpMaskOf(o.Left) | OpMaskOf(o.Right),
        ConstCond { Value: false } => 0,
        CompareCond { Field: "evt.op", Op: "=", Value: ValueOperand v } => OpBit(v.Text),
        CompareCond { Field: "evt.op", Op: "in", Value: ListOperand l } => l.Items.Aggregate(0UL, (m, i) => m | OpBit(i.Text)),
        _ => AllOps,
    };

    private static ulong OpBit(string name) => FsOpNames.TryParse(name, out FsOp op) ? 1UL << (int)op : 0;

    // ---- rendering (explain) ----

    internal static string Render(Cond c)
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
                Render(a.Left, sb, true);
                sb.Append(" and ");
                Render(a.Right, sb, true);
                break;
            case OrCond o:
                if (parentIsAnd)
                {
                    sb.Append('(');
                }

                Render(o.Left, sb, false);
                sb.Append(" or ");
                Render(o.Right, sb, false);
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
            case ExistsCond ex: sb.Append(ex.Field).Append(" exists"); break;
            case ConstCond k: sb.Append(k.Value ? "(always)" : "(never)"); break;
            case CompareCond cmp:
                sb.Append(cmp.Field).Append(' ').Append(cmp.Op).Append(' ');
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
            case CaptureOperand cap: sb.Append('$').Append(cap.Step).Append('.').Append(cap.Field); break;
            case ListOperand l:
                sb.Append('(').AppendJoin(", ", l.Items.Select(i => Quote(i.Text))).Append(')');
                break;
            default: break;
        }
    }

    private static string Quote(string s) =>
        s.Length > 0 && s.All(ch => char.IsAsciiLetterOrDigit(ch) || ch is '/' or '.' or '_' or '-' or '*' or '?')
            ? s
            : "\"" + s.Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";

    // ---- predicate construction ----

    private static EventPredicate Build(Cond c, IReadOnlyList<string>? steps)
    {
        switch (c)
        {
            case AndCond a:
                {
                    EventPredicate l = Build(a.Left, steps), r = Build(a.Right, steps);
                    return (e, k) => l(e, k) && r(e, k);
                }

            case OrCond o:
                {
                    EventPredicate l = Build(o.Left, steps), r = Build(o.Right, steps);
                    return (e, k) => l(e, k) || r(e, k);
                }

            case NotCond n:
                {
                    EventPredicate inner = Build(n.Inner, steps);
                    return (e, k) => !inner(e, k);
                }

            case ConstCond k:
                return k.Value ? static (_, _) => true : static (_, _) => false;
            case NameCond name:
                {
                    EventFields.TryGet(name.Name, out EventField f);
                    Func<FsEvent, bool> get = f.Bool!;
                    return (e, _) => get(e);
                }

            case ExistsCond ex:
                {
                    EventFields.TryGet(ex.Field, out EventField f);
                    if (f.Type != FieldType.Text)
                    {
                        return static (_, _) => true;
                    }

                    TextGetter get = f.Text!;
                    return (e, _) =>
                    {
                        get(e, out bool present);
                        return present;
                    };
                }

            case CompareCond cmp:
                return BuildCompare(cmp, steps);
            default:
                throw new InvalidOperationException("unexpected condition node " + c.GetType().Name);
        }
    }

    private static EventPredicate BuildCompare(CompareCond cmp, IReadOnlyList<string>? steps)
    {
        EventFields.TryGet(cmp.Field, out EventField field);
        if (cmp.Value is CaptureOperand cap)
        {
            return BuildCapture(field, cmp.Op, cap, steps!);
        }

        if (cmp.Field == "evt.op")
        {
            // The commonest test in every rule: compare the enum, not its name.
            ulong mask = cmp.Value is ValueOperand one ? OpBit(one.Text) : OpMaskOf(cmp);
            return cmp.Op == "!=" ? (e, _) => (mask & (1UL << (int)e.Op)) == 0 : (e, _) => (mask & (1UL << (int)e.Op)) != 0;
        }

        return field.Type switch
        {
            FieldType.Number => BuildNumber(field.Number!, cmp),
            FieldType.Bool => BuildBool(field.Bool!, cmp),
            _ => BuildText(field.Text!, cmp),
        };
    }

    private static EventPredicate BuildBool(Func<FsEvent, bool> get, CompareCond cmp)
    {
        bool want = ((ValueOperand)cmp.Value).Text == "true";
        return cmp.Op == "!=" ? (e, _) => get(e) != want : (e, _) => get(e) == want;
    }

    private static EventPredicate BuildNumber(Func<FsEvent, long> get, CompareCond cmp)
    {
        if (cmp.Value is ListOperand list)
        {
            long[] set = list.Items.Select(i => TryParseNumber(i.Text, out long n) ? n : 0).ToArray();
            return (e, _) => Array.IndexOf(set, get(e)) >= 0;
        }

        // Values were checked when the tree was expanded.
        long v = TryParseNumber(((ValueOperand)cmp.Value).Text, out long parsed) ? parsed : 0;
        return cmp.Op switch
        {
            "=" => (e, _) => get(e) == v,
            "!=" => (e, _) => get(e) != v,
            "<" => (e, _) => get(e) < v,
            "<=" => (e, _) => get(e) <= v,
            ">" => (e, _) => get(e) > v,
            _ => (e, _) => get(e) >= v,
        };
    }

    internal static bool PathPrefix(ReadOnlySpan<char> path, string prefix)
    {
        if (!path.StartsWith(prefix, StringComparison.Ordinal))
        {
            return false;
        }

        return path.Length == prefix.Length || prefix.EndsWith('/') || path[prefix.Length] == '/';
    }

    internal static bool ApplyText(string op, ReadOnlySpan<char> s, ReadOnlySpan<char> v) => op switch
    {
        "=" or "in" => s.SequenceEqual(v),
        "!=" => !s.SequenceEqual(v),
        "contains" => s.Contains(v, StringComparison.Ordinal),
        "icontains" => s.Contains(v, StringComparison.OrdinalIgnoreCase),
        "startswith" => s.StartsWith(v, StringComparison.Ordinal),
        "endswith" => s.EndsWith(v, StringComparison.Ordinal),
        "glob" => Glob.IsMatch(v, s),
        _ => false,
    };

    private static EventPredicate BuildText(TextGetter get, CompareCond cmp)
    {
        if (cmp.Value is ListOperand list)
        {
            string[] items = list.Items.Select(i => i.Text).ToArray();
            switch (cmp.Op)
            {
                case "in" when items.Length > LinearListMax:
                    {
                        HashSet<string>.AlternateLookup<ReadOnlySpan<char>> lookup =
                            new HashSet<string>(items, StringComparer.Ordinal).GetAlternateLookup<ReadOnlySpan<char>>();
                        return (e, _) =>
                        {
                            ReadOnlySpan<char> s = get(e, out bool p);
                            return p && lookup.Contains(s);
                        };
                    }

                case "pmatch":
                    return (e, _) =>
                    {
                        ReadOnlySpan<char> s = get(e, out bool p);
                        if (!p)
                        {
                            return false;
                        }

                        foreach (string prefix in items)
                        {
                            if (PathPrefix(s, prefix))
                            {
                                return true;
                            }
                        }

                        return false;
                    };
                default:
                    {
                        string op = cmp.Op;
                        return (e, _) =>
                        {
                            ReadOnlySpan<char> s = get(e, out bool p);
                            if (!p)
                            {
                                return false;
                            }

                            foreach (string item in items)
                            {
                                if (ApplyText(op, s, item))
                                {
                                    return true;
                                }
                            }

                            return false;
                        };
                    }
            }
        }

        string v = ((ValueOperand)cmp.Value).Text;
        return cmp.Op switch
        {
            "=" => (e, _) =>
            {
                ReadOnlySpan<char> s = get(e, out bool p);
                return p && s.SequenceEqual(v);
            },
            "!=" => (e, _) =>
            {
                ReadOnlySpan<char> s = get(e, out bool p);
                return p && !s.SequenceEqual(v);
            },
            "contains" => (e, _) =>
            {
                ReadOnlySpan<char> s = get(e, out bool p);
                return p && s.Contains(v, StringComparison.Ordinal);
            },
            "icontains" => (e, _) =>
            {
                ReadOnlySpan<char> s = get(e, out bool p);
                return p && s.Contains(v, StringComparison.OrdinalIgnoreCase);
            },
            "startswith" => (e, _) =>
            {
                ReadOnlySpan<char> s = get(e, out bool p);
                return p && s.StartsWith(v, StringComparison.Ordinal);
            },
            "endswith" => (e, _) =>
            {
                ReadOnlySpan<char> s = get(e, out bool p);
                return p && s.EndsWith(v, StringComparison.Ordinal);
            },
            _ => (e, _) =>
            {
                ReadOnlySpan<char> s = get(e, out bool p);
                return p && Glob.IsMatch(v, s);
            },
        };
    }

    private static EventPredicate BuildCapture(EventField field, string op, CaptureOperand cap, IReadOnlyList<string> steps)
    {
        int index = IndexOf(steps, cap.Step);
        EventFields.TryGet(cap.Field, out EventField other);
        if (field.Type == FieldType.Text)
        {
            TextGetter get = field.Text!, getOther = other.Text!;
            return (e, k) =>
            {
                FsEvent? captured = k?[index];
                if (captured == null)
                {
                    return false;
                }

                ReadOnlySpan<char> s = get(e, out bool p);
                ReadOnlySpan<char> v = getOther(captured, out bool q);
                return p && q && ApplyText(op, s, v);
            };
        }

        Func<FsEvent, long> num = field.Type == FieldType.Number ? field.Number! : e => field.Bool!(e) ? 1 : 0;
        Func<FsEvent, long> numOther = other.Type == FieldType.Number ? other.Number! : e => other.Bool!(e) ? 1 : 0;
        return (e, k) =>
        {
            FsEvent? captured = k?[index];
            if (captured == null)
            {
                return false;
            }

            long a = num(e), b = numOther(captured);
            return op switch
            {
                "=" => a == b,
                "!=" => a != b,
                "<" => a < b,
                "<=" => a <= b,
                ">" => a > b,
                _ => a >= b,
            };
        };
    }

    private static int IndexOf(IReadOnlyList<string> steps, string name)
    {
        for (int i = 0; i < steps.Count; i++)
        {
            if (steps[i] == name)
            {
                return i;
            }
        }

        return -1;
    }
}
