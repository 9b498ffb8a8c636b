using BenchmarkDotNet.Attributes;
using InSpatialFs.Security;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Identity;
using InSpatialFs.Security.Matching;
using InSpatialFs.Security.Rules;
using InSpatialFs.TestKit.Workloads;

namespace InSpatialFs.Benchmarks;

/// <summary>
/// Issue 15 and 11: the built-in set plus the file rules of Falco's falco_rules.yaml (loaded unmodified) over the
/// realistic event mix with process context attached (target ≥ 1 M events/s on one core, 0 B per event); the linear
/// glob against the adversarial pattern of issue 11; and what process context costs: per request a field read of a
/// context pinned once (no syscall), per new process one read of /proc.
/// </summary>
[MemoryDiagnoser]
public class FalcoRuleBenchmarks
{
    private const int MixSize = 4096;

    private RuleEngine _engine = null!;
    private FsEvent[] _mix = null!;
    private readonly List<Detection> _detections = [];
    private long _clock;
    private Glob _adversarial = null!;
    private string _path106 = "";
    private string _path4k = "";
    private EventPredicate _cmdlineRule = null!;
    private ProcessContextResolver _resolver = null!;

    [GlobalSetup]
    public void Setup()
    {
        string falco = Path.Combine(AppContext.BaseDirectory, "Falco", "falco_rules.yaml");
        _engine = RuleEngine.Create([RuleSource.FromFile(falco)]);
        _mix = BenignProcesses.Attach(BenignEventMix.Create(MixSize));
        _clock = _mix[^1].TimeUnixNanos;
        for (int i = 0; i < 4; i++)
        {
            RunMix();
        }

        if (_detections.Count > 0)
        {
            throw new InvalidOperationException("the benign mix fired " + _detections[0].Rule);
        }

        _adversarial = Glob.Compile("/data/**a**a**a**a**a**b", GlobDialect.Fnmatch);
        _path106 = "/data/" + new string('a', 100);
        _path4k = "/data/" + new string('a', 4090);
        _cmdlineRule = _engine.RuleSet.Rules.First(r => r.Name == "Read sensitive file untrusted").Condition!.Predicate;
        _resolver = new ProcessContextResolver();
        ColdChainLength = _resolver.Resolve(Environment.ProcessId) is { } self ? Enumerable.Range(0, 17).TakeWhile(i => self.Ancestor(i) != null).Count() : 0;
        Console.WriteLine($"// cold chain: {ColdChainLength} processes");
    }

    private int RunMix()
    {
        foreach (FsEvent e in _mix)
        {
            _clock += 625_000;
            e.TimeUnixNanos = _clock;
            _engine.EvaluateInline(e, _detections);
            _engine.Analyze(e, _detections);
        }

        return _detections.Count;
    }

    /// <summary>Both paths, every built-in rule and every compiled rule of falco_rules.yaml, per event of the mix.</summary>
    [Benchmark(OperationsPerInvoke = MixSize)]
    public int BuiltInsPlusFalcoRulesPerEvent() => RunMix();

    /// <summary>Falco's "Read sensitive file untrusted" (proc.name, proc.pname, proc.aname[N], proc.cmdline...) on one event.</summary>
    [Benchmark]
    public bool ProcessContextRuleOnOneEvent() => _cmdlineRule(_mix[2], null);

    /// <summary>Issue 11's pattern against the 106-character path that took 9.8 s with the backtracking matcher.</summary>
    [Benchmark]
    public bool AdversarialGlob106Chars() => _adversarial.IsMatch(_path106);

    [Benchmark]
    public bool AdversarialGlob4KiB() => _adversarial.IsMatch(_path4k);

    /// <summary>
    /// What a new process costs once: reading its context from /proc, here with a cold cache, so the benchmark process
    /// and every ancestor up to init are read (<see cref="ColdChainLength"/> processes); a container's new process
    /// usually finds its parent chain cached and pays for itself only.
    /// </summary>
    [Benchmark]
    public ProcessContext? ResolveNewProcessContextColdChain()
    {
        _resolver = new ProcessContextResolver();
        return _resolver.Resolve(Environment.ProcessId);
    }

    /// <summary>Processes read by one cold <see cref="ResolveNewProcessContextColdChain"/> (printed at setup).</summary>
    public static int ColdChainLength { get; private set; }
}
