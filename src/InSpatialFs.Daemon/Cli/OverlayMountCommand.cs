using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using InSpatialFs.Daemon.Config;
using InSpatialFs.Daemon.Hosting;
using InSpatialFs.Daemon.Runtime;
using InSpatialFs.Interop;

namespace InSpatialFs.Daemon.Cli;

/// <summary>
/// `overlay-mount` (installed as `inspatialfs-overlay`): fuse-overlayfs's command line, so containers/storage (podman,
/// buildah, CRI-O) can use InSpatialFs as its overlay mount_program. `PROG -o lowerdir=L1:L2,upperdir=U,workdir=W TARGET`
/// mounts a container's root; without upperdir it is a read-only view (diff, commit). The instance is named after the
/// container (the directory above TARGET: .../overlay/ID/merged), takes its policy from the system profile
/// (/etc/inspatialfs/overlay.yaml, or $INSPATIALFS_OVERLAY_CONFIG), keeps control files in /run/inspatialfs/ID and
/// state in /var/lib/inspatialfs/ID, and serves in the background: the command returns once the mount is live, as
/// fuse-overlayfs does, and `umount TARGET` ends the instance.
/// </summary>
internal static partial class OverlayMountCommand
{
    public const string ProfileEnvironment = "INSPATIALFS_OVERLAY_CONFIG";
    public const string DefaultProfile = "/etc/inspatialfs/overlay.yaml";

    [GeneratedRegex(@"^(name|mountpoint|mounts|control|state_dir)\s*:", RegexOptions.Multiline)]
    private static partial Regex InstanceKey();

    public static Command Create()
    {
        var options = new Option<string[]>("-o") { Description = "Mount options, comma-separated: lowerdir=L1:L2 (topmost first), upperdir=DIR, workdir=DIR, io_uring (requests over io_uring, as mount --io-uring: needs /sys/module/fuse/parameters/enable_uring Y), no_keeper (serve without the keeper: about 20 ms sooner, but a dead server ends the container's mount); others (volatile, context=...) are accepted and ignored.", AllowMultipleArgumentsPerToken = false };
        var foreground = new Option<bool>("-f", "--foreground") { Description = "Serve in the foreground instead of returning once mounted." };
        var target = new Argument<string>("TARGET") { Description = "Where to mount the merged tree (containers/storage passes .../overlay/ID/merged)." };
        var command = new Command("overlay-mount", "Mount program for container engines (fuse-overlayfs's command line): stacks image layers under a writable layer, served through the secure proxy.")
        {
            options, foreground, target,
        };
        command.SetAction(parse => Run(parse.GetValue(options) ?? [], parse.GetValue(foreground), parse.GetValue(target)!));
        return command;
    }

    private static int Run(string[] optionGroups, bool foreground, string target)
    {
        string? lower = null, upper = null, work = null;
        bool ioUring = false; // requests on io_uring rings cannot be resent, so an io_uring instance is not kept (see mount --io-uring)
        bool noKeeper = false; // the server is this process (one runtime start, about 20 ms sooner); a dead server ends the mount
        foreach (string option in optionGroups.SelectMany(g => g.Split(',', StringSplitOptions.RemoveEmptyEntries)))
        {
            int eq = option.IndexOf('=', StringComparison.Ordinal);
            string key = eq < 0 ? option : option[..eq], value = eq < 0 ? "" : option[(eq + 1)..];
            switch (key)
            {
                case "lowerdir": lower = value; break;
                case "upperdir": upper = value; break;
                case "workdir": work = value; break;
                case "io_uring": ioUring = true; break;
                case "no_keeper": noKeeper = true; break;
                default:
                    if (Environment.GetEnvironmentVariable("INSPATIALFS_DEBUG") != null) Console.Error.WriteLine($"inspatialfs-overlay: ignoring option '{option}'");
                    break;
            }
        }

        if (string.IsNullOrEmpty(lower)) return Usage("-o lowerdir=DIR[:DIR...] is required");
        if ((upper == null) != (work == null)) return Usage("upperdir and workdir go together");
        string mountpoint = Path.GetFullPath(target);
        string id = Path.GetFileName(Path.GetDirectoryName(mountpoint.TrimEnd('/')) ?? "") ?? "";
        // A read-only view of the same layers (podman diff) may run beside the container's own mount.
        string name = upper == null ? "ro-" + id[..Math.Min(id.Length, 61)] : id;
        if (ConfigRules.NameProblem(name) is string problem) return Usage($"cannot name the instance after {mountpoint}: {problem}");

        string stateDir = InstanceConfig.DefaultStateDir(name);
        string configPath = Path.Combine(stateDir, StatePruner.OverlayConfigName);
        // A kept server restarted by its keeper takes over the live mount with the config its predecessor served (a profile
        // changed meanwhile applies to the next container, not to this one in mid-life); rebuilt only if it is gone.
        if (DescriptorStore.HandsOverLiveMount() && File.Exists(configPath) && ReadinessPipe.TakeEarlyDetached())
        {
            return ServeDetached(configPath, mountpoint, stateDir, ioUring, noKeeper);
        }

        string profilePath = Environment.GetEnvironmentVariable(ProfileEnvironment) ?? DefaultProfile;
        string profile = File.Exists(profilePath) ? File.ReadAllText(profilePath) : "";
        if (InstanceKey().Match(profile) is { Success: true } m)
        {
            return Usage($"{profilePath}: '{m.Groups[1].Value}' is chosen per container by the mount program; the profile holds policy only (isolation, paths, resources, rules, ...)");
        }

        string config = Compose(name, mountpoint, stateDir, lower.Split(':', StringSplitOptions.RemoveEmptyEntries), upper, work, profile);
        try
        {
            using SafeFd dir = TrustedPath.OpenDirectory(stateDir, create: true);
            // The handle has its own using: closed even if the stream around it cannot be made (a second close is a no-op).
            using (Microsoft.Win32.SafeHandles.SafeFileHandle handle = TrustedPath.OpenFile(dir, stateDir, StatePruner.OverlayConfigName, LibC.O_WRONLY | LibC.O_CREAT | LibC.O_TRUNC))
            using (var file = new FileStream(handle, FileAccess.Write))
            {
                file.Write(Encoding.UTF8.GetBytes(config));
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"inspatialfs-overlay: cannot write the instance config under {stateDir}: {e.Message}");
            return ExitCodes.RuntimeFailure;
        }

        if (foreground)
        {
            return MountRunner.Run(Request(configPath, ioUring, noKeeper));
        }

        if (ReadinessPipe.TakeEarlyDetached())
        {
            return ServeDetached(configPath, mountpoint, stateDir, ioUring, noKeeper);
        }

        return BackgroundServer.Start("inspatialfs-overlay", [.. MountArguments(configPath, ioUring, noKeeper)], mountpoint, stateDir);
    }

