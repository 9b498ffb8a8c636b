using InSpatialFs.Interop;
using InSpatialFs.Security.Events;

namespace InSpatialFs.Security;

/// <summary>Counters for status and metrics (a consistent-enough snapshot; each value is read atomically).</summary>
public sealed record SecurityCounters(
    long Decisions,
    long Denials,
    long Throttled,
    long EventsRecorded,
    long EventsDropped,
    long EventsProcessed,
    long Incidents,
    long DenialIncidentsSuppressed,
    bool Suspended,
    int BlockedProcesses,
    long OpenFiles,
    IReadOnlyDictionary<string, long> PerOp)
{
    /// <summary>Occurrences folded into an open incident of the same (source, process, path).</summary>
    public long IncidentRepeats { get; init; }
    /// <summary>Occurrences a source's incident rate limit kept from opening incidents.</summary>
    public long IncidentsSuppressed { get; init; }
    public int IncidentsOpen { get; init; }
    /// <summary>Critical events (never dropped) whose request waited for room in the event queue.</summary>
    public long EventsWaited { get; init; }
    /// <summary>Operations of host processes refused by host_users.</summary>
    public long HostDenials { get; init; }
}

/// <summary>What the decision step counts: decisions per op, denials, host_users refusals. Lock-free, any thread.</summary>
internal sealed class DecisionCounters
{
    private readonly long[] _perOp = new long[FsOpNames.Count];
    private long _decisions, _denials, _hostDenials;

    public long Decisions => Volatile.Read(ref _decisions);
    public long Denials => Volatile.Read(ref _denials);
    public long HostDenials => Volatile.Read(ref _hostDenials);

    public void Decided(FsOp op)
    {
        Interlocked.Increment(ref _decisions);
        Interlocked.Increment(ref _perOp[(int)op]);
    }

    public void Denied() => Interlocked.Increment(ref _denials);

    public void HostDenied() => Interlocked.Increment(ref _hostDenials);

    /// <summary>Decisions per op name, ops never decided left out.</summary>
    public Dictionary<string, long> PerOp()
    {
        var perOp = new Dictionary<string, long>(FsOpNames.Count);
        for (int i = 0; i < _perOp.Length; i++)
        {
            long n = Volatile.Read(ref _perOp[i]);
            if (n != 0) perOp[((FsOp)i).Name()] = n;
        }

        return perOp;
    }
}
