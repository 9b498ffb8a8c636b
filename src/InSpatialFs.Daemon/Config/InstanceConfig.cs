using InSpatialFs.Security;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Identity;

namespace InSpatialFs.Daemon.Config;

/// <summary>One instance: what to mount where, under which policy. Built by <see cref="ConfigLoader"/> (YAML) or
/// <see cref="QuickConfigBuilder"/> (command-line flags); fully validated, immutable.</summary>
public sealed record InstanceConfig
{
    /// <summary>Config file it came from, or "command line".</summary>
    public required string Origin { get; init; }
    /// <summary>Instance name: `name:`, or the mountpoint's base name.</summary>
    public required string Name { get; init; }
    public required string Mountpoint { get; init; }
    /// <summary>Control-file directory: `control:`, default /run/inspatialfs/NAME.</summary>
    public required string Control { get; init; }
    public required IReadOnlyList<MountConfig> Mounts { get; init; }
    public IsolationLevel Isolation { get; init; } = IsolationLevel.Standard;
    public PathsConfig Paths { get; init; } = PathsConfig.Empty;
    public ResourcesConfig Resources { get; init; } = new();
    public ExecConfig Exec { get; init; } = new();
    public ControlsConfig Controls { get; init; } = new();
    public ResponseConfig Response { get; init; } = new();
    /// <summary>State directory (journal, incidents): `state_dir:`, default /var/lib/inspatialfs/NAME.</summary>
    public required string StateDir { get; init; }
    public ContainerConfig Container { get; init; } = new();
    public RulesConfig Rules { get; init; } = RulesConfig.Empty;
    /// <summary>`outputs:` — alert channels (Falco-shaped JSON to stdout, file, syslog, HTTP, OTLP).</summary>
    public OutputsConfig Outputs { get; init; } = OutputsConfig.None;
    public HostUsersConfig HostUsers { get; init; } = new();
    public IncidentsConfig Incidents { get; init; } = new();

    public EventsConfig Events { get; init; } = new();
    /// <summary>`metrics_listen: ADDRESS:PORT` — serve the metrics over HTTP at /metrics there; null: only the control file.</summary>
    public string? MetricsListen { get; init; }
    /// <summary>`io_uring: true` — the container mount takes its requests over io_uring, as `mount --io-uring`.</summary>
    public bool IoUring { get; init; }

    /// <summary>Base of the default state directories (systemd's StateDirectory=).</summary>
    public const string StateRoot = "/var/lib/inspatialfs";

    /// <summary>Base of the default control directories (systemd's RuntimeDirectory=).</summary>
    public const string ControlRoot = "/run/inspatialfs";

    public static string DefaultControl(string name) => ControlRoot + "/" + name;

    public static string DefaultStateDir(string name) => StateRoot + "/" + name;
}

public enum MountSourceKind
{
    /// <summary>A host directory (`source:`).</summary>
    Host,
    /// <summary>The in-memory VFS (`memory: { size }`).</summary>
    Memory,
    /// <summary>Layers stacked as overlayfs does (`overlay: { lower, upper, work }`).</summary>
    Overlay,
}

/// <summary>One `mounts:` entry.</summary>
/// <param name="Path">Namespace path, absolute and normalized.</param>
/// <param name="Source">Host directory for <see cref="MountSourceKind.Host"/>; null for memory.</param>
/// <param name="MemorySize">Byte limit of a memory mount; null for host mounts.</param>
/// <param name="Overlay">The layers of an overlay mount; null for the other kinds.</param>
public sealed record MountConfig(string Path, MountSourceKind Kind, string? Source, bool ReadOnly, bool Direct, long? MemorySize,
    InSpatialFs.Storage.Overlay.OverlayLayers? Overlay = null)
{
    /// <summary>Every host directory the mount serves (its source, or an overlay's layers and work directory).</summary>
    public IEnumerable<string> HostDirectories => Overlay is { } o
        ? [.. o.Lower, .. (o.Upper is null ? Array.Empty<string>() : [o.Upper]), .. (o.Work is null ? Array.Empty<string>() : [o.Work])]
        : Source is null ? [] : [Source];
}