    /// <summary>
    /// native/keeper/early-detach.c forked before the runtime started: this process is already the detached server (its
    /// keeper's, or its own), and its parent returns once it serves.
    /// </summary>
    private static int ServeDetached(string configPath, string mountpoint, string stateDir, bool ioUring, bool noKeeper) =>
        ServerStdio.ServeDetached("inspatialfs-overlay", stateDir, mountpoint, () => MountRunner.Run(Request(configPath, ioUring, noKeeper)));

    /// <summary>
    /// The mount as `inspatialfs mount --config FILE` would make it; a kept server is started with that command line,
    /// since the keeper runs this binary under its own name, not as the mount program.
    /// </summary>
    private static MountRequest Request(string configPath, bool ioUring, bool noKeeper) => new()
    {
        ConfigFile = configPath,
        IoUring = ioUring,
        NoKeeper = noKeeper,
        ServerArguments = MountArguments(configPath, ioUring, noKeeper),
    };

    /// <summary>`mount --config FILE` with the flags the mount program's options stand for.</summary>
    private static string[] MountArguments(string configPath, bool ioUring, bool noKeeper) =>
        ["mount", "--config", configPath, .. ioUring ? ["--io-uring"] : Array.Empty<string>(), .. noKeeper ? ["--no-keeper"] : Array.Empty<string>()];

    /// <summary>The instance config: the per-container part, then the system profile's policy.</summary>
    private static string Compose(string name, string mountpoint, string stateDir, string[] lower, string? upper, string? work, string profile)
    {
        var sb = new StringBuilder();
        sb.Append("# written by inspatialfs-overlay for one container; policy from the system profile below\n");
        sb.Append(CultureInfo.InvariantCulture, $"name: {name}\nmountpoint: {Quote(mountpoint)}\ncontrol: {Quote(InstanceConfig.DefaultControl(name))}\nstate_dir: {Quote(stateDir)}\n");
        sb.Append("mounts:\n  - path: /\n    direct: true\n    overlay:\n      lower: [");
        sb.Append(string.Join(", ", lower.Select(Quote)));
        sb.Append("]\n");
        if (upper != null) sb.Append(CultureInfo.InvariantCulture, $"      upper: {Quote(upper)}\n      work: {Quote(work!)}\n");
        sb.Append(profile);
        if (profile.Length > 0 && !profile.EndsWith('\n')) sb.Append('\n');
        return sb.ToString();
    }

    /// <summary>A YAML double-quoted scalar (engine paths are plain, but nothing in them can break the document).</summary>
    /// <summary>
    /// A YAML double-quoted scalar holding exactly <paramref name="s"/>: a path may hold any byte but NUL, and a line break
    /// (YAML folds them), tab or other control character left as it is would change the path the instance uses.
    /// </summary>
    private static string Quote(string s)
    {
        var sb = new StringBuilder(s.Length + 2).Append('"');
        foreach (char c in s)
        {
            if (c is '"' or '\\') sb.Append('\\').Append(c);
            else if (char.IsControl(c) || c is '\u2028' or '\u2029') sb.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}");
            else sb.Append(c);
        }

        return sb.Append('"').ToString();
    }

    private static int Usage(string message)
    {
        Console.Error.WriteLine("inspatialfs-overlay: " + message);
        return ExitCodes.UsageError;
    }
}
