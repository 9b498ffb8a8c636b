using InSpatialFs.Security.Events;

namespace InSpatialFs.Security.Rules;

/// <summary>Per-key state shared by the stateful forms; <see cref="LastSeen"/> is evt.time, never the wall clock.</summary>
internal abstract class KeyState
{
    public long LastSeen;
    /// <summary>The container the key's events came from (a reference to the event's string, not a copy).</summary>
    public string? ContainerId;
}

internal sealed class CountKeyState : KeyState
{
    /// <summary>The last N event times, N = count.gte; the oldest of a full ring decides.</summary>
    public required long[] Times;
    public int Next;
    public int Filled;
}

/// <summary>
/// Count form for large N: the window split into <see cref="Buckets"/> sub-windows, so a key costs a fixed
/// 160 bytes however large N is (a ring of N times would cost 8N). Exact to one sub-window (window/20).
/// </summary>
internal sealed class BucketCountKeyState : KeyState
{
    public const int Buckets = 20;
    public readonly long[] Counts = new long[Buckets];
    /// <summary>Absolute index (evt.time / bucket width) of the newest bucket.</summary>
    public long Newest = long.MinValue;
}

internal sealed class DistinctKeyState : KeyState
{
    /// <summary>Value hash → last time seen; pruned to the window, so it never holds more than gte entries after an event.</summary>
    public readonly Dictionary<ulong, long> LastSeenByValue = [];
}

internal sealed class SequenceInstance
{
    public required long Start;
    public required FsEvent?[] Captures;
}

internal sealed class SequenceKeyState : KeyState
{
    /// <summary>Pending[i]: the newest instance that has completed steps 0..i (one per step and key).</summary>
    public required SequenceInstance?[] Pending;
}

internal sealed class SuppressKeyState : KeyState;

/// <summary>
/// The mutable part of a rule: hit counts and the keyed state of thresholds, sequences and suppression.
/// Survives a reload when the rule's fingerprint is unchanged. Lock order: a single lock per rule, never
/// nested (inline threads and the analyser both take it for O(1) work; stateless rules never take it).
/// </summary>
internal sealed class RuleRuntime
{
    /// <summary>Count thresholds up to this N keep exact event times; above it, sub-window buckets.</summary>
    internal const int ExactCountMax = 256;

    private readonly Lock _gate = new();
    private readonly Dictionary<StateKey, KeyState> _threshold = [];
    private readonly Dictionary<StateKey, SequenceKeyState> _sequence = [];
    private readonly Dictionary<StateKey, KeyState> _suppress = [];
    private int _pendingInstances;

    public long Hits;
    public long Suppressed;
    public long Evictions;
    public long CapHits;

    public int KeyCount
    {
        get
        {
            lock (_gate)
            {
                return _threshold.Count + _sequence.Count + _suppress.Count;
            }
        }
    }

    /// <summary>Records a matching event; true when the threshold is reached (the key's window then starts over).</summary>
    public bool ObserveThreshold(ThresholdPlan plan, FsEvent e, int maxKeys)
    {
        StateKey key = plan.By.KeyOf(e);
        long now = e.TimeUnixNanos;
        lock (_gate)
        {
            if (!_threshold.TryGetValue(key, out KeyState? state))
            {
                MakeRoom(_threshold, maxKeys, now, plan.WindowNanos);
                state = plan.DistinctField != null ? new DistinctKeyState()
                    : plan.CountAtLeast <= ExactCountMax ? new CountKeyState { Times = new long[plan.CountAtLeast] }
                    : new BucketCountKeyState();
                _threshold[key] = state;
            }

            state.LastSeen = now;
            state.ContainerId = e.ContainerId;
            if (state is CountKeyState count)
            {
                long[] ring = count.Times;
                ring[count.Next] = now;
                count.Next = (count.Next + 1) % ring.Length;
                if (count.Filled < ring.Length)
                {
                    count.Filled++;
                }

                // Full ring: the slot after the newest holds the oldest of the last N events.
                if (count.Filled == ring.Length && now - ring[count.Next] < plan.WindowNanos)
                {
                    count.Filled = 0;
                    return true;
                }

                return false;
            }

            if (state is BucketCountKeyState buckets)
            {
                return ObserveBuckets(buckets, plan, now);
            }

            var distinct = (DistinctKeyState)state;
            ReadOnlySpan<char> value = plan.DistinctField!.Type == FieldType.Text
                ? plan.DistinctField.Text!(e, out _)
                : default;
            ulong hash = plan.DistinctField.Type == FieldType.Text
                ? KeyPlan.HashText(value)
                : plan.DistinctField.Number is { } number ? (ulong)number(e, out _) : (plan.DistinctField.Bool!(e) ? 1UL : 0UL);
            distinct.LastSeenByValue[hash] = now;
            if (distinct.LastSeenByValue.Count < plan.DistinctAtLeast)
            {
                return false;
            }

            foreach ((ulong h, long seen) in distinct.LastSeenByValue)
            {
                if (now - seen >= plan.WindowNanos)
                {
                    distinct.LastSeenByValue.Remove(h);
                }
            }

            if (distinct.LastSeenByValue.Count >= plan.DistinctAtLeast)
            {
                distinct.LastSeenByValue.Clear();
                return true;
            }

            return false;
        }
    }

