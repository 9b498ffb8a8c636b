namespace InSpatialFs.Security.Events;

/// <summary>
/// Wakes the single event consumer without a syscall per event. Producers call <see cref="Wake"/> after queueing;
/// it signals only while the consumer is asleep, so a busy consumer costs producers one fenced read. The consumer
/// announces sleep, re-checks for work, then blocks (no spinning: on two cores a spinning waiter steals the CPU the
/// request path needs).
/// </summary>
/// <remarks>
/// Correctness is the Dekker pattern: the producer's queue write and the consumer's sleep flag are each followed by
/// a full fence before the other side's read, so either the consumer sees the item or the producer sees the flag.
/// </remarks>
internal sealed class ConsumerWakeup : IDisposable
{
    private readonly ManualResetEventSlim _signal = new(false, spinCount: 0);
    private int _sleeping;
    private long _signals;

    /// <summary>Wake-ups that signalled a sleeping consumer (each one a futex call or more for the producer).</summary>
    public long Signals => Interlocked.Read(ref _signals);

    /// <summary>Producer side, after the item is queued.</summary>
    public void Wake()
    {
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref _sleeping) != 0 && Interlocked.Exchange(ref _sleeping, 0) != 0)
        {
            Interlocked.Increment(ref _signals);
            _signal.Set();
        }
    }

    /// <summary>Consumer side: blocks until woken or <paramref name="timeoutMs"/> passes, unless work is already there.</summary>
    public void Sleep(Func<bool> hasWork, int timeoutMs)
    {
        _signal.Reset();
        Interlocked.Exchange(ref _sleeping, 1);
        if (!hasWork())
        {
            _signal.Wait(timeoutMs);
        }

        Volatile.Write(ref _sleeping, 0);
    }

    public void Dispose() => _signal.Dispose();
}
