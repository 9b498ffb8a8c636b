using System.Text;
using InSpatialFs.Security.Events;

namespace InSpatialFs.Security.Rules;

/// <summary>A rule that is valid but cannot run here, and why ("needs fd.sport", "source k8s_audit").</summary>
public sealed record SkippedRule(string Name, string Reason, string Source, int Line, bool Enabled);

/// <summary>Stage 3b: collected rules → compiled rules (conditions, exceptions, stateful plans, outputs), or skipped ones.</summary>
internal sealed class RuleCompiler
{
    /// <summary>Rule sources we serve: Falco's syscall source (the default) and our own name for it.</summary>
    private static readonly HashSet<string> ServedSources = new(StringComparer.Ordinal) { "syscall", "inspatialfs" };

    private readonly CollectedRules _collected;
    private readonly DiagnosticBag _diagnostics;
    private readonly ConditionCompiler _conditions;
    private readonly string? _appendOutput;

    public RuleCompiler(CollectedRules collected, DiagnosticBag diagnostics, string? appendOutput = null)
    {
        _collected = collected;
        _diagnostics = diagnostics;
        _conditions = new ConditionCompiler(collected, diagnostics);
        _appendOutput = appendOutput;
    }

    internal ConditionCompiler Conditions => _conditions;

    public List<SkippedRule> Skipped { get; } = [];

    public List<CompiledRule> CompileAll()
    {
        var result = new List<CompiledRule>();
        foreach (CollectedRule rule in _collected.Rules)
        {
            if (Compile(rule) is { } compiled)
            {
                result.Add(compiled);
            }
        }

        _conditions.CheckUnused();
        return result;
    }

    private KeyPlan? Keys(List<SourceText> fields)
    {
        var bound = new EventField[fields.Count];
        for (int i = 0; i < fields.Count; i++)
        {
            if (!EventFields.TryGet(fields[i].Text, out bound[i]))
            {
                _diagnostics.Error(RuleDiagnosticCodes.UnknownField, fields[i].At, $"unknown field '{fields[i].Text}' in by");
                return null;
            }
        }

        return new KeyPlan(bound);
    }

    /// <summary>R026: the rule loads, but only operations that are not events (or only when denied) can match it.</summary>
    private void WarnIfQuiet(CollectedRule rule, ulong opMask)
    {
        ulong never = FsOpNames.NeverEvents.Aggregate(0UL, (m, op) => m | 1UL << (int)op);
        ulong denied = FsOpNames.EventsOnlyWhenDenied.Aggregate(0UL, (m, op) => m | 1UL << (int)op);
        if ((opMask & ~(never | denied)) != 0) return;
        string Names(ulong mask) => string.Join(", ", Enumerable.Range(0, FsOpNames.Count).Where(i => (mask & opMask & 1UL << i) != 0).Select(i => ((FsOp)i).Name()));
        string reason = (opMask & denied) == 0
            ? $"it matches only {Names(never)}, which are never events: it never fires"
            : $"it matches only {Names(never | denied)}, which are events only when denied{((opMask & never) != 0 ? $" ({Names(never)}: never)" : "")}: it fires on denials only";
        _diagnostics.Warning(RuleDiagnosticCodes.QuietOperations, rule.At, $"rule '{rule.Name}': {reason}");
    }

    private void Skip(CollectedRule rule, string reason)
    {
        Skipped.Add(new SkippedRule(rule.Name, reason, rule.DefinedIn, rule.At.Line, rule.Enabled));
        _diagnostics.Warning(RuleDiagnosticCodes.RuleSkipped, rule.At, $"rule '{rule.Name}' skipped: {reason}");
    }

