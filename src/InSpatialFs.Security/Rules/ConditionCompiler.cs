using System.Globalization;
using System.Text.RegularExpressions;
using InSpatialFs.Security.Events;

namespace InSpatialFs.Security.Rules;

/// <summary>A compiled condition: the event, and the events earlier sequence steps captured (by step index).</summary>
internal delegate bool EventPredicate(FsEvent e, FsEvent?[]? captures);

internal sealed class CompiledCondition
{
    public required Cond Expanded { get; init; }
    public required EventPredicate Predicate { get; init; }
    /// <summary>Bit per <see cref="FsOp"/> the condition can match (all bits when it does not pin evt.type).</summary>
    public required ulong OpMask { get; init; }

    public string Explain() => ConditionRendering.Render(Expanded);
}

/// <summary>Why a rule cannot be loaded here although it is valid Falco: fields or events a filesystem does not have.</summary>
internal sealed class SkipReasons
{
    public SortedSet<string> Fields { get; } = new(StringComparer.Ordinal);
    public SortedSet<string> EventTypes { get; } = new(StringComparer.Ordinal);

    public bool Any => Fields.Count > 0;

    public void Add(SkipReasons other)
    {
        Fields.UnionWith(other.Fields);
        EventTypes.UnionWith(other.EventTypes);
    }
}

/// <summary>
/// Stage 3: condition text → syntax tree → macros and lists expanded and type-checked → predicates (built by
/// <see cref="PredicateBuilder"/>). Errors are reported against the file position of the text they are in (a
/// macro's own file, the exact line inside a folded block). Expansion is bounded: a condition may not grow past
/// <see cref="MaxNodes"/> nodes or <see cref="MaxDepth"/> levels, a list past <see cref="MaxListItems"/> items, so
/// lists or macros that double at each level are an R022 error, not an out-of-memory crash.
/// </summary>
internal sealed partial class ConditionCompiler
{
    public const ulong AllOps = ulong.MaxValue;
    public const int MaxNodes = 100_000;
    public const int MaxDepth = 400;
    public const int MaxListItems = 100_000;

    private readonly CollectedRules _rules;
    private readonly DiagnosticBag _diagnostics;
    private readonly Dictionary<string, Expansion?> _expandedMacros = new(StringComparer.Ordinal);
    private readonly HashSet<string> _expanding = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<string>?> _expandedLists = new(StringComparer.Ordinal);

    /// <summary>An expanded subtree with what it costs and what it needs; shared subtrees (macros) are counted each time used.</summary>
    private sealed record Expansion(Cond Node, long Size, int Depth, SkipReasons Needs);

    public ConditionCompiler(CollectedRules rules, DiagnosticBag diagnostics)
    {
        _rules = rules;
        _diagnostics = diagnostics;
    }

    /// <summary>Compiles a condition; <paramref name="captureSteps"/> are the step names <c>$step.field</c> may use. Null on error or skip.</summary>
    public CompiledCondition? Compile(ConditionSource source, SkipReasons skip, IReadOnlyList<string>? captureSteps = null, Cond? andNot = null, bool unknownSkips = false)
    {
        Cond? parsed = ParseReporting(source);
        if (parsed == null)
        {
            return null;
        }

        Expansion? expanded = Expand(parsed, new Context(source, captureSteps, unknownSkips));
        if (expanded == null)
        {
            return null;
        }

        skip.Add(expanded.Needs);
        if (skip.Any)
        {
            return null;
        }

        Cond node = andNot == null ? expanded.Node : new AndCond([expanded.Node, new NotCond(andNot, 0)], 0);
        return new CompiledCondition { Expanded = node, Predicate = PredicateBuilder.Build(node, captureSteps), OpMask = OpMaskOf(node) };
    }

    /// <summary>The exceptions of a rule as one condition (any matching row excludes the event); null when there are none or on error.</summary>
    public Cond? CompileExceptions(CollectedRule rule, SkipReasons skip, out bool failed)
    {
        failed = false;
        var rows = new List<Cond>();
        foreach ((string text, SourceText at) in ExceptionConditions.Build(rule.Exceptions, _diagnostics, out bool bad))
        {
            failed |= bad;
            ConditionSource source = ConditionSource.From(new SourceText(text, at.At));
            Cond? parsed = ParseReporting(source);
            Expansion? e = parsed == null ? null : Expand(parsed, new Context(source, null, rule.SkipIfUnknownFilter));
            if (e == null)
            {
                failed = true;
                continue;
            }

            skip.Add(e.Needs);
            rows.Add(e.Node);
        }

        return rows.Count == 0 ? null : rows.Count == 1 ? rows[0] : new OrCond(rows, 0);
    }

