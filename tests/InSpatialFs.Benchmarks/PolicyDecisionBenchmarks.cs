using BenchmarkDotNet.Attributes;
using InSpatialFs.Security;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Policy;

namespace InSpatialFs.Benchmarks;

/// <summary>
/// SecurityManager.Decide on the demo policy (issue 4's config: enhanced, forbidden /etc/shadow and
/// /root/.ssh/**, readonly /usr/**, allowed /tmp/** and /data/**). Target: ≥ 2M decisions/s/core, zero
/// allocations on the allow path. Callers use pid 0 and a pinned pid (this process) so the identity cache
/// hit is part of the cost.
/// </summary>
[MemoryDiagnoser]
public class PolicyDecisionBenchmarks
{
    private SecurityManager _manager = null!;
    private FsEvent _readAllowed = null!;
    private FsEvent _writeAllowed = null!;
    private FsEvent _readReadOnly = null!;
    private FsEvent _deepUnlisted = null!;
    private FsEvent _pinnedCaller = null!;
    private FsEvent _forbidden = null!;

    [GlobalSetup]
    public void Setup()
    {
        _manager = new SecurityManager(new SecurityOptions
        {
            Level = IsolationLevel.Enhanced,
            Forbidden = ["/etc/shadow", "/root/.ssh/**"],
            ReadOnly = ["/usr/**"],
            Allowed = ["/tmp/**", "/data/**"],
            Resources = new ResourceLimits { OpsPerSecond = 1e12, BytesPerSecond = 1e15, OpenFiles = 4096 },
            JournalEvents = false,
        });
        _readAllowed = new FsEvent { Op = FsOp.Open, Path = "/data/www/index.html" };
        _writeAllowed = new FsEvent { Op = FsOp.Write, Path = "/tmp/upload/part-0001", Size = 4096, IsWrite = true };
        _readReadOnly = new FsEvent { Op = FsOp.GetAttr, Path = "/usr/lib/x86_64-linux-gnu/libc.so.6" };
        _deepUnlisted = new FsEvent { Op = FsOp.Lookup, Path = "/opt/app/node_modules/some-package/lib/index.js" };
        _pinnedCaller = new FsEvent { Op = FsOp.Read, Path = "/data/www/app.js", Size = 65536, Pid = Environment.ProcessId };
        _forbidden = new FsEvent { Op = FsOp.Open, Path = "/etc/shadow" };
        _manager.Decide(_pinnedCaller); // pin once: the benchmark measures the cache hit
    }

    [GlobalCleanup]
    public void Cleanup() => _manager.Dispose();

    [Benchmark(Baseline = true)]
    public Verdict Open_allowed() => _manager.Decide(_readAllowed);

    [Benchmark]
    public Verdict Write_allowed() => _manager.Decide(_writeAllowed);

    [Benchmark]
    public Verdict GetAttr_readonly() => _manager.Decide(_readReadOnly);

    [Benchmark]
    public Verdict Lookup_unlisted_deep_path() => _manager.Decide(_deepUnlisted);

    [Benchmark]
    public Verdict Read_by_pinned_caller() => _manager.Decide(_pinnedCaller);

    [Benchmark]
    public Verdict Open_forbidden() => _manager.Decide(_forbidden);

    [Benchmark]
    public PathClass Classify_only() => _manager.Classify("/data/www/index.html");
}
