using System.Collections.Concurrent;
using System.Diagnostics;

namespace InSpatialFs.Security.Events;

/// <summary>
/// The bounded queue between <c>Record</c> (request threads) and the one consumer thread that analyses, journals and
/// publishes events. It cannot be blinded by a flood: routine events may fill only the first three quarters of the
/// capacity and are dropped (counted) past it, while events that must reach analysis - denials and would-denies,
/// execs, set-id changes, escapes, alerts, and whatever a loaded rule waits for (<see cref="IRuleEngine.MustSee"/>) -
/// use the rest, and past the full capacity their request waits (bounded by <see cref="CriticalWait"/>) for the
/// consumer to make room; after that wait they are queued over capacity rather than lost. A stalled consumer thus
/// slows the requests that produce critical events, never drops them.
/// Producers pay one interlocked increment and one enqueue; the rule query runs only once routine room is gone.
/// </summary>
internal sealed class EventPipeline : IDisposable
{
    /// <summary>How long a request with a critical event waits for room before its event is queued over capacity.</summary>
    public static readonly TimeSpan CriticalWait = TimeSpan.FromSeconds(2);

    private const int BatchSize = 512;

    /// <summary>
    /// After a wake-up the consumer waits this long before draining, and polls at this period while events keep
    /// coming, so a burst is analysed and journalled as one batch (one write) instead of one wake-up, one batch and
    /// one write per event. Bounds detection latency of asynchronous rules; decisions and inline rules do not wait
    /// for it.
    /// </summary>
    private const int CoalesceMs = 2;

    /// <summary>
    /// The longest poll period. While each pass finds only a few events (<see cref="FewEvents"/>; a shell loop's
    /// processes, a trickle of requests) the period doubles up to this, so the consumer wakes once per several
    /// processes instead of once per process (a shell loop of `cat`s: one timer wake-up per process at 2 ms, each a
    /// context switch and, on a VM whose idle CPUs halt, an exit to the hypervisor). A fuller pass goes back to
    /// <see cref="CoalesceMs"/>. Asynchronous rules then see an event of such a trickle up to this much later.
    /// </summary>
    private const int MaxCoalesceMs = 8;

    /// <summary>A pass that drained fewer events than this lengthens the poll period (see <see cref="MaxCoalesceMs"/>).</summary>
    private const int FewEvents = 32;

    /// <summary>
    /// Time without an event that ends a burst (in whole poll periods, at least this long): only then does the consumer
    /// sleep until a producer wakes it. A container that starts a process every millisecond or two (a shell loop, a
    /// build) makes two or three events per process and then none for a while; with one empty poll ending the burst,
    /// every process cost the request that recorded its first event a futex wake and the consumer two context switches.
    /// </summary>
    private const int QuietMs = 10;

    private const int SetIdBits = 0xC00; // S_ISUID | S_ISGID

    private readonly ConcurrentQueue<FsEvent> _queue = new();
    private readonly ConsumerWakeup _wakeup = new();
    private readonly object _room = new();
    private readonly Thread _consumer;
    private readonly int _capacity, _routineCapacity;
    private readonly Func<FsEvent, bool> _mustSee;
    private readonly Action<FsEvent> _process;
    private readonly Action<long> _afterBatch;
    private readonly Func<bool> _hasSideWork;
    private readonly Action _drainSideWork;
    private readonly Action<Exception, FsEvent?> _onError;
    private int _queued, _waiting;
    private long _recorded, _dropped, _processed, _waited, _overCapacity, _passes;
    private volatile bool _completed;

    /// <param name="capacity">Events queued at most before critical events wait (routine ones are dropped at 3/4 of it).</param>
    /// <param name="mustSee">Whether a rule waits for this event (asked only once routine room is gone).</param>
    /// <param name="process">Per event, on the consumer thread (exceptions are logged by the caller's <paramref name="onError"/>).</param>
    /// <param name="afterBatch">After each batch, with the events dropped so far: flush sinks, report drops.</param>
    /// <param name="hasSideWork">Work queued elsewhere for the consumer (inline detections).</param>
    /// <param name="drainSideWork">Runs that work before each batch.</param>
    /// <param name="onError">A failure (with its event, if any): the event is skipped, the consumer goes on.</param>
    public EventPipeline(int capacity, Func<FsEvent, bool> mustSee, Action<FsEvent> process, Action<long> afterBatch,
        Func<bool> hasSideWork, Action drainSideWork, Action<Exception, FsEvent?> onError)
    {
        _capacity = Math.Max(4, capacity);
        _routineCapacity = _capacity - _capacity / 4;
        _mustSee = mustSee;
        _process = process;
        _afterBatch = afterBatch;
        _hasSideWork = hasSideWork;
        _drainSideWork = drainSideWork;
        _onError = onError;
        _consumer = new Thread(ConsumeLoop) { IsBackground = true, Name = "security-events" };
        _consumer.Start();
    }

