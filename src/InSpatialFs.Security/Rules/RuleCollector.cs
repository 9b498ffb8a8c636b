namespace InSpatialFs.Security.Rules;

/// <summary>
/// Condition text that may have been assembled from several files (append overrides); maps an offset in
/// the joined text back to the file position it came from.
/// </summary>
internal sealed class ConditionSource
{
    private readonly List<(int Start, SourceText Part)> _parts = [];

    public ConditionSource(SourceText first) => _parts.Add((0, first));

    public string Text { get; private set; } = "";

    public SourcePosition At => _parts[0].Part.At;

    public static ConditionSource From(SourceText first)
    {
        var c = new ConditionSource(first);
        c.Text = first.Text;
        return c;
    }

    public ConditionSource Append(SourceText more)
    {
        var c = new ConditionSource(_parts[0].Part);
        c._parts.Clear();
        c._parts.AddRange(_parts);
        string joined = Text + " ";
        c._parts.Add((joined.Length, more));
        c.Text = joined + more.Text;
        return c;
    }

    /// <summary>File position of a character of <see cref="Text"/> (exact inside multi-line and escaped scalars too).</summary>
    public SourcePosition PositionOf(int offset)
    {
        (int start, SourceText part) = _parts[0];
        foreach ((int s, SourceText p) in _parts)
        {
            if (s <= offset)
            {
                (start, part) = (s, p);
            }
        }

        int within = offset - start;
        if (part.Map != null)
        {
            return part.PositionOf(within);
        }

        string text = part.Text;
        int line = 0, lineStart = 0;
        for (int i = 0; i < within && i < text.Length; i++)
        {
            if (text[i] == '\n')
            {
                line++;
                lineStart = i + 1;
            }
        }

        return line == 0 ? part.At.Offset(within) : new SourcePosition(part.At.File, part.At.Line + line, within - lineStart + 1);
    }
}

internal sealed class CollectedList
{
    public required string Name { get; init; }
    public required SourcePosition At { get; init; }
    public List<SourceText> Items { get; set; } = [];
    public bool Used { get; set; }
}

internal sealed class CollectedMacro
{
    public required string Name { get; init; }
    public required SourcePosition At { get; init; }
    public required ConditionSource Condition { get; set; }
    public bool Used { get; set; }
}

/// <summary>A rule after every file's overrides were applied; still text, not compiled.</summary>
internal sealed class CollectedRule
{
    public required string Name { get; init; }
    public required SourcePosition At { get; init; }
    public string Desc { get; set; } = "";
    public ConditionSource? Condition { get; set; }
    public SourceText? Output { get; set; }
    public Severity Severity { get; set; } = Severity.Medium;
    public string? Priority { get; set; }
    public List<string> Tags { get; set; } = [];
    public bool Enabled { get; set; } = true;
    public List<ExceptionSpec> Exceptions { get; set; } = [];
    public ResponseAction Actions { get; set; } = ResponseAction.Alert;
    public RuleMode Mode { get; set; } = RuleMode.Enforce;
    public List<RuleTestSpec> Tests { get; set; } = [];
    public ThresholdSpec? Threshold { get; set; }
    public SequenceSpec? Sequence { get; set; }
    public SuppressSpec? Suppress { get; set; }
    /// <summary>Falco's source (null: syscall, the default).</summary>
    public string? Source { get; set; }
    public bool SkipIfUnknownFilter { get; set; }
    /// <summary>The file that declared the rule (built-in resources are named builtin:...).</summary>
    public string DefinedIn => At.File;
}

internal sealed class CollectedRules
{
    public Dictionary<string, CollectedList> Lists { get; } = new(StringComparer.Ordinal);
    public Dictionary<string, CollectedMacro> Macros { get; } = new(StringComparer.Ordinal);
    /// <summary>Rules in declaration order (the order detections are reported in).</summary>
    public List<CollectedRule> Rules { get; } = [];
    public Dictionary<string, CollectedRule> RulesByName { get; } = new(StringComparer.Ordinal);
}