    private static bool ObserveBuckets(BucketCountKeyState state, ThresholdPlan plan, long now)
    {
        const int n = BucketCountKeyState.Buckets;
        long width = Math.Max(1, plan.WindowNanos / n);
        long index = now / width;
        long[] counts = state.Counts;
        if (state.Newest == long.MinValue || index - state.Newest >= n)
        {
            Array.Clear(counts);
            state.Newest = index;
        }
        else if (index > state.Newest)
        {
            for (long i = state.Newest + 1; i <= index; i++)
            {
                counts[(int)(i % n)] = 0;
            }

            state.Newest = index;
        }
        else if (state.Newest - index >= n)
        {
            return false; // older than the window: out-of-order and irrelevant
        }

        counts[(int)(index % n)]++;
        long total = 0;
        foreach (long c in counts)
        {
            total += c;
        }

        if (total >= plan.CountAtLeast)
        {
            Array.Clear(counts);
            return true;
        }

        return false;
    }

    /// <summary>
    /// Feeds one event to a sequence; appends the captures (one event per step) of every instance it completes.
    /// Steps are tried from the last back to the first so one event advances an instance at most one step.
    /// </summary>
    public void ObserveSequence(SequencePlan plan, FsEvent e, int maxKeys, List<FsEvent?[]> completed)
    {
        bool starts = plan.Steps[0].Predicate(e, null);
        // Benign traffic with nothing pending costs two predicate calls, no hashing.
        if (!starts && Volatile.Read(ref _pendingInstances) == 0)
        {
            return;
        }

        StateKey key = plan.By.KeyOf(e);
        long now = e.TimeUnixNanos;
        int steps = plan.Steps.Length;
        lock (_gate)
        {
            _sequence.TryGetValue(key, out SequenceKeyState? state);
            if (state != null)
            {
                for (int i = steps - 2; i >= 0; i--)
                {
                    SequenceInstance? instance = state.Pending[i];
                    if (instance == null)
                    {
                        continue;
                    }

                    if (now - instance.Start > plan.MaxspanNanos || (plan.Until != null && plan.Until.Predicate(e, instance.Captures)))
                    {
                        SetSlot(state, i, null);
                        continue;
                    }

                    if (!plan.Steps[i + 1].Predicate(e, instance.Captures))
                    {
                        continue;
                    }

                    instance.Captures[i + 1] = e.Clone();
                    SetSlot(state, i, null);
                    if (i + 1 == steps - 1)
                    {
                        completed.Add(instance.Captures);
                    }
                    else
                    {
                        SetSlot(state, i + 1, instance);
                    }

                    state.LastSeen = now;
                }
            }

            if (starts)
            {
                if (state == null)
                {
                    MakeRoom(_sequence, maxKeys, now, plan.MaxspanNanos);
                    state = new SequenceKeyState { Pending = new SequenceInstance?[steps - 1] };
                    _sequence[key] = state;
                }

                // A broad first step (every create) must not allocate per event: the replaced instance is reused.
                SequenceInstance? reuse = state.Pending[0];
                if (reuse != null)
                {
                    reuse.Start = now;
                    CopyEvent(e, reuse.Captures[0]!);
                }
                else
                {
                    var captures = new FsEvent?[steps];
                    captures[0] = e.Clone();
                    SetSlot(state, 0, new SequenceInstance { Start = now, Captures = captures });
                }

                state.LastSeen = now;
                state.ContainerId = e.ContainerId;
            }
        }
    }

    /// <summary>Copies every field of an event into an existing one (MemberwiseClone would allocate).</summary>
    internal static void CopyEvent(FsEvent from, FsEvent to)
    {
        to.TimeUnixNanos = from.TimeUnixNanos;
        to.Seq = from.Seq;
        to.Op = from.Op;
        to.Flags = from.Flags;
        to.Mode = from.Mode;
        to.Result = from.Result;
        to.IsWrite = from.IsWrite;
        to.IsExec = from.IsExec;
        to.Size = from.Size;
        to.Path = from.Path;
        to.Target = from.Target;
        to.Object = from.Object;
        to.LinkResolved = from.LinkResolved;
        to.LinkTarget = from.LinkTarget;
        to.XattrName = from.XattrName;
        to.IsNew = from.IsNew;
        to.Pid = from.Pid;
        to.ProcName = from.ProcName;
        to.Uid = from.Uid;
        to.Gid = from.Gid;
        to.NodeUid = from.NodeUid;
        to.ContainerId = from.ContainerId;
        to.Level = from.Level;
        to.PolicyClass = from.PolicyClass;
        to.Decision = from.Decision;
        to.Why = from.Why;
        to.LatencyNanos = from.LatencyNanos;
        to.Caller = from.Caller;
        to.Process = from.Process;
    }