    private CompiledRule? Compile(CollectedRule rule)
    {
        if (rule.Source != null && !ServedSources.Contains(rule.Source))
        {
            Skip(rule, $"source {rule.Source} (only syscall rules are served here)");
            return null;
        }

        int errorsBefore = _diagnostics.Items.Count(d => d.IsError);
        var skip = new SkipReasons();
        Cond? exceptions = rule.Exceptions.Count > 0 ? _conditions.CompileExceptions(rule, skip, out _) : null;
        CompiledCondition? condition = null;
        ThresholdPlan? threshold = null;
        SequencePlan? sequence = null;
        var fingerprint = new StringBuilder(rule.Name).Append('|');

        if (rule.Sequence is { } seq)
        {
            if (rule.Threshold != null)
            {
                _diagnostics.Error(RuleDiagnosticCodes.BadItem, rule.At, $"rule '{rule.Name}' has both threshold and sequence");
            }

            KeyPlan? by = Keys(seq.By);
            var names = seq.Steps.Select(s => s.Name).ToArray();
            var steps = new CompiledCondition[seq.Steps.Count];
            bool ok = by != null && seq.Steps.Count >= 2 && seq.MaxspanNanos > 0;
            for (int i = 0; i < seq.Steps.Count; i++)
            {
                if (names.Take(i).Contains(names[i]))
                {
                    _diagnostics.Error(RuleDiagnosticCodes.BadItem, seq.Steps[i].Condition.At, $"step name '{names[i]}' is used twice");
                    ok = false;
                }

                // Exceptions apply to the completing step.
                ConditionSource stepSource = ConditionSource.From(seq.Steps[i].Condition);
                CompiledCondition? step = _conditions.Compile(stepSource, skip, names[..i], i == seq.Steps.Count - 1 ? exceptions : null, rule.SkipIfUnknownFilter);
                if (step == null)
                {
                    ok = false;
                    continue;
                }

                steps[i] = step;
            }

            // until may use captures: it cancels the pending instances it matches (all of the key's, without captures).
            CompiledCondition? until = seq.Until is { } u ? _conditions.Compile(ConditionSource.From(u), skip, names) : null;
            if (seq.Until != null && until == null)
            {
                ok = false;
            }

            if (skip.Any)
            {
                Skip(rule, "needs " + string.Join(", ", skip.Fields));
                return null;
            }

            if (!ok)
            {
                return null;
            }

            sequence = new SequencePlan { By = by!, MaxspanNanos = seq.MaxspanNanos, StepNames = names, Steps = steps, Until = until };
            fingerprint.Append(sequence.Describe());
        }
        else
        {
            if (rule.Condition == null)
            {
                _diagnostics.Error(RuleDiagnosticCodes.BadItem, rule.At, $"rule '{rule.Name}' has no condition");
                return null;
            }

            condition = _conditions.Compile(rule.Condition, skip, null, exceptions, rule.SkipIfUnknownFilter);
            if (skip.Any)
            {
                Skip(rule, "needs " + string.Join(", ", skip.Fields));
                return null;
            }

            if (condition == null)
            {
                return null;
            }

            fingerprint.Append(condition.Explain());
            if (rule.Threshold is { } t)
            {
                KeyPlan? by = Keys(t.By);
                EventField? distinct = null;
                if (t.DistinctField is { } df && !EventFields.TryGet(df.Text, out distinct))
                {
                    _diagnostics.Error(RuleDiagnosticCodes.UnknownField, df.At, $"unknown field '{df.Text}' in distinct");
                    return null;
                }

                if (by == null || t.WindowNanos <= 0 || (t.CountAtLeast is null && distinct == null))
                {
                    return null;
                }

                threshold = new ThresholdPlan
                {
                    By = by,
                    WindowNanos = t.WindowNanos,
                    CountAtLeast = t.CountAtLeast ?? 0,
                    DistinctField = distinct,
                    DistinctAtLeast = t.DistinctAtLeast,
                };
                fingerprint.Append('|').Append(threshold.Describe());
            }
        }

        KeyPlan? suppressBy = rule.Suppress is { By.Count: > 0 } s ? Keys(s.By)
            : threshold?.By ?? sequence?.By ?? Keys([new SourceText("container.id", rule.At)]);
        OutputTemplate? output = OutputTemplate.Compile(rule.Output, _diagnostics, rule.Name + " (%evt.type %fd.name by %proc.name pid %proc.pid in %container.id)", _appendOutput);
        if (suppressBy == null || output == null || _diagnostics.Items.Count(d => d.IsError) > errorsBefore)
        {
            return null;
        }

        ulong opMask = condition?.OpMask ?? sequence!.Steps.Aggregate(0UL, (m, st) => m | st.OpMask) | (sequence!.Until?.OpMask ?? 0);
        if (opMask == 0)
        {
            Skip(rule, skip.EventTypes.Count > 0
                ? $"needs evt.type {string.Join(", ", skip.EventTypes)} (system calls a filesystem does not see)"
                : "its condition can never match");
            return null;
        }

        WarnIfQuiet(rule, opMask);
        return new CompiledRule
        {
            Name = rule.Name,
            Desc = rule.Desc,
            Severity = rule.Severity,
            Priority = rule.Priority ?? RuleReader.DefaultPriority(rule.Severity),
            Source = rule.Source ?? "syscall",
            Actions = rule.Actions,
            Mode = rule.Mode,
            Tags = rule.Tags,
            Enabled = rule.Enabled,
            DefinedIn = rule.DefinedIn,
            Condition = condition,
            Threshold = threshold,
            Sequence = sequence,
            SuppressNanos = rule.Suppress?.WindowNanos ?? 0,
            SuppressBy = suppressBy,
            Output = output,
            Tests = rule.Tests,
            OpMask = opMask,
            Fingerprint = fingerprint.ToString(),
        };
    }
}

