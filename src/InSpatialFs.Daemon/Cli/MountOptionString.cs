using InSpatialFs.Daemon.Config;

namespace InSpatialFs.Daemon.Cli;

/// <summary>
/// `-o a,b=c`: the mount-option form of the `mount` flags, as mount(8) passes them from `-o` or an fstab line to
/// mount.fuse.inspatialfs. Each option is the twin of one flag. The generic options mount(8) and fstab add for every
/// filesystem (defaults, nofail, _netdev, x-systemd.*, ...) are accepted and have no effect; anything else is refused,
/// so a typo in an fstab line is an error at mount time rather than a policy silently not applied.
/// </summary>
internal static class MountOptionString
{
    /// <summary>Options that only mount(8), systemd or fstab act on; for a FUSE filesystem the kernel decides the rest.</summary>
    private static readonly HashSet<string> Generic = new(StringComparer.Ordinal)
    {
        "rw", "defaults", "auto", "noauto", "nofail", "_netdev", "user", "users", "nouser", "owner", "group",
        "dev", "nodev", "suid", "nosuid", "exec", "noexec", "async", "atime", "noatime", "relatime", "strictatime",
        "nodiratime", "diratime", "lazytime", "nolazytime", "silent", "loud",
    };

    public static readonly string Help =
        "Mount options, comma-separated (mount(8) and fstab form): config=FILE, source=DIR, memory, memory_size=SIZE, direct, ro, " +
        "isolation=LEVEL, name=NAME, state_dir=DIR, control=DIR, no_control, no_keeper, io_uring, rules=FILE, log_level=LEVEL, " +
        "memory_at=PATH:SIZE, forbid=PATTERN, readonly=PATTERN, allow=PATTERN, resource=KEY=VALUE, exec_runtime_written=allow|alert|deny, " +
        "suspend_on=SEVERITY (memory_at, forbid, readonly, allow and resource repeatable, as their flags; a pattern cannot hold a comma); generic ones " +
        "(defaults, nofail, _netdev, noauto, x-*, comment=...) are accepted without effect; others are refused.";

    public static MountRequest Apply(MountRequest request, IEnumerable<string> groups)
    {
        MountRequest r = request;
        foreach (string option in groups.SelectMany(g => g.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)))
        {
            int eq = option.IndexOf('=', StringComparison.Ordinal);
            string key = eq < 0 ? option : option[..eq];
            string? value = eq < 0 ? null : option[(eq + 1)..];
            if (Generic.Contains(key) || key.StartsWith("x-", StringComparison.Ordinal) || key == "comment") continue;
            r = key switch
            {
                "config" => r with { ConfigFile = Need(option, value) },
                "source" => r with { Source = Need(option, value) },
                "memory" => r with { Memory = Flag(option, value) },
                "memory_size" => r with { MemorySize = Need(option, value) },
                "direct" => r with { Direct = Flag(option, value) },
                "ro" => r with { ReadOnlySource = Flag(option, value) },
                "isolation" => r with { Isolation = Level(option, Need(option, value)) },
                "name" => r with { Name = Need(option, value) },
                "state_dir" => r with { StateDir = Need(option, value) },
                "control" => r with { Control = Need(option, value) },
                "no_control" => r with { NoControl = Flag(option, value) },
                "no_keeper" => r with { NoKeeper = Flag(option, value) },
                "io_uring" => r with { IoUring = Flag(option, value) },
                "rules" => r with { RuleFiles = [.. r.RuleFiles, Need(option, value)] },
                "log_level" => r with { LogLevel = Need(option, value) },
                "memory_at" => r with { MemoryAt = [.. r.MemoryAt, Need(option, value)] },
                "forbid" => r with { Forbid = [.. r.Forbid, Need(option, value)] },
                "readonly" => r with { ReadOnly = [.. r.ReadOnly, Need(option, value)] },
                "allow" => r with { Allow = [.. r.Allow, Need(option, value)] },
                "resource" => r with { Resources = [.. r.Resources, Need(option, value)] },
                "exec_runtime_written" => r with { ExecRuntimeWritten = Choice(option, Need(option, value), "allow", "alert", "deny") },
                "suspend_on" => r with { SuspendOn = Choice(option, Need(option, value), "info", "low", "medium", "high", "critical") },
                _ => throw Refused($"-o {option}: unknown option '{key}' ({Help})"),
            };
        }

        return r;
    }

    private static string Need(string option, string? value) =>
        string.IsNullOrEmpty(value) ? throw Refused($"-o {option}: needs a value ({option}=...)") : value;

    private static bool Flag(string option, string? value) =>
        value == null ? true : throw Refused($"-o {option}: takes no value");

    private static string Choice(string option, string value, params string[] choices) =>
        choices.Contains(value) ? value : throw Refused($"-o {option}: one of {string.Join(", ", choices)}");

    private static string Level(string option, string level) =>
        level is "standard" or "enhanced" or "maximum" ? level : throw Refused($"-o {option}: the level is one of standard, enhanced, maximum");

    private static ConfigException Refused(string message) => new(QuickConfigBuilder.Origin, 0, 0, message);
}
