using InSpatialFs.Interop;
using InSpatialFs.Security.Events;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace InSpatialFs.Security.Rules;

public sealed class RuleEngineOptions
{
    /// <summary>Keys per rule and per state kind (threshold, sequence, suppression). At the cap the least recently seen key goes.</summary>
    public int MaxKeysPerRule { get; init; } = 10_000;

    /// <summary>The analyser sweeps idle keys after this many analysed events.</summary>
    public int SweepEveryEvents { get; init; } = 65_536;

    public bool IncludeBuiltIns { get; init; } = true;

    /// <summary>Read the built-in rules' embedded tests (false for a serving engine: only <c>rules test</c> runs them).</summary>
    public bool BuiltInTests { get; init; } = true;

    /// <summary>Text appended to every rule's output (Falco's <c>-p</c>), e.g. " container=%container.id user=%user.name".</summary>
    public string? AppendOutput { get; init; }

    /// <summary>Load and reload outcomes are logged here (never per event).</summary>
    public ILogger Logger { get; init; } = NullLogger.Instance;
}

/// <summary>One rule's line in the engine statistics.</summary>
public sealed record RuleStats(string Rule, string Kind, bool Inline, bool Enabled, long Hits, long Suppressed, int Keys);

public sealed record RuleEngineStats(
    int Rules,
    int InlineRules,
    long Reloads,
    long FailedReloads,
    long StateKeys,
    long Evictions,
    long CapHits,
    int MaxKeysPerRule,
    IReadOnlyList<RuleStats> PerRule);

/// <summary>
/// The behavioural rule engine. <see cref="EvaluateInline"/> runs on FUSE reader threads (stateless rules and
/// thresholds that deny); <see cref="Analyze"/> runs on the analyser thread (everything else, including
/// sequences). The rule set is an immutable snapshot read once per call and swapped atomically on reload.
/// Windows are measured on evt.time, so replaying a journal gives what the live engine gave.
/// </summary>
public sealed class RuleEngine : IRuleEngine
{
    private readonly RuleEngineOptions _options;
    private readonly Lock _reloadGate = new();
    private readonly List<FsEvent?[]> _completed = [];
    private volatile RuleSet _set;
    private long _reloads;
    private long _failedReloads;
    private long _analysed;
    private long _lastTime;

    private RuleEngine(RuleSet set, RuleEngineOptions options)
    {
        _set = set;
        _options = options;
    }

    /// <summary>Loads the built-in rules (unless options say otherwise) plus <paramref name="files"/>; throws on errors.</summary>
    public static RuleEngine Create(IEnumerable<string> files, RuleEngineOptions? options = null) =>
        Create(files.Select(RuleSource.FromFile), options);

    public static RuleEngine Create(IEnumerable<RuleSource> sources, RuleEngineOptions? options = null)
    {
        options ??= new RuleEngineOptions();
        RuleLoadResult result = RuleLoader.Load(sources, options.IncludeBuiltIns, options.AppendOutput, options.BuiltInTests);
        if (result.RuleSet == null)
        {
            throw new RuleLoadException(result.Diagnostics);
        }

        LogLoaded(options.Logger, result);
        return new RuleEngine(result.RuleSet, options);
    }

    private static void LogLoaded(ILogger logger, RuleLoadResult result)
    {
        if (!logger.IsEnabled(LogLevel.Warning))
        {
            return;
        }

        foreach (RuleDiagnostic d in result.Diagnostics)
        {
            RulesLog.LoadWarning(logger, d.ToString());
        }

        RuleSet set = result.RuleSet!;
        RulesLog.Loaded(logger, set.Count, set.InlineCount, result.Diagnostics.Count);
    }

    /// <summary>An engine over an already loaded set; takes the set over and resets its state (tooling runs each test on fresh state).</summary>
    public static RuleEngine FromRuleSet(RuleSet set, RuleEngineOptions? options = null) =>
        new(Fresh(set), options ?? new RuleEngineOptions());

    public RuleSet RuleSet => _set;

