using BenchmarkDotNet.Attributes;
using InSpatialFs.Security;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Rules;

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
        _mix = BenignMix(MixSize);
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

    /// <summary>Same mix as the Security tests' benign workload: lookups, stats, reads, log writes, uploads, execs.</summary>
    private static FsEvent[] BenignMix(int count)
    {
        (FsOp Op, string Path, bool Write, bool Exec)[] shapes =
        [
            (FsOp.Lookup, "/usr/lib/python3.12/json/__init__.py", false, false),
            (FsOp.GetAttr, "/srv/app/main.py", false, false),
            (FsOp.Open, "/srv/app/templates/index.html", false, false),
            (FsOp.Read, "/srv/app/templates/index.html", false, false),
            (FsOp.Release, "/srv/app/templates/index.html", false, false),
            (FsOp.Open, "/etc/resolv.conf", false, false),
            (FsOp.Open, "/var/log/app/access.log", true, false),
            (FsOp.Write, "/var/log/app/access.log", true, false),
            (FsOp.Create, "/srv/data/upload-17.tmp", true, false),
            (FsOp.Write, "/srv/data/upload-17.tmp", true, false),
            (FsOp.OpenDir, "/srv/app/static", false, false),
            (FsOp.ReadDir, "/srv/app/static", false, false),
            (FsOp.Open, "/usr/bin/python3.12", false, true),
            (FsOp.GetXattr, "/srv/app/main.py", false, false),
            (FsOp.Read, "/srv/app/main.py", false, false),
        ];
        var events = new FsEvent[count];
        long t = FsEventJson.ParseTime("2026-11-27T12:00:00Z");
        for (int i = 0; i < count; i++)
        {
            (FsOp op, string path, bool write, bool exec) = (i % 64) switch
            {
                10 => (FsOp.Rename, "/srv/data/upload-17.tmp", true, false),
                42 => (FsOp.Unlink, "/srv/data/cache/old-1", true, false),
                _ => shapes[i % shapes.Length],
            };
            events[i] = new FsEvent
            {
                Op = op,
                Path = path,
                Target = op == FsOp.Rename ? "/srv/data/upload-17" : null,
                IsWrite = write,
                IsExec = exec,
                Mode = 0x81A4,
                Pid = 1000 + ((i / 64) % 8),
                ProcName = exec ? "gunicorn" : "python3",
                ContainerId = "web-1",
                Seq = (ulong)i + 1,
                TimeUnixNanos = t + (i * 625_000L),
            };
        }

        return events;
    }
}
