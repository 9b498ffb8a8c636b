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
    public ResponseConfig Response { get; init; } = new();
    /// <summary>State directory (journal, incidents): `state_dir:`, default /var/lib/inspatialfs/NAME.</summary>
    public required string StateDir { get; init; }
    public ContainerConfig Container { get; init; } = new();
    public RulesConfig Rules { get; init; } = RulesConfig.Empty;
    public HostUsersConfig HostUsers { get; init; } = new();
    public IncidentsConfig Incidents { get; init; } = new();

    public static string DefaultControl(string name) => "/run/inspatialfs/" + name;

    public static string DefaultStateDir(string name) => "/var/lib/inspatialfs/" + name;
}

public enum MountSourceKind
{
    /// <summary>A host directory (`source:`).</summary>
    Host,
    /// <summary>The in-memory VFS (`memory: { size }`).</summary>
    Memory,
}

/// <summary>One `mounts:` entry.</summary>
/// <param name="Path">Namespace path, absolute and normalized.</param>
/// <param name="Source">Host directory for <see cref="MountSourceKind.Host"/>; null for memory.</param>
/// <param name="MemorySize">Byte limit of a memory mount; null for host mounts.</param>
public sealed record MountConfig(string Path, MountSourceKind Kind, string? Source, bool ReadOnly, bool Direct, long? MemorySize);

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
}
