namespace InSpatialFs.Security.Events;

/// <summary>
/// Wakes the single event consumer without a syscall per event. Producers call <see cref="Wake"/> after queueing;
/// it signals only while the consumer is asleep, so a busy consumer costs producers one fenced read. The consumer
/// announces sleep, re-checks for work, then blocks (no spinning: on two cores a spinning waiter steals the CPU the
/// request path needs).
/// A consumer that was busy a moment ago <see cref="Linger"/>s instead: it polls on a short timer, and only urgent
/// events (denials, execs, inline detections, a full queue, shutdown) wake it early. A steady stream of routine
/// events then costs no futex wake and no extra context switch per event on the request threads, only the
/// consumer's own timer ticks.
/// </summary>
/// <remarks>
/// Correctness is the Dekker pattern: the producer's queue write (and urgent flag) and the consumer's state are each
/// followed by a full fence before the other side's read, so either the consumer sees the work or the producer sees
/// the state and signals.
/// </remarks>
internal sealed class ConsumerWakeup : IDisposable
{
    private const int Awake = 0, Asleep = 1, Lingering = 2;
    private readonly ManualResetEventSlim _signal = new(false, spinCount: 0);
    private int _state;
    private int _urgent;

    /// <summary>Producer side, after the item is queued; <paramref name="urgent"/> also ends a linger.</summary>
    public void Wake(bool urgent = true)
    {
        if (urgent)
        {
            Volatile.Write(ref _urgent, 1);
        }

        Interlocked.MemoryBarrier();
        int state = Volatile.Read(ref _state);
        if ((state == Asleep || (urgent && state == Lingering)) && Interlocked.CompareExchange(ref _state, Awake, state) == state)
        {
            _signal.Set();
        }
    }

    /// <summary>Consumer side: blocks until woken or <paramref name="timeoutMs"/> passes, unless work is already there.</summary>
    public void Sleep(Func<bool> hasWork, int timeoutMs)
    {
        _signal.Reset();
        Interlocked.Exchange(ref _state, Asleep);
        if (!hasWork())
        {
            _signal.Wait(timeoutMs);
        }

        Volatile.Write(ref _state, Awake);
        Volatile.Write(ref _urgent, 0);
    }

    /// <summary>Consumer side: waits <paramref name="timeoutMs"/>, cut short only by an urgent wake (or one pending).</summary>
    public void Linger(int timeoutMs)
    {
        _signal.Reset();
        Interlocked.Exchange(ref _state, Lingering);
        if (Volatile.Read(ref _urgent) == 0)
        {
            _signal.Wait(timeoutMs);
        }

        Volatile.Write(ref _state, Awake);
        Volatile.Write(ref _urgent, 0);
    }

    public void Dispose() => _signal.Dispose();
}
