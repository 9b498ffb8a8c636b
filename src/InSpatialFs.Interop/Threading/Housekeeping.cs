namespace InSpatialFs.Interop.Threading;

/// <summary>
/// One thread that runs the daemon's periodic upkeep (the heartbeat, the caller sweep, the idle-memory look, the quota
/// ledger, the runtime-written journal's flush) one job after another, in place of <see cref="Timer"/>s.
/// </summary>
/// <remarks>
/// A <see cref="Timer"/> hands every firing to the thread pool: the runtime's timer thread wakes a pool worker, the
/// worker wakes a second one beside it and the pool's gate thread, which then looks at the pool twice a second for a
/// while. For upkeep of a few microseconds that was 10-15 context switches per firing, most of what an idle instance
/// still cost (4.3 switches a second, against none for fuse-overlayfs and bindfs). Here a firing is one wake-up of
/// one thread.
/// <para>
/// The price is that jobs run in turn: a job must be short and must not wait on the mount or on a request (none of
/// the daemon's does; the longest is the idle-memory collection, a few milliseconds). A job that throws ends the
/// process, as a throwing <see cref="Timer"/> callback does.
/// </para>
/// </remarks>
public sealed class Housekeeping
{
    /// <summary>The process's one housekeeping thread, started by the first job scheduled on it.</summary>
    public static Housekeeping Shared { get; } = new("housekeeping");

    private readonly string _threadName;
    private readonly object _schedule = new(); // Monitor: guards _jobs and every job's due time; pulsed when one changes
    private readonly List<HousekeepingJob> _jobs = [];
    private Thread? _thread;

    /// <summary>A housekeeping thread of its own (tests); the daemon uses <see cref="Shared"/>.</summary>
    public Housekeeping(string threadName) => _threadName = threadName;

    /// <summary>
    /// Schedules <paramref name="work"/> as <see cref="Timer"/>'s constructor would: first after <paramref name="dueTime"/>
    /// (<see cref="Timeout.InfiniteTimeSpan"/>: not yet), then every <paramref name="period"/>
    /// (<see cref="Timeout.InfiniteTimeSpan"/>: once).
    /// </summary>
    public HousekeepingJob Schedule(Action work, TimeSpan dueTime, TimeSpan period)
    {
        ArgumentNullException.ThrowIfNull(work);
        var job = new HousekeepingJob(this, work);
        lock (_schedule)
        {
            Set(job, dueTime, period);
            _jobs.Add(job);
            if (_thread is null)
            {
                _thread = new Thread(Run) { IsBackground = true, Name = _threadName };
                _thread.Start();
            }
        }

        return job;
    }

    internal void Change(HousekeepingJob job, TimeSpan dueTime, TimeSpan period)
    {
        lock (_schedule)
        {
            if (!job.Cancelled) Set(job, dueTime, period);
        }
    }

    internal void Cancel(HousekeepingJob job)
    {
        lock (_schedule)
        {
            job.Cancelled = true;
            _jobs.Remove(job);
        }
    }

    private void Set(HousekeepingJob job, TimeSpan dueTime, TimeSpan period)
    {
        job.DueMs = dueTime == Timeout.InfiniteTimeSpan ? long.MaxValue : Environment.TickCount64 + Milliseconds(dueTime);
        job.PeriodMs = period == Timeout.InfiniteTimeSpan ? 0 : Math.Max(1, Milliseconds(period));
        Monitor.Pulse(_schedule); // the thread may be waiting for a later due time
    }

    private static long Milliseconds(TimeSpan t)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(t, TimeSpan.Zero);
        return (long)Math.Ceiling(t.TotalMilliseconds);
    }

    private void Run()
    {
        // Started by whichever thread scheduled the first job: perhaps a request thread pinned to one CPU.
        LibC.RunOnProcessCpus();
        while (true)
        {
            HousekeepingJob job = NextDue();
            job.Work();
        }
    }

    /// <summary>
    /// A periodic job due within an eighth of its period rides along with a job the thread woke for, so jobs of one
    /// period fall into step after their first runs: the heartbeat, the sweep and the memory look (10 s each when idle)
    /// wake the thread once per 10 s instead of three times. One-shots never run early (their slack is 0).
    /// </summary>
    private const long RideAlongDivisor = 8;

    // Guarded by _schedule: the thread ran a due job and has not waited since.
    private bool _awake;

    /// <summary>Waits for the earliest job to come due, and sets its next due time (or disarms a one-shot) before it runs.</summary>
    private HousekeepingJob NextDue()
    {
        lock (_schedule)
        {
            while (true)
            {
                HousekeepingJob? earliest = null;
                foreach (HousekeepingJob j in _jobs)
                {
                    if (earliest is null || j.DueMs < earliest.DueMs) earliest = j;
                }

                long now = Environment.TickCount64;
                if (earliest is not null && (earliest.DueMs <= now || (_awake && earliest.DueMs - now <= earliest.PeriodMs / RideAlongDivisor)))
                {
                    _awake = true;
                    earliest.DueMs = earliest.PeriodMs == 0 ? long.MaxValue : now + earliest.PeriodMs;
                    return earliest;
                }

                _awake = false;
                long wait = earliest is null || earliest.DueMs == long.MaxValue ? Timeout.Infinite : earliest.DueMs - now;
                Monitor.Wait(_schedule, (int)Math.Min(wait, int.MaxValue));
            }
        }
    }
}

/// <summary>A job on <see cref="Housekeeping"/>, changed and disposed as a <see cref="Timer"/> is.</summary>
public sealed class HousekeepingJob : IDisposable
{
    private readonly Housekeeping _owner;

    internal HousekeepingJob(Housekeeping owner, Action work)
    {
        _owner = owner;
        Work = work;
    }

    internal Action Work { get; }

    // Guarded by the owner's schedule lock.
    internal long DueMs;
    internal long PeriodMs; // 0: once
    internal bool Cancelled;

    /// <summary>As <see cref="Timer.Change(TimeSpan, TimeSpan)"/>; nothing once disposed (no exception to catch).</summary>
    public void Change(TimeSpan dueTime, TimeSpan period) => _owner.Change(this, dueTime, period);

    /// <summary>
    /// Takes the job off the schedule. As with <see cref="Timer.Dispose()"/>, a run already under way (or taken off the
    /// schedule an instant before) still finishes: the work must tolerate running once after its owner began disposing.
    /// </summary>
    public void Dispose() => _owner.Cancel(this);
}