    /// <summary>
    /// Re-reads rule files, validates fully, then swaps atomically. State (threshold windows, pending sequences,
    /// suppression) of rules whose condition and stateful plan are unchanged is carried over. On any error the
    /// running set is untouched and the diagnostics are returned.
    /// </summary>
    public RuleLoadResult Reload(IEnumerable<string> files) => Reload(files.Select(RuleSource.FromFile));

    public RuleLoadResult Reload(IEnumerable<RuleSource> sources)
    {
        RuleLoadResult result = RuleLoader.Load(sources, _options.IncludeBuiltIns, _options.AppendOutput, _options.BuiltInTests);
        lock (_reloadGate)
        {
            if (result.RuleSet == null)
            {
                _failedReloads++;
                if (_options.Logger.IsEnabled(LogLevel.Error))
                {
                    RulesLog.ReloadRejected(_options.Logger, result.Diagnostics.Count(d => d.IsError), result.Diagnostics.First(d => d.IsError).ToString());
                }

                return result;
            }

            int kept = 0;

            var old = _set.Rules.ToDictionary(r => r.Name, StringComparer.Ordinal);
            foreach (CompiledRule rule in result.RuleSet.Rules)
            {
                if (old.TryGetValue(rule.Name, out CompiledRule? previous) && previous.Fingerprint == rule.Fingerprint)
                {
                    rule.Runtime = previous.Runtime;
                    kept++;
                }
            }

            _set = result.RuleSet;
            _reloads++;
            RulesLog.Reloaded(_options.Logger, result.RuleSet.Count, kept);
            return result;
        }
    }

    public Verdict EvaluateInline(FsEvent access, List<Detection> detections)
    {
        CompiledRule[] rules = _set.Inline[(int)access.Op];
        Verdict verdict = Verdict.Allow;
        for (int i = 0; i < rules.Length; i++)
        {
            CompiledRule rule = rules[i];
            if (!rule.Condition!.Predicate(access, null))
            {
                continue;
            }

            if (rule.Threshold != null && !rule.Runtime.ObserveThreshold(rule.Threshold, access, _options.MaxKeysPerRule))
            {
                continue;
            }

            Interlocked.Increment(ref rule.Runtime.Hits);
            if (rule.Mode == RuleMode.Enforce)
            {
                // A deny holds even while the detection is suppressed: suppression quiets reports, not enforcement.
                if (!verdict.IsDenied)
                {
                    verdict = Verdict.Deny(Errno.EACCES, VerdictReason.Rule(rule.Name));
                }
            }
            else if (verdict.Decision == Decision.Allow)
            {
                verdict = Verdict.WouldDeny(VerdictReason.Rule(rule.Name));
            }

            if (rule.Runtime.ShouldReport(rule.SuppressNanos, rule.SuppressBy, access, _options.MaxKeysPerRule))
            {
                detections.Add(MakeDetection(rule, [access.Clone()], access));
            }
        }

        return verdict;
    }

    /// <summary>Analyser path. Called from one thread at a time (the event queue's consumer); EvaluateInline may run concurrently.</summary>
    public void Analyze(FsEvent completed, List<Detection> detections)
    {
        RuleSet set = _set;
        CompiledRule[] rules = set.Analysed[(int)completed.Op];
        for (int i = 0; i < rules.Length; i++)
        {
            CompiledRule rule = rules[i];
            if (rule.Sequence is { } sequence)
            {
                rule.Runtime.ObserveSequence(sequence, completed, _options.MaxKeysPerRule, _completed);
                if (_completed.Count == 0)
                {
                    continue;
                }

                foreach (FsEvent?[] captures in _completed)
                {
                    Report(rule, captures.Select(c => c!).ToList(), completed, detections);
                }

                _completed.Clear();
                continue;
            }

            if (!rule.Condition!.Predicate(completed, null))
            {
                continue;
            }

            if (rule.Threshold != null && !rule.Runtime.ObserveThreshold(rule.Threshold, completed, _options.MaxKeysPerRule))
            {
                continue;
            }

            Report(rule, [completed.Clone()], completed, detections);
        }

        _lastTime = Math.Max(_lastTime, completed.TimeUnixNanos);
        if (++_analysed % _options.SweepEveryEvents == 0)
        {
            Sweep(_lastTime);
        }
    }

