using System.Buffers;
using System.Text.Json;
using BenchmarkDotNet.Attributes;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Identity;

namespace InSpatialFs.Benchmarks;

/// <summary>
/// What the event consumer pays per event for the journal line (FsEventJson.Write), and what the request path pays the
/// first time it sees a process (CallerRegistry.Pin: the /proc reads and their parsing). Both are in every bench-cpu
/// phase's daemon CPU: a line per operation, a pin per new process (the spawn phases).
/// </summary>
[MemoryDiagnoser]
public class EventJsonBenchmarks
{
    private readonly ArrayBufferWriter<byte> _line = new(2048);
    private Utf8JsonWriter _writer = null!;
    private FsEvent _create = null!;
    private FsEvent _openWithProcess = null!;
    private CallerRegistry _callers = null!;

    [GlobalSetup]
    public void Setup()
    {
        _writer = new Utf8JsonWriter(_line);
        _callers = new CallerRegistry(mountpoint: null, containerCgroup: null, backgroundSweep: false);
        _create = new FsEvent
        {
            TimeUnixNanos = FsEvent.NowUnixNanos(), Seq = 123456, Op = FsOp.Create, Flags = 0x8241, Mode = 0x81a4,
            Path = "/meta/d42/f12345", Pid = 0, IsNew = true,
        };
        _openWithProcess = new FsEvent
        {
            TimeUnixNanos = FsEvent.NowUnixNanos(), Seq = 123457, Op = FsOp.Open, Flags = 0x8000,
            Path = "/usr/share/doc/coreutils/copyright", Pid = Environment.ProcessId, ProcName = "cat",
            Process = _callers.Processes.Resolve(Environment.ProcessId),
        };
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _writer.Dispose();
        _callers.Dispose();
    }

    [Benchmark(Baseline = true)]
    public int Journal_line_create() => Line(_create);

    [Benchmark]
    public int Journal_line_open_with_process() => Line(_openWithProcess);

    /// <summary>A new caller: pidfd, stat, cgroup, root, namespaces (its process context is cached after the first).</summary>
    [Benchmark]
    public bool Pin_new_caller()
    {
        using CallerInfo? c = _callers.Pin(Environment.ProcessId);
        return c is not null;
    }

    private int Line(FsEvent e)
    {
        _line.ResetWrittenCount();
        _writer.Reset(_line);
        FsEventJson.Write(_writer, e);
        _writer.Flush();
        return _line.WrittenCount;
    }
}