    /// <summary>True when a detection for this key should be reported (not within the suppression window of the last one).</summary>
    public bool ShouldReport(long windowNanos, KeyPlan by, FsEvent e, int maxKeys)
    {
        if (windowNanos <= 0)
        {
            return true;
        }

        StateKey key = by.KeyOf(e);
        long now = e.TimeUnixNanos;
        lock (_gate)
        {
            if (_suppress.TryGetValue(key, out KeyState? state))
            {
                if (now - state.LastSeen < windowNanos)
                {
                    Interlocked.Increment(ref Suppressed);
                    return false;
                }
            }
            else
            {
                MakeRoom(_suppress, maxKeys, now, windowNanos);
                state = new SuppressKeyState();
                _suppress[key] = state;
            }

            state.LastSeen = now;
            state.ContainerId = e.ContainerId;
            return true;
        }
    }

    /// <summary>Drops keys whose state can no longer affect a result (idle longer than the rule's horizon).</summary>
    public int Sweep(long now, long thresholdHorizon, long sequenceHorizon, long suppressHorizon)
    {
        lock (_gate)
        {
            int removed = RemoveWhere(_threshold, now, thresholdHorizon, null) + RemoveWhere(_suppress, now, suppressHorizon, null);
            foreach ((StateKey k, SequenceKeyState s) in _sequence)
            {
                if (now - s.LastSeen > sequenceHorizon)
                {
                    RemoveSequenceKey(k, s);
                    removed++;
                }
            }

            Evictions += removed;
            return removed;
        }
    }

    /// <summary>Drops every key whose events came from <paramref name="containerId"/> (the container exited).</summary>
    public int ForgetContainer(string containerId)
    {
        lock (_gate)
        {
            int removed = RemoveWhere(_threshold, 0, 0, containerId) + RemoveWhere(_suppress, 0, 0, containerId);
            foreach ((StateKey k, SequenceKeyState s) in _sequence)
            {
                if (s.ContainerId == containerId)
                {
                    RemoveSequenceKey(k, s);
                    removed++;
                }
            }

            Evictions += removed;
            return removed;
        }
    }

    /// <summary>Removes keys idle for at least <paramref name="horizon"/>, or (with a container id) that container's keys.</summary>
    private static int RemoveWhere<T>(Dictionary<StateKey, T> d, long now, long horizon, string? containerId)
        where T : KeyState
    {
        int removed = 0;
        foreach ((StateKey k, T s) in d)
        {
            if (containerId != null ? s.ContainerId == containerId : now - s.LastSeen >= horizon)
            {
                d.Remove(k);
                removed++;
            }
        }

        return removed;
    }

    private void SetSlot(SequenceKeyState state, int i, SequenceInstance? instance)
    {
        if (state.Pending[i] == null && instance != null)
        {
            Interlocked.Increment(ref _pendingInstances);
        }
        else if (state.Pending[i] != null && instance == null)
        {
            Interlocked.Decrement(ref _pendingInstances);
        }

        state.Pending[i] = instance;
    }

    private void RemoveSequenceKey(StateKey key, SequenceKeyState state)
    {
        for (int i = 0; i < state.Pending.Length; i++)
        {
            SetSlot(state, i, null);
        }

        _sequence.Remove(key);
    }

    /// <summary>At the cap: first evict idle keys, then the least recently seen one (a cap hit). Caller holds the lock.</summary>
    private void MakeRoom<T>(Dictionary<StateKey, T> d, int maxKeys, long now, long horizon)
        where T : KeyState
    {
        if (d.Count < maxKeys)
        {
            return;
        }

        foreach ((StateKey k, T s) in d)
        {
            if (now - s.LastSeen > horizon)
            {
                if (s is SequenceKeyState seq)
                {
                    RemoveSequenceKey(k, seq);
                }
                else
                {
                    d.Remove(k);
                }

                Evictions++;
            }
        }

        if (d.Count < maxKeys)
        {
            return;
        }

        StateKey oldest = default;
        long oldestSeen = long.MaxValue;
        foreach ((StateKey k, T s) in d)
        {
            if (s.LastSeen < oldestSeen)
            {
                (oldest, oldestSeen) = (k, s.LastSeen);
            }
        }

        if (d[oldest] is SequenceKeyState victim)
        {
            RemoveSequenceKey(oldest, victim);
        }
        else
        {
            d.Remove(oldest);
        }

        CapHits++;
    }
}
