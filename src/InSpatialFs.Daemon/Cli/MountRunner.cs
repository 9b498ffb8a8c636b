using InSpatialFs.Daemon.Config;
using InSpatialFs.Daemon.Hosting;
using InSpatialFs.Daemon.Runtime;
using InSpatialFs.Interop;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.Daemon.Cli;

/// <summary>`mount`: turns the request into a validated config, starts the instance, serves until it ends.</summary>
internal static class MountRunner
{
    public static int Run(MountRequest request)
    {
        InstanceConfig config;
        string keeper = "";
        if (DescriptorStore.HandsOverLiveMount())
        {
            ConfigRules.LiveMountpoints = [.. File.ReadLines("/proc/self/mountinfo").Select(MountInfoEntry.Parse)
                .Where(m => m is { } e && (e.Source.StartsWith("inspatialfs:", StringComparison.Ordinal) || e.Source.StartsWith("inspatialfs-control:", StringComparison.Ordinal))).Select(m => m!.Value.MountPoint)];
        }

        try
        {
            config = BuildConfig(request = MountOptionString.Apply(request, request.Options));
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine("inspatialfs: " + e.Message);
            Console.Error.WriteLine("nothing was mounted.");
            return ExitCodes.UsageError;
        }

        if (!DaemonLogging.TryParseLevel(request.LogLevel, out LogLevel level))
        {
            Console.Error.WriteLine($"inspatialfs: --log-level '{request.LogLevel}' is not one of trace, debug, info, warning, error, critical");
            return ExitCodes.UsageError;
        }

        // Detached before the runtime started (native/keeper/early-keeper.c): this process is the server of `mount
        // --background`, started by its keeper, whose caller waits for the keeper's ready byte. Taken (the variable
        // removed) whatever comes next, so nothing this process starts inherits it.
        bool detached = ReadinessPipe.TakeEarlyDetached();

        // io_uring: requests a dead server held on its rings cannot be resent to a new one, so no keeper (Instance.Restart.cs).
        bool kept = !request.NoKeeper && !request.IoUring && !config.IoUring && KeeperLaunch.Unkept(config, out keeper, detached: request.Background) is null;
        if (request.Background && !detached)
        {
            // The same command line without --background, in its own session (under the keeper when it gets one); it
            // re-reads exactly what was checked here.
            string[] args = [.. Environment.GetCommandLineArgs().Skip(1).Where(a => a is not ("--background" or "-b"))];
            return BackgroundServer.Start("inspatialfs", args, config.Mountpoint, config.StateDir, kept ? keeper : null);
        }

        // A detached process serves itself: under its keeper (which keeps it), or, where early-keeper.c found no keeper
        // to exec, alone (becoming one here would run the server with --background again).
        return detached
            ? ServerStdio.ServeDetached("inspatialfs", config.StateDir, config.Mountpoint, () => Serve(request, config, level, kept: false, keeper))
            : Serve(request, config, level, kept, keeper);
    }

    /// <summary>Becomes the keeper when <paramref name="kept"/>, else starts the instance and serves until it ends.</summary>
    private static int Serve(MountRequest request, InstanceConfig config, LogLevel level, bool kept, string keeper)
    {
        if (kept)
        {
            // Returns only when the keeper could not be started: then serve as before, without restarts.
            Errno failed = KeeperLaunch.Become(keeper, request.ServerArguments);
            Console.Error.WriteLine($"inspatialfs: cannot start {keeper} ({failed}); serving without it: the mount ends with this server");
        }

        using ILoggerFactory logs = DaemonLogging.Create(level);
        ILogger log = logs.CreateLogger("inspatialfs");
        Instance instance;
        try
        {
#pragma warning disable CA2000 // disposed by the using (instance) below; a failed start throws and owns nothing
            instance = Instance.Start(config, new InstanceOptions
            {
                ReaderThreads = request.Readers,
                Passthrough = !request.NoPassthrough,
                PinReaders = !request.NoPinReaders,
                IoUring = request.IoUring || config.IoUring,
                DirectFallback = request.DirectFallback == "copy" ? InSpatialFs.Proxy.Direct.DirectMode.Proxied : InSpatialFs.Proxy.Direct.DirectMode.Spliced,
                Control = !request.NoControl,
                AllowRelax = request.AllowRelax,
                ExtraRuleFiles = request.RuleFiles,
                Relax = request.Relax,
                CacheTimeout = request.CacheTimeout is int seconds ? TimeSpan.FromSeconds(seconds) : null,
                ReloadConfig = request.ConfigFile != null ? () => BuildConfig(request) : null,
            }, logs);
#pragma warning restore CA2000
        }
        catch (InstanceStartException e)
        {
            log.LogCritical("{Message}", e.Message);
            if (e.InnerException is { } cause)
            {
                log.LogDebug(cause, "where the start failed"); // --log-level debug: the stack, for a bug report
            }

            return ExitCodes.RuntimeFailure;
        }

        using (instance)
        {
            return instance.WaitForExit();
        }
    }