/// <summary>A rule as listings show it. Kind is stateless, threshold or sequence; Source is the defining file (builtin:NAME for embedded ones).</summary>
public sealed record RuleInfo(
    string Name,
    string Desc,
    Severity Severity,
    ResponseAction Actions,
    RuleMode Mode,
    bool Enabled,
    string Kind,
    bool Inline,
    string Source,
    IReadOnlyList<string> Tags);

/// <summary>
/// Stage 4: the enabled rules indexed by evt.op, split into the request-path (inline) and analyser sets.
/// A rule whose condition pins evt.op sits only in those buckets; one that does not sits in all of them.
/// Immutable once built; the engine swaps whole sets on reload.
/// </summary>
public sealed class RuleSet
{
    internal RuleSet(List<CompiledRule> rules, CollectedRules collected, IReadOnlyList<RuleDiagnostic> diagnostics, IReadOnlyList<SkippedRule>? skipped = null)
    {
        Rules = [.. rules];
        Skipped = skipped ?? [];
        Collected = collected;
        Diagnostics = diagnostics;
        Inline = new CompiledRule[FsOpNames.Count][];
        Analysed = new CompiledRule[FsOpNames.Count][];
        for (int op = 0; op < FsOpNames.Count; op++)
        {
            ulong bit = 1UL << op;
            Inline[op] = [.. rules.Where(r => r.Enabled && r.Inline && (r.OpMask & bit) != 0)];
            Analysed[op] = [.. rules.Where(r => r.Enabled && !r.Inline && (r.OpMask & bit) != 0)];
        }
    }

    internal CompiledRule[] Rules { get; }
    internal CollectedRules Collected { get; }
    internal CompiledRule[][] Inline { get; }
    internal CompiledRule[][] Analysed { get; }

    /// <summary>Valid rules that cannot run here (Falco rules on network or k8s fields, other sources), with why.</summary>
    public IReadOnlyList<SkippedRule> Skipped { get; }

    /// <summary>Warnings of the load (a set with errors is never built).</summary>
    public IReadOnlyList<RuleDiagnostic> Diagnostics { get; }

    public int Count => Rules.Length;

    /// <summary>What each rule is, for the rules control file and listings.</summary>
    public IReadOnlyList<RuleInfo> Info => [.. Rules.Select(r => new RuleInfo(r.Name, r.Desc, r.Severity, r.Actions, r.Mode, r.Enabled, r.Kind, r.Inline, r.DefinedIn, r.Tags))];

    /// <summary>The condition of a rule with macros and lists expanded (null if there is no such rule).</summary>
    public string? Explain(string rule) => Find(rule)?.Explain();

    /// <summary>Enabled rules evaluated on the request path.</summary>
    public int InlineCount => Rules.Count(r => r.Enabled && r.Inline);

    internal CompiledRule? Find(string name) => Array.Find(Rules, r => r.Name == name);
}