    /// <summary>Expands every macro not yet expanded (so errors in unused macros are reported) and warns on unused items.</summary>
    public void CheckUnused()
    {
        foreach (CollectedMacro m in _rules.Macros.Values)
        {
            if (!m.Used)
            {
                ExpandMacro(m, unknownSkips: false);
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
            _diagnostics.Error(ex.BadOperator ? RuleDiagnosticCodes.BadOperator : RuleDiagnosticCodes.BadCondition, source.PositionOf(ex.Offset), ex.Message);
            return null;
        }
    }

    private sealed record Context(ConditionSource Source, IReadOnlyList<string>? Steps, bool UnknownSkips);

    private Expansion? ExpandMacro(CollectedMacro m, bool unknownSkips)
    {
        m.Used = true;
        if (_expandedMacros.TryGetValue(m.Name, out Expansion? done))
        {
            return done;
        }

        if (!_expanding.Add(m.Name))
        {
            _diagnostics.Error(RuleDiagnosticCodes.MacroCycle, m.At, $"macro '{m.Name}' refers to itself");
            return null;
        }

        Cond? parsed = ParseReporting(m.Condition);
        Expansion? expanded = parsed == null ? null : Expand(parsed, new Context(m.Condition, null, unknownSkips));
        _expanding.Remove(m.Name);
        _expandedMacros[m.Name] = expanded;
        return expanded;
    }

    /// <summary>A list's items with nested lists expanded and quoted items unquoted, as Falco substitutes them; null if no such list.</summary>
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
                items.Add(UnquoteItem(item));
            }