    /// <summary>A config file, or the quick-form flags; mount-shaping flags cannot be mixed with --config.</summary>
    internal static InstanceConfig BuildConfig(MountRequest r)
    {
        if (r.ConfigFile != null)
        {
            string[] conflicting = [.. new (bool Given, string Flag)[]
            {
                (r.Memory, "--memory"), (r.MemorySize != null, "--memory-size"), (r.Source != null, "--source"), (r.Direct, "--direct"),
                (r.ReadOnlySource, "--read-only"), (r.MemoryAt.Count > 0, "--memory-at"), (r.Forbid.Count > 0, "--forbid"),
                (r.ReadOnly.Count > 0, "--readonly"), (r.Allow.Count > 0, "--allow"), (r.Resources.Count > 0, "--resource"),
                (r.ExecRuntimeWritten != null, "--exec-runtime-written"), (r.SuspendOn != null, "--suspend-on"),
            }.Where(f => f.Given).Select(f => f.Flag)];
            if (conflicting.Length > 0)
            {
                throw new ConfigException(QuickConfigBuilder.Origin, 0, 0, $"{string.Join(", ", conflicting)} cannot be combined with --config (put them in the file)");
            }

            // The overrides are read in place of the file's values, so they pass exactly the file's checks, and an
            // overridden name moves the default control and state directories with it.
            return ConfigLoader.LoadFile(r.ConfigFile, new ConfigOverrides
            {
                Name = r.Name,
                Mountpoint = r.MountPoint != null ? Path.GetFullPath(r.MountPoint) : null,
                Control = r.Control,
                StateDir = r.StateDir,
                Isolation = r.Isolation,
            });
        }

        if (r.MountPoint == null)
        {
            throw new ConfigException(QuickConfigBuilder.Origin, 0, 0, "MOUNTPOINT is missing (or give --config FILE)");
        }

        return WithPolicyFlags(r, QuickConfigBuilder.Build(new QuickOptions
        {
            Mountpoint = r.MountPoint,
            Source = r.Source,
            Direct = r.Direct,
            SourceReadOnly = r.ReadOnlySource,
            Memory = r.Memory,
            MemorySize = r.MemorySize,
            MemoryAt = r.MemoryAt,
            Name = r.Name,
            Control = r.Control,
            StateDir = r.StateDir,
            Isolation = r.Isolation,
            Forbid = r.Forbid,
            ReadOnlyPaths = r.ReadOnly,
            Allow = r.Allow,
        }));
    }

    /// <summary>The flag twins of resources:, exec: and response: (quick form only).</summary>
    private static InstanceConfig WithPolicyFlags(MountRequest r, InstanceConfig config)
    {
        ResourcesConfig resources = config.Resources;
        foreach (string item in r.Resources)
        {
            int eq = item.IndexOf('=', StringComparison.Ordinal);
            string key = eq < 0 ? item : item[..eq];
            string value = eq < 0 ? "" : item[(eq + 1)..];
            long number = key is "memory" or "disk" or "bytes_per_second"
                ? SizeParser.TryParse(value, out long bytes) ? bytes : -1
                : long.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long n) ? n : -1;
            if (number <= 0)
            {
                throw new ConfigException(QuickConfigBuilder.Origin, 0, 0, $"--resource {item}: expected KEY=VALUE with a positive value");
            }

            resources = key switch
            {
                "memory" => resources with { Memory = number },
                "disk" => resources with { Disk = number },
                "inodes" => resources with { Inodes = number },
                "open_files" => resources with { OpenFiles = number },
                "ops_per_second" => resources with { OpsPerSecond = number },
                "bytes_per_second" => resources with { BytesPerSecond = number },
                _ => throw new ConfigException(QuickConfigBuilder.Origin, 0, 0,
                    $"--resource {item}: unknown key '{key}' (memory, disk, inodes, open_files, ops_per_second, bytes_per_second)"),
            };
        }

        return config with
        {
            Resources = resources,
            Exec = r.ExecRuntimeWritten switch
            {
                "deny" => new ExecConfig { RuntimeWritten = Config.RuntimeWrittenExec.Deny },
                "allow" => new ExecConfig { RuntimeWritten = Config.RuntimeWrittenExec.Allow },
                "alert" => new ExecConfig { RuntimeWritten = Config.RuntimeWrittenExec.Alert },
                _ => config.Exec,
            },
            Response = r.SuspendOn != null ? new ResponseConfig { SuspendOn = Security.Incidents.IncidentStore.ParseSeverity(r.SuspendOn) } : config.Response,
        };
    }
}
