using InSpatialFs.Security.Events;
using InSpatialFs.Storage.Mounts;

namespace InSpatialFs.Daemon.Config;

/// <summary>The quick form's flags, as the CLI parsed them:
/// `mount --source HOSTDIR [--direct] [--source-readonly] [--memory-at /tmp:64MiB]... MOUNTPOINT` or
/// `mount --memory [--memory-size 256MiB] MOUNTPOINT`, plus the policy twins of the config keys.</summary>
public sealed record QuickOptions
{
    public required string Mountpoint { get; init; }
    /// <summary>--source: host directory served at "/".</summary>
    public string? Source { get; init; }
    /// <summary>--direct: the source mount is DirectFS.</summary>
    public bool Direct { get; init; }
    /// <summary>--source-readonly: the source mount refuses writes.</summary>
    public bool SourceReadOnly { get; init; }
    /// <summary>--memory: "/" is an in-memory filesystem instead of a host source.</summary>
    public bool Memory { get; init; }
    /// <summary>--memory-size for --memory (default <see cref="QuickConfigBuilder.DefaultMemorySize"/>).</summary>
    public string? MemorySize { get; init; }
    /// <summary>--memory-at PATH:SIZE, repeatable: extra memory mounts.</summary>
    public IReadOnlyList<string> MemoryAt { get; init; } = [];
    public string? Name { get; init; }
    public string? Control { get; init; }
    public string? StateDir { get; init; }
    /// <summary>--isolation standard|enhanced|maximum.</summary>
    public string? Isolation { get; init; }
    public IReadOnlyList<string> Forbid { get; init; } = [];
    public IReadOnlyList<string> ReadOnlyPaths { get; init; } = [];
    public IReadOnlyList<string> Allow { get; init; } = [];
}

/// <summary>Turns quick-form flags into the same validated <see cref="InstanceConfig"/> a config file gives.
/// Errors are <see cref="ConfigException"/>s with origin "command line" and no position.</summary>
public static class QuickConfigBuilder
{
    public const string Origin = "command line";
    public const string DefaultMemorySize = "1GiB";

    public static InstanceConfig Build(QuickOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        string mountpoint = HostPath(options.Mountpoint, "MOUNTPOINT");
        if (options.Source != null == options.Memory) throw Fail("give exactly one of --source HOSTDIR or --memory");
        if (options.Direct && options.Source == null) throw Fail("--direct needs --source");
        if (options.SourceReadOnly && options.Source == null) throw Fail("--read-only (-o ro) needs --source: a memory mount starts empty, so a read-only one would stay empty");

        var mounts = new List<MountConfig>();
        if (options.Source != null)
        {
            string source = HostPath(options.Source, "--source");
            if (!Directory.Exists(source)) throw Fail($"--source: directory {source} does not exist");
            mounts.Add(new MountConfig("/", MountSourceKind.Host, source, options.SourceReadOnly, options.Direct, null));
        }
        else
        {
            mounts.Add(new MountConfig("/", MountSourceKind.Memory, null, false, false, Size(options.MemorySize ?? DefaultMemorySize, "--memory-size")));
        }
        foreach (string spec in options.MemoryAt)
        {
            int colon = spec.LastIndexOf(':');
            if (colon <= 0) throw Fail($"--memory-at '{spec}' must be PATH:SIZE, e.g. /tmp:64MiB");
            string path = spec[..colon];
            string? problem = MountTable.ValidatePath(path);
            if (problem != null) throw Fail($"--memory-at: mount path '{path}' {problem}");
            if (mounts.Any(m => m.Path == path)) throw Fail($"--memory-at: mount path '{path}' is given twice");
            mounts.Add(new MountConfig(path, MountSourceKind.Memory, null, false, false, Size(spec[(colon + 1)..], "--memory-at")));
        }

        string name = options.Name ?? (mountpoint == "/" ? throw Fail("--name is required when the mountpoint is /") : mountpoint[(mountpoint.LastIndexOf('/') + 1)..]);
        if (ConfigRules.NameProblem(name) is { } nameProblem)
        {
            throw Fail(options.Name != null ? "--name: " + nameProblem : $"MOUNTPOINT: its base name is used as the instance name, but {nameProblem}; give --name");
        }

        string control = options.Control != null ? HostPath(options.Control, "--control") : InstanceConfig.DefaultControl(name);
        string stateDir = options.StateDir != null ? HostPath(options.StateDir, "--state-dir") : InstanceConfig.DefaultStateDir(name);
        if (ConfigRules.FindConflict(mountpoint, control, stateDir, mounts) is { } conflict)
        {
            string flag = conflict.Field switch
            {
                LayoutField.Source => "--source",
                LayoutField.Control => "--control",
                LayoutField.StateDir => "--state-dir",
                _ => "MOUNTPOINT",
            };
            throw Fail($"{flag}: {conflict.Reason}");
        }

        return new InstanceConfig
        {
            Origin = Origin,
            Name = name,
            Mountpoint = mountpoint,
            Control = control,
            StateDir = stateDir,
            Mounts = mounts,
            Isolation = options.Isolation switch
            {
                null or "standard" => IsolationLevel.Standard,
                "enhanced" => IsolationLevel.Enhanced,
                "maximum" => IsolationLevel.Maximum,
                var v => throw Fail($"--isolation: '{v}' is not one of standard, enhanced, maximum"),
            },
            Paths = new PathsConfig(Patterns(options.Forbid, "--forbid"), Patterns(options.ReadOnlyPaths, "--readonly"), Patterns(options.Allow, "--allow")),
        };
    }

    private static IReadOnlyList<string> Patterns(IReadOnlyList<string> list, string flag)
    {
        foreach (string p in list)
        {
            if (!p.StartsWith('/')) throw Fail($"{flag}: pattern '{p}' must be an absolute namespace path");
            if (p.Split('/').Any(part => part is "." or "..")) throw Fail($"{flag}: pattern '{p}' must be normalized");
        }
        return [.. list];
    }

    private static string HostPath(string? path, string flag)
    {
        string? problem = MountTable.ValidatePath(path);
        return problem == null ? path! : throw Fail($"{flag} '{path}' {problem}");
    }

    private static long Size(string text, string flag)
        => SizeParser.TryParse(text, out long n) && n > 0 ? n : throw Fail($"{flag}: '{text}' is not {SizeParser.Help}");

    private static ConfigException Fail(string reason) => new(Origin, 0, 0, reason);
}
