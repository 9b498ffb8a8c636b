namespace InSpatialFs.Security.Incidents;

/// <summary>How incidents stay useful under attack (config <c>incidents:</c>).</summary>
public sealed record IncidentOptions
{
    /// <summary>incidents.rate: new incidents per second each source (rule or policy reason) may open, refilled continuously.</summary>
    public double RatePerSecond { get; init; } = 1;
    /// <summary>incidents.max_burst: the token bucket's size, i.e. how many a source may open at once.</summary>
    public int MaxBurst { get; init; } = 50;
    /// <summary>incidents.rotate_bytes: incidents.jsonl is rotated past this size.</summary>
    public long RotateBytes { get; init; } = 16L << 20;
    /// <summary>incidents.keep: rotated files kept (incidents.jsonl.1 .. .N).</summary>
    public int Keep { get; init; } = 4;
    /// <summary>Incidents held in memory (and listed in the control file); the oldest resolved ones go first.</summary>
    public int MaxInMemory { get; init; } = 10_000;
}