            if (items.Count > MaxListItems)
            {
                _diagnostics.Error(RuleDiagnosticCodes.TooLarge, list.At, $"list '{name}' expands to more than {MaxListItems} items");
                items.Clear();
                break;
            }
        }

        visiting.Remove(name);
        _expandedLists[name] = items;
        return items;
    }

    /// <summary>Falco pastes list items into the condition text, so an item written with quotes ('"(systemd)"') is that quoted string.</summary>
    private string UnquoteItem(SourceText item)
    {
        string t = item.Text.Trim();
        if (t.Length >= 2 && t[0] is '"' or '\'' && t[^1] == t[0])
        {
            try
            {
                return ConditionParser.Unescape(t, 0);
            }
            catch (ConditionSyntaxException ex)
            {
                _diagnostics.Error(RuleDiagnosticCodes.BadValue, item.At, ex.Message);
            }
        }

        return item.Text;
    }

    private Expansion? Limit(Expansion e, ConditionSource src, int at)
    {
        if (e.Size > MaxNodes || e.Depth > MaxDepth)
        {
            _diagnostics.Error(RuleDiagnosticCodes.TooLarge, src.PositionOf(at),
                $"the condition grows past the limits once macros and lists are expanded ({e.Size} nodes, {e.Depth} levels; at most {MaxNodes} nodes, {MaxDepth} levels)");
            return null;
        }

        return e;
    }

    private Expansion? ExpandAll(IReadOnlyList<Cond> children, Context ctx, Func<List<Cond>, Cond> make, int at)
    {
        var nodes = new List<Cond>(children.Count);
        var needs = new SkipReasons();
        long size = 1;
        int depth = 0;
        bool ok = true;
        foreach (Cond child in children)
        {
            Expansion? e = Expand(child, ctx);
            if (e == null)
            {
                ok = false;
                continue;
            }

            nodes.Add(e.Node);
            needs.Add(e.Needs);
            size += e.Size;
            depth = Math.Max(depth, e.Depth);
            if (size > MaxNodes)
            {
                return Limit(new Expansion(e.Node, size, depth + 1, needs), ctx.Source, at);
            }
        }

        return ok ? Limit(new Expansion(make(nodes), size, depth + 1, needs), ctx.Source, at) : null;
    }

    private Expansion? Expand(Cond c, Context ctx)
    {
        switch (c)
        {
            case AndCond a:
                return ExpandAll(a.Children, ctx, nodes => new AndCond(nodes, a.At), a.At);
            case OrCond o:
                return ExpandAll(o.Children, ctx, nodes => new OrCond(nodes, o.At), o.At);
            case NotCond n:
                return Expand(n.Inner, ctx) is { } inner ? Limit(inner with { Node = new NotCond(inner.Node, n.At), Size = inner.Size + 1, Depth = inner.Depth + 1 }, ctx.Source, n.At) : null;
            case ConstCond k:
                return new Expansion(k, 1, 1, new SkipReasons());
            case NameCond name:
                if (_rules.Macros.TryGetValue(name.Name, out CollectedMacro? macro))
                {
                    return ExpandMacro(macro, ctx.UnknownSkips);
                }

                _diagnostics.Error(RuleDiagnosticCodes.UndefinedMacro, ctx.Source.PositionOf(name.At), $"undefined macro '{name.Name}'");
                return null;
            case BoolFieldCond b:
                {
                    var needs = new SkipReasons();
                    if (!Bind(b.Field, ctx, needs, out EventField? f))
                    {
                        return null;
                    }

                    if (f != null && f.Type != FieldType.Bool)
                    {
                        _diagnostics.Error(RuleDiagnosticCodes.BadOperator, ctx.Source.PositionOf(b.At), $"field '{b.Field.Text}' is not boolean; compare it with an operator");
                        return null;
                    }

                    return new Expansion(b, 1, 1, needs);
                }

            case ExistsCond ex:
                {
                    var needs = new SkipReasons();
                    return Bind(ex.Field, ctx, needs, out _) ? new Expansion(ex, 1, 1, needs) : null;
                }

            case CompareCond cmp:
                {
                    var needs = new SkipReasons();
                    Cond? checkedCmp = CheckCompare(cmp, ctx, needs);
                    return checkedCmp == null ? null : new Expansion(checkedCmp, 1, 1, needs);
                }

            default:
                // A node the parser made and the checker does not know: a bug here, not a rule to drop without a word.
                throw new InvalidOperationException("unexpected condition node " + c.GetType().Name);
        }
    }

    /// <summary>
    /// Resolves a field expression. True with a field when we have it; true with null when Falco has it and we do not
    /// (recorded in <paramref name="needs"/>: the rule is skipped); false after reporting an error.
    /// </summary>
    private bool Bind(FieldExpr expr, Context ctx, SkipReasons needs, out EventField? field)
    {
        field = null;
        SourcePosition at = ctx.Source.PositionOf(expr.At);
        switch (expr)
        {
            case FieldName name:
                switch (EventFields.Resolve(name.Name, name.Arg, out field))
                {
                    case FieldLookup.Found:
                        return true;
                    case FieldLookup.Unavailable:
                        needs.Fields.Add(name.Text);
                        return true;
                    case FieldLookup.BadArgument:
                        _diagnostics.Error(RuleDiagnosticCodes.BadValue, at, $"'{name.Arg}' is not a valid argument of {name.Name} (an ancestor level 0..16)");
                        return false;
                    default:
                        if (ctx.UnknownSkips)
                        {
                            needs.Fields.Add(name.Text);
                            return true;
                        }

                        _diagnostics.Error(RuleDiagnosticCodes.UnknownField, at, $"unknown field '{name.Text}'");
                        return false;
                }

            case FieldTransform t:
                if (!Bind(t.Inner, ctx, needs, out EventField? inner))
                {
                    return false;
                }

                if (inner == null)
                {
                    return true;
                }

                field = FieldTransformers.Apply(t.Transformer, inner, out string? error);
                if (field == null)
                {
                    _diagnostics.Error(RuleDiagnosticCodes.BadOperator, at, error!);
                    return false;
                }

                return true;
            default:
                throw new InvalidOperationException("unexpected field expression " + expr.GetType().Name);
        }
    }

    /// <summary>The field a (type-checked) expression binds to; for the predicate builder.</summary>
    internal static EventField BindChecked(FieldExpr expr) => expr switch
    {
        FieldName n => EventFields.Resolve(n.Name, n.Arg, out EventField? f) == FieldLookup.Found ? f! : throw new InvalidOperationException("unbound field " + n.Text),
        FieldTransform t => FieldTransformers.Apply(t.Transformer, BindChecked(t.Inner), out _)!,
        _ => throw new InvalidOperationException("unexpected field expression"),
    };

    // ---- op index ----

    /// <summary>The operations a condition can match: evt.type / evt.op comparisons narrow it; anything else keeps all.</summary>
    internal static ulong OpMaskOf(Cond c) => c switch
    {
        AndCond a => a.Children.Aggregate(AllOps, (m, child) => m & OpMaskOf(child)),
        OrCond o => o.Children.Aggregate(0UL, (m, child) => m | OpMaskOf(child)),
        ConstCond { Value: false } => 0,
        CompareCond { Field: FieldName { Arg: null } f, Op: CmpOp.Eq or CmpOp.In or CmpOp.Intersects } cmp
            when EventFields.TryGet(f.Name, out EventField field) && field.OpsOf != null => ValueOps(field, cmp.Value),
        _ => AllOps,
    };

    internal static ulong ValueOps(EventField field, Operand value) => value switch
    {
        ValueOperand v => field.OpsOf!(v.Text),
        ListOperand l => l.Items.Aggregate(0UL, (m, i) => m | field.OpsOf!(i.Text)),
        _ => AllOps,
    };
}
