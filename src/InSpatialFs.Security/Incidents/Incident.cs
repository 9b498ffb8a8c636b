using InSpatialFs.Security.Events;

namespace InSpatialFs.Security.Incidents;

public enum IncidentStatus : byte
{
    Open,
    Acknowledged,
    Resolved,
}

/// <summary>
/// A denial or detection worth an operator's attention, as stored in incidents.jsonl. Repeats of the same
/// (source, process, path) while it is open add to <see cref="Count"/> and <see cref="LastSeen"/>; occurrences the
/// source's rate limit kept from opening incidents of their own are counted in <see cref="Suppressed"/> of the
/// source's latest incident. Mutable fields are changed under the store's lock only.
/// </summary>
public sealed class Incident
{
    public required string Id { get; init; }
    public required DateTimeOffset Time { get; init; }
    /// <summary>The rule name, or the policy reason ("forbidden:/etc/shadow", "privilege:setuid").</summary>
    public required string Source { get; init; }
    public required Severity Severity { get; init; }
    public string? ContainerId { get; init; }
    public int Pid { get; init; }
    public string? ProcessName { get; init; }
    public uint Uid { get; init; }
    /// <summary>The rule's rendered output, or a one-line description of the denial.</summary>
    public string? Output { get; init; }
    public IReadOnlyList<FsEvent> Evidence { get; init; } = [];
    /// <summary>What was done: "deny", "block-process", "suspend", "kill", "none (monitor)", plus refusals.</summary>
    public string Response { get; set; } = "none";
    public IncidentStatus Status { get; set; } = IncidentStatus.Open;
    /// <summary>Occurrences folded into this incident (1 when it opened).</summary>
    public long Count { get; set; } = 1;
    /// <summary>When the latest occurrence was seen.</summary>
    public DateTimeOffset LastSeen { get; set; }
    /// <summary>Occurrences of this source that its rate limit kept from opening incidents, counted here.</summary>
    public long Suppressed { get; set; }
    /// <summary>What repeats are matched on: source, process and path (null: never aggregated).</summary>
    public string? Key { get; init; }
}
