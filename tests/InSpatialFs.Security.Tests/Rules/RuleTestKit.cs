using InSpatialFs.Security.Events;
using InSpatialFs.Security.Rules;

namespace InSpatialFs.Security.Tests.Rules;

/// <summary>Small helpers: engines from YAML text (without built-ins), events from field values.</summary>
internal static class RuleTestKit
{
    public const long Second = 1_000_000_000L;
    public static readonly long T0 = FsEventJson.ParseTime("2026-11-27T12:00:00Z");

    public static RuleLoadResult Load(string yaml, string file = "test.yaml") =>
        RuleLoader.Load([new RuleSource(file, yaml)], includeBuiltIns: false);

    public static RuleEngine Engine(string yaml, int maxKeys = 10_000) =>
        RuleEngine.Create([new RuleSource("test.yaml", yaml)], new RuleEngineOptions { IncludeBuiltIns = false, MaxKeysPerRule = maxKeys });

    public static FsEvent Ev(FsOp op, string path, long atSeconds = 0, string? proc = "sh", int pid = 100, string? container = "web-1") => new()
    {
        Op = op,
        Path = path,
        TimeUnixNanos = T0 + (atSeconds * Second),
        ProcName = proc,
        Pid = pid,
        ContainerId = container,
    };

    /// <summary>Runs both paths, as the daemon does, and returns the names of what fired.</summary>
    public static List<string> Feed(RuleEngine engine, params FsEvent[] events)
    {
        var detections = new List<Detection>();
        foreach (FsEvent e in events)
        {
            engine.EvaluateInline(e, detections);
            engine.Analyze(e, detections);
        }

        return detections.ConvertAll(d => d.Rule);
    }

    public static bool Matches(string condition, FsEvent e, string preamble = "")
    {
        RuleEngine engine = Engine(preamble + "\n- rule: r\n  condition: " + Quote(condition) + "\n");
        return Feed(engine, e).Contains("r");
    }

    public static string Quote(string s) => "'" + s.Replace("'", "''", StringComparison.Ordinal) + "'";

    public static IReadOnlyList<RuleDiagnostic> Errors(string yaml) =>
        Load(yaml).Diagnostics.Where(d => d.IsError).ToList();
}