/// <summary>
/// Stage 2: merges the items of all files in order, with Falco's semantics: a later item with the same name
/// replaces an earlier one (with an R024 warning, never silently); <c>append: true</c> or
/// <c>override: {key: append|replace}</c> changes only the keys it names on the earlier item, so a site file can
/// adjust a built-in rule without copying it; exceptions are appended to by name; an item that only says
/// <c>enabled:</c> toggles an earlier rule.
/// </summary>
internal sealed class RuleCollector
{
    private readonly DiagnosticBag _diagnostics;

    public RuleCollector(DiagnosticBag diagnostics) => _diagnostics = diagnostics;

    public CollectedRules Collect(IEnumerable<RuleFileSpec> files)
    {
        var result = new CollectedRules();
        foreach (RuleFileSpec file in files)
        {
            foreach (ItemSpec item in file.Items)
            {
                switch (item)
                {
                    case ListSpec l: CollectList(result, l); break;
                    case MacroSpec m: CollectMacro(result, m); break;
                    case RuleSpec r: CollectRule(result, r); break;
                    default: break;
                }
            }
        }

        return result;
    }

    private static OverrideMode? ModeFor(ItemSpec item, string key)
    {
        if (item.Overrides.TryGetValue(key, out OverrideMode mode))
        {
            return mode;
        }

        return item.Append ? OverrideMode.Append : null;
    }

    private void Redefined(string kind, string name, SourcePosition at, SourcePosition earlier) =>
        _diagnostics.Warning(RuleDiagnosticCodes.Redefined, at, $"{kind} '{name}' redefines the one at {earlier.File}:{earlier.Line}:{earlier.Column} (the later definition wins)");

    private void CollectList(CollectedRules result, ListSpec l)
    {
        if (!l.IsOverride)
        {
            if (result.Lists.TryGetValue(l.Name, out CollectedList? old))
            {
                Redefined("list", l.Name, l.At, old.At);
            }

            result.Lists[l.Name] = new CollectedList { Name = l.Name, At = l.At, Items = [.. l.Items] };
            return;
        }

        if (!result.Lists.TryGetValue(l.Name, out CollectedList? existing))
        {
            _diagnostics.Error(RuleDiagnosticCodes.OverrideOfUnknown, l.At, $"list '{l.Name}' overrides or appends to a list not defined before");
            return;
        }

        existing.Items = ModeFor(l, "items") == OverrideMode.Replace ? [.. l.Items] : [.. existing.Items, .. l.Items];
    }

    private void CollectMacro(CollectedRules result, MacroSpec m)
    {
        if (m.Condition is not { } cond)
        {
            return;
        }

        if (!m.IsOverride)
        {
            if (result.Macros.TryGetValue(m.Name, out CollectedMacro? old))
            {
                Redefined("macro", m.Name, m.At, old.At);
            }

            result.Macros[m.Name] = new CollectedMacro { Name = m.Name, At = m.At, Condition = ConditionSource.From(cond) };
            return;
        }

        if (!result.Macros.TryGetValue(m.Name, out CollectedMacro? existing))
        {
            _diagnostics.Error(RuleDiagnosticCodes.OverrideOfUnknown, m.At, $"macro '{m.Name}' overrides or appends to a macro not defined before");
            return;
        }

        existing.Condition = ModeFor(m, "condition") == OverrideMode.Replace ? ConditionSource.From(cond) : existing.Condition.Append(cond);
    }

    private void CollectRule(CollectedRules result, RuleSpec r)
    {
        bool enableOnly = RuleReader.IsEnableOnly(r);
        if (!r.IsOverride && !enableOnly)
        {
            var rule = new CollectedRule { Name = r.Name, At = r.At };
            Apply(rule, r, replaceAll: true);
            if (result.RulesByName.TryGetValue(r.Name, out CollectedRule? old))
            {
                Redefined("rule", r.Name, r.At, old.At);
                if (old.Source != rule.Source && old.Source != null && rule.Source != null)
                {
                    _diagnostics.Error(RuleDiagnosticCodes.BadItem, r.At, $"rule '{r.Name}' is redefined with a different source ({rule.Source}, was {old.Source})");
                }

                result.Rules[result.Rules.IndexOf(old)] = rule;
            }
            else
            {
                result.Rules.Add(rule);
            }

            result.RulesByName[r.Name] = rule;
            return;
        }

        if (!result.RulesByName.TryGetValue(r.Name, out CollectedRule? existing))
        {
            _diagnostics.Error(RuleDiagnosticCodes.OverrideOfUnknown, r.At, enableOnly
                ? $"rule '{r.Name}' has only 'enabled' but no rule of that name is defined before"
                : $"rule '{r.Name}' overrides or appends to a rule not defined before");
            return;
        }

        Apply(existing, r, replaceAll: false);
    }

