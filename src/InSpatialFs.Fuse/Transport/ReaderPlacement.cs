using InSpatialFs.Interop;

namespace InSpatialFs.Fuse.Transport;

/// <summary>
/// Which CPUs the /dev/fuse readers run on. A request wakes a reader, and its reply wakes the caller; left to itself the
/// scheduler puts each woken thread on the idle CPU, so caller and reader take turns on two CPUs. Where idle vCPUs halt
/// (VMs without halt polling, as these machines are), every such wake-up is an interrupt and a hypervisor exit, and it
/// is most of a request's cost. So while every CPU has idle time, reader i is pinned to the i-th CPU the process may use:
/// the kernel hands a request to the reader that has waited longest, and about half the requests of one caller then find
/// their reader on the caller's own CPU, which the caller is about to leave for the reply. Measured on 2 vCPUs:
/// 20,000 cold lookups from one process cost 18-19 daemon ticks pinned against 21-25 unpinned, and bench-cpu's cold
/// stat and untar phases 25-30% less CPU.
/// <para>
/// A pinned reader must wait for its CPU's time slice when other work keeps that CPU busy: with a CPU-bound process on
/// CPU 0 the same lookups cost 24-30 ticks pinned against 11-13 unpinned. So the readers sample the CPUs' idle time
/// (/proc/stat, at most every <see cref="WindowMs"/> while requests come) and run on every CPU again once any CPU was idle
/// less than <see cref="BusyIdlePercent"/>% of a window; they are pinned again once every CPU was idle at least
/// <see cref="FreeIdlePercent"/>%. Two busy callers at once cost the same either way, so the busy CPUs need not be
/// someone else's.
/// </para>
/// Only where there are readers for every CPU (no more CPUs than readers), and never over io_uring: there each ring thread
/// is pinned to its queue's CPU, and the kernel queues a request on its caller's CPU.
/// </summary>
public sealed class ReaderPlacement
{
    /// <summary>Shortest window between two samples (/proc/stat counts in 10 ms ticks: 20 per CPU).</summary>
    public const int WindowMs = 200;

    /// <summary>A CPU idle less than this share of a window is busy: the readers stop being pinned.</summary>
    public const int BusyIdlePercent = 10;

    /// <summary>Every CPU idle at least this share of a window: the readers are pinned again.</summary>
    public const int FreeIdlePercent = 25;

    /// <summary>A reader samples (if a window has passed) once per this many requests it answered.</summary>
    private const int SampleEveryRequests = 64;

    private readonly int[] _cpus;
    private readonly long[] _idleTicks;
    private readonly long[] _totalTicks;
    private readonly byte[] _statBuffer;
    private long _sampledAtMs;
    private int _sampling;
    private volatile int _generation;
    private volatile bool _pinned = true;
    private volatile string _reason = "every CPU has idle time";

    private ReaderPlacement(int[] cpus)
    {
        _cpus = cpus;
        _idleTicks = new long[cpus.Length];
        _totalTicks = new long[cpus.Length];
        // A line of /proc/stat per CPU, about 60-100 bytes each, after the summary line; only the CPUs' lines are parsed.
        _statBuffer = new byte[4096 + 128 * (cpus[^1] + 1)];
    }

    /// <summary>
    /// A placement for <paramref name="readers"/> readers, or null where pinning cannot help: a single CPU, more CPUs than
    /// readers (some CPU would have none), or no readable /proc/stat to tell a busy CPU by.
    /// </summary>
    public static ReaderPlacement? TryCreate(int readers)
    {
        Span<ulong> mask = stackalloc ulong[LibC.CpuMaskWords];
        if (!LibC.GetProcessCpus(mask))
        {
            return null;
        }

        var cpus = new List<int>();
        for (int cpu = 0; cpu < LibC.CpuMaskWords * 64; cpu++)
        {
            if ((mask[cpu / 64] & (1UL << (cpu % 64))) != 0)
            {
                cpus.Add(cpu);
            }
        }

        if (cpus.Count < 2 || cpus.Count > readers)
        {
            return null;
        }

        var placement = new ReaderPlacement([.. cpus]);
        if (!placement.ReadIdle(out _, out _))
        {
            return null;
        }

        placement._sampledAtMs = Environment.TickCount64;
        return placement;
    }

    /// <summary>How many CPUs the readers are spread over while pinned (a reader for each is started at once).</summary>
    public int CpuCount => _cpus.Length;

    /// <summary>True while the readers are pinned one per CPU.</summary>
    public bool Pinned => _pinned;

    /// <summary>For status: where the readers run and why.</summary>
    public string Describe() => _pinned
        ? $"pinned, one per CPU ({string.Join(",", _cpus)}): {_reason}"
        : $"on any CPU: {_reason}";

    /// <summary>A reader starts (on its own thread): it takes its place.</summary>
    public void Enter(int readerIndex, ref int applied)
    {
        applied = _generation;
        Place(readerIndex, _pinned);
    }

    /// <summary>
    /// After each request a reader answered (on its own thread): now and then a sample of the CPUs' idle time, and a move
    /// when the placement changed since the reader last placed itself. Otherwise an increment and a volatile read.
    /// </summary>
    public void AfterRequest(int readerIndex, ref int applied, ref int requests)
    {
        if (++requests >= SampleEveryRequests)
        {
            requests = 0;
            Sample();
        }

        int generation = _generation;
        if (generation != applied)
        {
            applied = generation;
            Place(readerIndex, _pinned);
        }
    }

