using BenchmarkDotNet.Attributes;
using InSpatialFs.Security;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Rules;
using InSpatialFs.TestKit.Workloads;

namespace InSpatialFs.Benchmarks;

/// <summary>
/// The rule engine on its two paths: the built-in set over a realistic container event mix (analyser,
/// target ≥ 1M events/s on one core, zero allocations per event), and inline evaluation per request with
/// a site file that adds request-path deny rules (a stateless one and a rate threshold).
/// </summary>
[MemoryDiagnoser]
public class RuleEvaluationBenchmarks
{
    private const int MixSize = 4096;

    private const string SiteRules = """
        - rule: Deny shadow reads
          condition: evt.op = open and fs.path in (/etc/shadow, /etc/gshadow)
          actions: [deny, alert]
        - rule: Throttle unlink storms
          condition: evt.op = unlink
          actions: [deny]
          threshold: {by: [container.id, proc.pid], window: 1s, count: {gte: 5000}}
        """;

    private RuleEngine _builtIn = null!;
    private RuleEngine _withInline = null!;
    private FsEvent[] _mix = null!;
    private readonly List<Detection> _detections = [];
    private long _clock;
    private int _next;

    [GlobalSetup]
    public void Setup()
    {
        _builtIn = RuleEngine.Create(Array.Empty<RuleSource>());
        _withInline = RuleEngine.Create([new RuleSource("site.yaml", SiteRules)]);
        _mix = BenignEventMix.Create(MixSize);
        _clock = _mix[^1].TimeUnixNanos;
        // Warm state (threshold keys, sequence slots) so the measurement is the steady state.
        for (int i = 0; i < 4; i++)
        {
            foreach (FsEvent e in _mix)
            {
                AdvanceTime(e);
                _builtIn.Analyze(e, _detections);
                _withInline.EvaluateInline(e, _detections);
            }
        }

        _detections.Clear();
    }

    /// <summary>Keeps evt.time moving forward as the mix repeats, at 1600 events/s, as a live stream would.</summary>
    private void AdvanceTime(FsEvent e)
    {
        _clock += 625_000;
        e.TimeUnixNanos = _clock;
    }

    /// <summary>Analyser path: one op per invocation, the whole built-in set (stateless, thresholds, sequences).</summary>
    [Benchmark(OperationsPerInvoke = MixSize)]
    public int AnalyzeBuiltInMix()
    {
        foreach (FsEvent e in _mix)
        {
            AdvanceTime(e);
            _builtIn.Analyze(e, _detections);
        }

        int fired = _detections.Count;
        _detections.Clear();
        return fired;
    }

    /// <summary>Request path: inline rules (built-ins have none with deny; the site file adds two).</summary>
    [Benchmark(OperationsPerInvoke = MixSize)]
    public int EvaluateInlinePerRequest()
    {
        int denied = 0;
        foreach (FsEvent e in _mix)
        {
            AdvanceTime(e);
            if (_withInline.EvaluateInline(e, _detections).IsDenied)
            {
                denied++;
            }
        }

        _detections.Clear();
        return denied;
    }

    /// <summary>Request path for a single open of a file no rule objects to.</summary>
    [Benchmark]
    public Verdict EvaluateInlineSingleOpen()
    {
        FsEvent e = _mix[_next++ & (MixSize - 1)];
        return _withInline.EvaluateInline(e, _detections);
    }
}