    private void Apply(CollectedRule rule, RuleSpec r, bool replaceAll)
    {
        if (replaceAll)
        {
            rule.Source = r.Source;
        }

        foreach (string key in r.Keys)
        {
            OverrideMode mode = replaceAll ? OverrideMode.Replace : ModeFor(r, key) ?? OverrideMode.Replace;
            if (!replaceAll && key is not ("enabled" or "source") && !r.Overrides.ContainsKey(key) && !r.Append)
            {
                _diagnostics.Error(RuleDiagnosticCodes.BadItem, r.At, $"override of rule '{r.Name}' gives '{key}' without saying append or replace in override");
                continue;
            }

            bool append = mode == OverrideMode.Append;
            switch (key)
            {
                case "desc": rule.Desc = append ? rule.Desc + " " + r.Desc?.Text : r.Desc?.Text ?? ""; break;
                case "condition" when r.Condition is { } c:
                    rule.Condition = append && rule.Condition != null ? rule.Condition.Append(c) : ConditionSource.From(c);
                    break;
                case "output" when r.Output is { } o:
                    rule.Output = append && rule.Output is { } prev ? new SourceText(prev.Text + " " + o.Text, prev.At) : o;
                    break;
                case "severity" when r.Severity is { } s:
                    rule.Severity = s;
                    rule.Priority = r.Priority;
                    break;
                case "tags" when r.Tags != null: rule.Tags = append ? [.. rule.Tags.Union(r.Tags)] : [.. r.Tags]; break;
                case "enabled" when r.Enabled is { } e: rule.Enabled = e; break;
                case "skip-if-unknown-filter" when r.SkipIfUnknownFilter is { } skip: rule.SkipIfUnknownFilter = skip; break;
                case "exceptions" when r.Exceptions != null:
                    rule.Exceptions = append ? AppendExceptions(rule, r.Exceptions) : [.. r.Exceptions];
                    break;
                case "actions" when r.Actions is { } a: rule.Actions = append ? rule.Actions | a : a; break;
                case "mode" when r.Mode is { } m: rule.Mode = m; break;
                case "tests" when r.Tests != null: rule.Tests = append ? [.. rule.Tests, .. r.Tests] : [.. r.Tests]; break;
                case "threshold": rule.Threshold = r.Threshold; break;
                case "sequence": rule.Sequence = r.Sequence; break;
                case "suppress": rule.Suppress = r.Suppress; break;
                default: break;
            }
        }
    }

    /// <summary>Falco's exception append: an exception of a known name gains values (and may not restate fields or comps); a new one is added whole.</summary>
    private List<ExceptionSpec> AppendExceptions(CollectedRule rule, List<ExceptionSpec> added)
    {
        var result = new List<ExceptionSpec>(rule.Exceptions);
        foreach (ExceptionSpec ex in added)
        {
            int i = result.FindIndex(e => e.Name == ex.Name);
            if (i < 0)
            {
                if (!ex.HasFields || ex.Values.Count == 0)
                {
                    _diagnostics.Error(RuleDiagnosticCodes.BadValue, ex.At, $"exception '{ex.Name}' is new to rule '{rule.Name}', so it needs fields and values");
                    continue;
                }

                result.Add(ex);
                continue;
            }

            if (ex.HasFields || ex.HasComps)
            {
                _diagnostics.Error(RuleDiagnosticCodes.BadValue, ex.At, $"exception '{ex.Name}' of rule '{rule.Name}' exists: an append gives only values, not fields or comps");
                continue;
            }

            ExceptionSpec old = result[i];
            result[i] = new ExceptionSpec
            {
                Name = old.Name,
                At = old.At,
                Fields = old.Fields,
                FieldsIsList = old.FieldsIsList,
                Comps = old.Comps,
                CompsIsList = old.CompsIsList,
                Values = [.. old.Values, .. ex.Values],
            };
        }

        return result;
    }
}