    /// <remarks>A refusal (a cpuset narrowed since) leaves the thread where it is: placement saves CPU, it decides nothing.</remarks>
    private void Place(int readerIndex, bool pinned)
    {
        if (!pinned)
        {
            _ = LibC.RunOnProcessCpus();
            return;
        }

        Span<ulong> mask = stackalloc ulong[LibC.CpuMaskWords];
        mask.Clear();
        int cpu = _cpus[readerIndex % _cpus.Length];
        mask[cpu / 64] = 1UL << (cpu % 64);
        _ = LibC.SetThreadCpus(mask);
    }

    /// <summary>One reader at a time, once a window has passed: reads the idle ticks and decides.</summary>
    private void Sample()
    {
        long now = Environment.TickCount64;
        if (now - Volatile.Read(ref _sampledAtMs) < WindowMs || Interlocked.CompareExchange(ref _sampling, 1, 0) != 0)
        {
            return;
        }

        try
        {
            if (!ReadIdle(out int busiestCpu, out int leastIdlePercent))
            {
                return;
            }

            Volatile.Write(ref _sampledAtMs, now);
            if (_pinned && leastIdlePercent < BusyIdlePercent)
            {
                _reason = $"CPU {busiestCpu} was idle {leastIdlePercent}% of the last {WindowMs} ms or more";
                _pinned = false;
                _generation++;
            }
            else if (!_pinned && leastIdlePercent >= FreeIdlePercent)
            {
                _reason = "every CPU has idle time";
                _pinned = true;
                _generation++;
            }
        }
        finally
        {
            Volatile.Write(ref _sampling, 0);
        }
    }

    /// <summary>
    /// Reads /proc/stat's cpuN lines into the tick counters, and finds the CPU idle the smallest share of the window since
    /// the last read, and that share (100 when no CPU counted a tick: the window was too short to judge). The first read,
    /// against counters of zero, judges nothing; its caller ignores the answer.
    /// </summary>
    private unsafe bool ReadIdle(out int busiestCpu, out int leastIdlePercent)
    {
        busiestCpu = -1;
        leastIdlePercent = 100;
        int fd = LibC.open("/proc/stat", LibC.O_RDONLY | LibC.O_CLOEXEC | LibC.O_NOFOLLOW, 0);
        if (fd < 0)
        {
            return false;
        }

        int length;
        try
        {
            fixed (byte* b = _statBuffer)
            {
                length = (int)LibC.pread(fd, b, _statBuffer.Length, 0);
            }
        }
        finally
        {
            LibC.close(fd);
        }

        if (length <= 0)
        {
            return false;
        }

        int found = 0;
        foreach (ProcStatCpu line in ProcStatCpu.Parse(_statBuffer.AsSpan(0, length)))
        {
            int slot = Array.IndexOf(_cpus, line.Cpu);
            if (slot < 0)
            {
                continue;
            }

            found++;
            long idle = line.Idle - _idleTicks[slot];
            long total = line.Total - _totalTicks[slot];
            _idleTicks[slot] = line.Idle;
            _totalTicks[slot] = line.Total;
            if (total <= 0)
            {
                continue;
            }

            int idlePercent = (int)Math.Clamp(idle * 100 / total, 0, 100);
            if (idlePercent < leastIdlePercent)
            {
                leastIdlePercent = idlePercent;
                busiestCpu = line.Cpu;
            }
        }

        return found == _cpus.Length;
    }
}

/// <summary>One "cpuN" line of /proc/stat: idle ticks (idle + iowait) and all ticks (user through steal).</summary>
public readonly record struct ProcStatCpu(int Cpu, long Idle, long Total)
{
    /// <summary>The per-CPU lines of /proc/stat's text (the summary "cpu " line and every other line are skipped).</summary>
    public static List<ProcStatCpu> Parse(ReadOnlySpan<byte> text)
    {
        var lines = new List<ProcStatCpu>();
        while (!text.IsEmpty)
        {
            int end = text.IndexOf((byte)'\n');
            ReadOnlySpan<byte> line = end < 0 ? text : text[..end];
            text = end < 0 ? default : text[(end + 1)..];
            if (line.Length > 3 && line.StartsWith("cpu"u8) && char.IsAsciiDigit((char)line[3]) && TryParse(line[3..], out ProcStatCpu cpu))
            {
                lines.Add(cpu);
            }
        }

        return lines;
    }

    /// <summary>"N user nice system idle iowait irq softirq steal ...": a line cut short (fewer than 8 counters) is refused.</summary>
    private static bool TryParse(ReadOnlySpan<byte> rest, out ProcStatCpu cpu)
    {
        cpu = default;
        Span<long> fields = stackalloc long[9];
        int count = 0;
        while (count < fields.Length)
        {
            rest = rest.TrimStart((byte)' ');
            int digits = 0;
            long value = 0;
            while (digits < rest.Length && char.IsAsciiDigit((char)rest[digits]) && digits < 19)
            {
                value = value * 10 + (rest[digits] - '0');
                digits++;
            }

            if (digits == 0)
            {
                break;
            }

            fields[count++] = value;
            rest = rest[digits..];
        }

        if (count < 9)
        {
            return false;
        }

        long total = 0;
        for (int i = 1; i <= 8; i++)
        {
            total += fields[i];
        }

        cpu = new ProcStatCpu((int)fields[0], fields[4] + fields[5], total);
        return true;
    }
}