    /// <summary>
    /// Whether an analysed rule may need this event: a stateless or threshold rule whose condition matches, the first
    /// step of a sequence that matches, or any event of a later step's operation (later steps compare with captures).
    /// The security manager asks only when its event queue is short of room, and never drops what this accepts.
    /// </summary>
    public bool MustSee(FsEvent e)
    {
        ArgumentNullException.ThrowIfNull(e);
        CompiledRule[] rules = _set.Analysed[(int)e.Op];
        ulong bit = 1UL << (int)e.Op;
        foreach (CompiledRule rule in rules)
        {
            if (rule.Sequence is not { } sequence)
            {
                if (rule.Condition!.Predicate(e, null)) return true;
                continue;
            }

            if (sequence.Steps[0].Predicate(e, null)) return true;
            for (int i = 1; i < sequence.Steps.Length; i++)
            {
                if ((sequence.Steps[i].OpMask & bit) != 0) return true;
            }
        }

        return false;
    }

    private void Report(CompiledRule rule, List<FsEvent> evidence, FsEvent completing, List<Detection> detections)
    {
        Interlocked.Increment(ref rule.Runtime.Hits);
        if (rule.Runtime.ShouldReport(rule.SuppressNanos, rule.SuppressBy, completing, _options.MaxKeysPerRule))
        {
            detections.Add(MakeDetection(rule, evidence, completing));
        }
    }

    private static Detection MakeDetection(CompiledRule rule, List<FsEvent> evidence, FsEvent completing) =>
        new(rule.Name, rule.Severity, rule.Actions, rule.Mode, rule.Output.Format(completing), evidence);

    /// <summary>Evicts keys idle past their rule's horizon, measured against <paramref name="nowUnixNanos"/> (evt.time).</summary>
    public int Sweep(long nowUnixNanos)
    {
        int removed = 0;
        foreach (CompiledRule rule in _set.Rules)
        {
            long threshold = rule.Threshold?.WindowNanos ?? 0;
            long sequence = rule.Sequence?.MaxspanNanos ?? 0;
            removed += rule.Runtime.Sweep(nowUnixNanos, threshold, sequence, rule.SuppressNanos);
        }

        return removed;
    }

    /// <summary>Drops all state of an exited container.</summary>
    public int ForgetContainer(string containerId)
    {
        int removed = 0;
        foreach (CompiledRule rule in _set.Rules)
        {
            removed += rule.Runtime.ForgetContainer(containerId);
        }

        return removed;
    }

    public RuleEngineStats GetStats()
    {
        RuleSet set = _set;
        var perRule = set.Rules.Select(r => new RuleStats(r.Name, r.Kind, r.Inline, r.Enabled,
            Interlocked.Read(ref r.Runtime.Hits), Interlocked.Read(ref r.Runtime.Suppressed), r.Runtime.KeyCount)).ToList();
        return new RuleEngineStats(
            set.Rules.Length,
            set.InlineCount,
            Interlocked.Read(ref _reloads),
            Interlocked.Read(ref _failedReloads),
            perRule.Sum(r => (long)r.Keys),
            set.Rules.Sum(r => Interlocked.Read(ref r.Runtime.Evictions)),
            set.Rules.Sum(r => Interlocked.Read(ref r.Runtime.CapHits)),
            _options.MaxKeysPerRule,
            perRule);
    }

    /// <summary>The same compiled rules with new, empty state (tests and replays must not share state).</summary>
    private static RuleSet Fresh(RuleSet set)
    {
        foreach (CompiledRule rule in set.Rules)
        {
            rule.Runtime = new RuleRuntime();
        }

        return set;
    }
}

/// <summary>Thrown by <see cref="RuleEngine.Create(IEnumerable{RuleSource}, RuleEngineOptions?)"/> when the rules do not load.</summary>
public sealed class RuleLoadException(IReadOnlyList<RuleDiagnostic> diagnostics)
    : Exception("rules failed to load:\n" + string.Join("\n", diagnostics.Where(d => d.IsError)))
{
    public IReadOnlyList<RuleDiagnostic> Diagnostics { get; } = diagnostics;
}