/// <summary>`paths:` — glob lists of the path classes.</summary>
public sealed record PathsConfig(IReadOnlyList<string> Forbidden, IReadOnlyList<string> ReadOnly, IReadOnlyList<string> Allowed)
{
    public static readonly PathsConfig Empty = new([], [], []);
}

/// <summary>`resources:` — null means "no limit configured".</summary>
public sealed record ResourcesConfig
{
    public long? Memory { get; init; }
    public long? Disk { get; init; }
    public long? Inodes { get; init; }
    public long? OpenFiles { get; init; }
    public long? OpsPerSecond { get; init; }
    public long? BytesPerSecond { get; init; }
}

/// <summary>What happens when a file created or modified at run time is executed.</summary>
public enum RuntimeWrittenExec
{
    /// <summary>Not set: the isolation level decides (maximum denies).</summary>
    Default,
    Allow,
    Alert,
    Deny,
}

/// <summary>`exec:`.</summary>
public sealed record ExecConfig
{
    public RuntimeWrittenExec RuntimeWritten { get; init; } = RuntimeWrittenExec.Default;
}

/// <summary>
/// `controls:` — the privilege controls of the isolation levels, one key each; null leaves the level's default. A value
/// looser than the level's default is an explicit relaxation, reported as a warning at start and in the control files,
/// exactly like the matching --relax flag (which is applied after these).
/// </summary>
public sealed record ControlsConfig
{
    public bool? RefuseSetuid { get; init; }
    public bool? RefuseDevices { get; init; }
    public bool? RefuseFifosSockets { get; init; }
    public bool? RefuseSecurityXattrs { get; init; }
    public bool? RefuseAllXattrWrites { get; init; }
    public bool? RestrictHardlinks { get; init; }
    public bool? RestrictSymlinks { get; init; }
    public bool? AllowDirect { get; init; }
    /// <summary>controls.exec_runtime_written (the same setting as exec.runtime_written; a file gives one of them).</summary>
    public RuntimeWrittenExec? ExecRuntimeWritten { get; init; }
}

/// <summary>`response:` — <see cref="SuspendOn"/> null means: never suspend automatically.</summary>
public sealed record ResponseConfig
{
    public Severity? SuspendOn { get; init; }
}

/// <summary>`container:` — what proves a process is the container: its cgroup, and the init the engine started.</summary>
public sealed record ContainerConfig
{
    public string? Cgroup { get; init; }
    /// <summary>`init_pid`: the container's init (its pid namespace and descendants are the container).</summary>
    public int? InitPid { get; init; }
}

/// <summary>`host_users:` — what host processes (not container members) may do: root (the operator) and everyone else.</summary>
public sealed record HostUsersConfig
{
    public HostAccess Root { get; init; } = HostAccess.Full;
    public HostAccess Others { get; init; } = HostAccess.NoQuotaWrites;
}

/// <summary>
/// `events:` — the event journal STATE_DIR/events.jsonl: whether it is written (alert outputs, the events control file
/// and incidents do not depend on it), its rotation size and how many rotated files are kept; null takes the default.
/// </summary>
public sealed record EventsConfig
{
    public bool Journal { get; init; } = true;
    public long? RotateBytes { get; init; }
    public int? Keep { get; init; }
}

/// <summary>`incidents:` — per-source rate limit and rotation of incidents.jsonl; null takes the default.</summary>
public sealed record IncidentsConfig
{
    public double? Rate { get; init; }
    public int? MaxBurst { get; init; }
    public long? RotateBytes { get; init; }
    public int? Keep { get; init; }
}

/// <summary>`rules:` — custom rule files (absolute; relative names are taken from the config file's directory).</summary>
public sealed record RulesConfig(IReadOnlyList<string> Files)
{
    public static readonly RulesConfig Empty = new([]);

    /// <summary>`builtins: false` loads only `files` (Falco's -r): for Falco rule files on their own.</summary>
    public bool BuiltIns { get; init; } = true;
}
