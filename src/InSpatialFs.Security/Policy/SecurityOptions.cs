using InSpatialFs.Security.Events;

namespace InSpatialFs.Security.Policy;

/// <summary>What the dynamic-code control does with exec of files written or modified at run time.</summary>
public enum RuntimeWrittenExec : byte
{
    Allow,
    Deny,
    /// <summary>Allow, and raise an incident for each exec of a runtime-written file.</summary>
    Alert,
}

/// <summary>Resource limits of one instance (config key <c>resources:</c>); null means "not limited".</summary>
public sealed record ResourceLimits
{
    /// <summary>Cap of the in-memory VFS in bytes (ENOSPC past it).</summary>
    public long? MemoryBytes { get; init; }
    /// <summary>Disk bytes quota per mount (EDQUOT past it).</summary>
    public long? DiskBytes { get; init; }
    /// <summary>Inode quota per mount (EDQUOT past it).</summary>
    public long? Inodes { get; init; }
    /// <summary>Open files of the container (EMFILE past it).</summary>
    public int? OpenFiles { get; init; }
    /// <summary>Operations per second of the container (replies are delayed past it).</summary>
    public double? OpsPerSecond { get; init; }
    /// <summary>Read/write bytes per second of the container (replies are delayed past it).</summary>
    public double? BytesPerSecond { get; init; }
    /// <summary>CPU limit for the OCI fragment, in CPUs (e.g. 1.5).</summary>
    public double? Cpus { get; init; }
    /// <summary>pids limit for the OCI fragment.</summary>
    public long? Pids { get; init; }
}

/// <summary>
/// The security profile of an instance as configured (YAML keys in comments). Null controls take the
/// isolation level's default; a setting stricter than the default tightens silently, a looser one is an
/// explicit relaxation that <see cref="EffectiveControls.Resolve"/> reports in its warnings.
/// </summary>
public sealed record SecurityOptions
{
    /// <summary>isolation:</summary>
    public IsolationLevel Level { get; init; } = IsolationLevel.Standard;
    /// <summary>paths.forbidden</summary>
    public IReadOnlyList<string> Forbidden { get; init; } = [];
    /// <summary>paths.readonly</summary>
    public IReadOnlyList<string> ReadOnly { get; init; } = [];
    /// <summary>paths.allowed</summary>
    public IReadOnlyList<string> Allowed { get; init; } = [];

    public bool? RefuseSetuid { get; init; }
    public bool? RefuseDevices { get; init; }
    public bool? RefuseFifosSockets { get; init; }
    public bool? RefuseSecurityXattrs { get; init; }
    /// <summary>Refuse every xattr write (user.* too); maximum's default.</summary>
    public bool? RefuseAllXattrWrites { get; init; }
    public bool? RestrictHardlinks { get; init; }
    public bool? RestrictSymlinks { get; init; }
    /// <summary>exec.runtime_written</summary>
    public RuntimeWrittenExec? RuntimeWrittenExec { get; init; }
    /// <summary>Whether DirectFS (kernel passthrough) may be granted at all.</summary>
    public bool? AllowDirect { get; init; }

    /// <summary>resources:</summary>
    public ResourceLimits Resources { get; init; } = new();
    /// <summary>response.suspend_on: severity at or above which the container is suspended; null = the level's default.</summary>
    public Severity? SuspendOn { get; init; }
    /// <summary>Explicitly switch automatic suspension off (a relaxation under maximum).</summary>
    public bool NeverSuspend { get; init; }

    /// <summary>state_dir: incidents.jsonl and events.jsonl live here; null keeps them in memory only.</summary>
    public string? StateDir { get; init; }
    /// <summary>container.cgroup: a caller in this cgroup (or below) is a container member.</summary>
    public string? ContainerCgroup { get; init; }
    /// <summary>The instance name, used as container.id.</summary>
    public string ContainerName { get; init; } = "container";
    /// <summary>The mountpoint of the container's root: a caller whose /proc/PID/root is here or below is a member.</summary>
    public string? Mountpoint { get; init; }

    /// <summary>Capacity of the event queue between Record and the analyser (drops past it are counted).</summary>
    public int EventQueueCapacity { get; init; } = 65536;
    public const long DefaultJournalRotateBytes = 64L << 20;
    public const int DefaultJournalKeep = 4;

    /// <summary>events.jsonl is rotated past this size.</summary>
    public long JournalRotateBytes { get; init; } = DefaultJournalRotateBytes;
    /// <summary>Rotated journals kept (events.jsonl.1 .. .N).</summary>
    public int JournalKeep { get; init; } = DefaultJournalKeep;
    /// <summary>Whether to write events.jsonl at all.</summary>
    public bool JournalEvents { get; init; } = true;

    /// <summary>container.init_pid and host_users: who is the container, and what host processes may do.</summary>
    public Identity.MembershipOptions Membership { get; init; } = new();
    /// <summary>incidents: aggregation rate limit and rotation of incidents.jsonl.</summary>
    public Incidents.IncidentOptions Incidents { get; init; } = new();
}