    public long Recorded => Volatile.Read(ref _recorded);
    public long Dropped => Volatile.Read(ref _dropped);
    public long Processed => Volatile.Read(ref _processed);
    /// <summary>Critical events whose request waited for room.</summary>
    public long Waited => Volatile.Read(ref _waited);
    /// <summary>Critical events queued over capacity after <see cref="CriticalWait"/> (a consumer that stalled).</summary>
    public long OverCapacity => Volatile.Read(ref _overCapacity);
    public int Queued => Volatile.Read(ref _queued);
    /// <summary>Times a producer had to wake the sleeping consumer.</summary>
    public long Wakeups => _wakeup.Signals;
    /// <summary>Passes of the consumer's loop (each one a drain, then a sleep).</summary>
    public long Passes => Volatile.Read(ref _passes);

    /// <summary>True for events analysis must see: never dropped.</summary>
    public bool IsCritical(FsEvent e) =>
        e.Decision is Decision.Deny or Decision.WouldDeny || e.IsExec || !e.Why.IsNone || e.Op == FsOp.Escape
        || (e.Op is FsOp.Chmod or FsOp.Create or FsOp.MkNod or FsOp.MkDir or FsOp.TmpFile && (e.Mode & SetIdBits) != 0)
        || _mustSee(e);

    /// <summary>Queues an event; false when it was a routine event dropped for lack of room (counted).</summary>
    public bool Record(FsEvent e)
    {
        int n = Interlocked.Increment(ref _queued);
        if (n > _routineCapacity)
        {
            if (!IsCritical(e))
            {
                Interlocked.Decrement(ref _queued);
                Interlocked.Increment(ref _dropped);
                return false;
            }

            if (n > _capacity && Thread.CurrentThread != _consumer) WaitForRoom();
        }

        _queue.Enqueue(e);
        Interlocked.Increment(ref _recorded);
        _wakeup.Wake();
        return true;
    }

    /// <summary>Precondition: this event is counted in _queued. Returns with it still counted.</summary>
    private void WaitForRoom()
    {
        Interlocked.Increment(ref _waited);
        Interlocked.Increment(ref _waiting);
        _wakeup.Wake();
        try
        {
            var clock = Stopwatch.StartNew();
            lock (_room)
            {
                // Full while the others queued before this one fill the capacity (this event is counted too).
                while (Volatile.Read(ref _queued) > _capacity)
                {
                    TimeSpan left = CriticalWait - clock.Elapsed;
                    if (left <= TimeSpan.Zero)
                    {
                        Interlocked.Increment(ref _overCapacity);
                        return;
                    }

                    Monitor.Wait(_room, left);
                }
            }
        }
        finally
        {
            Interlocked.Decrement(ref _waiting);
        }
    }

    /// <summary>Waits until every event recorded so far has been processed and nothing else is pending (tests, shutdown).</summary>
    public bool WaitIdle(TimeSpan timeout, Func<bool> alsoIdle)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout)
        {
            if (Processed >= Recorded && _queue.IsEmpty && !_hasSideWork() && alsoIdle()) return true;
            Thread.Sleep(2);
        }

        return false;
    }

    public void Wake() => _wakeup.Wake();

    private void ConsumeLoop()
    {
        Func<bool> hasWork = () => !_queue.IsEmpty || _hasSideWork() || _completed;
        int quietMs = 0, pauseMs = CoalesceMs;
        while (true)
        {
            Volatile.Write(ref _passes, _passes + 1);
            Guarded(_drainSideWork);
            int n = 0;
            while (n < BatchSize && _queue.TryDequeue(out FsEvent? e))
            {
                n++;
                try
                {
                    _process(e);
                }
                catch (Exception ex)
                {
                    _onError(ex, e);
                }
            }

            if (n > 0)
            {
                Interlocked.Add(ref _queued, -n);
                if (Volatile.Read(ref _waiting) != 0)
                {
                    lock (_room) Monitor.PulseAll(_room);
                }
            }

            try
            {
                _afterBatch(Dropped);
            }
            catch (Exception ex)
            {
                _onError(ex, null); // as Guarded, without a closure per pass
            }

            Interlocked.Add(ref _processed, n);
            if (n == BatchSize)
            {
                pauseMs = CoalesceMs;
                continue; // behind: drain without pausing
            }

            if (_queue.IsEmpty && !_hasSideWork())
            {
                if (_completed)
                {
                    return;
                }

                // Only a whole quiet period ends a burst. While events keep coming the consumer polls once per period
                // and nobody wakes it: a wake-up costs the request that makes it a futex call or three, and the
                // consumer two context switches, where a poll costs one nanosleep.
                if (n == 0 && (quietMs += pauseMs) >= QuietMs)
                {
                    quietMs = 0;
                    pauseMs = CoalesceMs;
                    _wakeup.Sleep(hasWork, Timeout.Infinite);
                }
            }

            if (n > 0)
            {
                quietMs = 0;
                pauseMs = n < FewEvents ? Math.Min(2 * pauseMs, MaxCoalesceMs) : CoalesceMs;
            }

            Interop.LibC.SleepBriefly(pauseMs);
        }
    }

    /// <summary>The consumer thread must outlive any failure: an exception escaping it would end the process.</summary>
    private void Guarded(Action work)
    {
        try
        {
            work();
        }
        catch (Exception ex)
        {
            _onError(ex, null);
        }
    }

    public void Dispose()
    {
        _completed = true;
        _wakeup.Wake();
        _consumer.Join(TimeSpan.FromSeconds(10));
        _wakeup.Dispose();
    }
}
