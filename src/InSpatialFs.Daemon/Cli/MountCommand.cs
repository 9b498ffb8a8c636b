using System.CommandLine;

namespace InSpatialFs.Daemon.Cli;

/// <summary>What the operator asked for on the `mount` command line (a config file, quick-form flags, or both).</summary>
internal sealed record MountRequest
{
    public string? ConfigFile { get; init; }
    public string? MountPoint { get; init; }
    public bool Memory { get; init; }
    public string? MemorySize { get; init; }
    public string? Source { get; init; }
    public bool Direct { get; init; }
    public bool ReadOnlySource { get; init; }
    public IReadOnlyList<string> MemoryAt { get; init; } = [];
    public string? Isolation { get; init; }
    public IReadOnlyList<string> Forbid { get; init; } = [];
    public IReadOnlyList<string> ReadOnly { get; init; } = [];
    public IReadOnlyList<string> Allow { get; init; } = [];
    public string? StateDir { get; init; }
    public string? Control { get; init; }
    public bool NoControl { get; init; }
    public bool NoKeeper { get; init; }
    public string? Name { get; init; }
    public IReadOnlyList<string> RuleFiles { get; init; } = [];
    public string LogLevel { get; init; } = "info";
    public int Readers { get; init; }
    public bool NoPassthrough { get; init; }
    public bool NoPinReaders { get; init; }
    public bool IoUring { get; init; }
    public string? DirectFallback { get; init; }
    /// <summary>--cache-timeout: seconds the kernel may keep answers of read-only nodes (null: the proxy's default, an hour).</summary>
    public int? CacheTimeout { get; init; }
    public bool AllowRelax { get; init; }
    public IReadOnlyList<string> Relax { get; init; } = [];
    public IReadOnlyList<string> Resources { get; init; } = [];
    public string? ExecRuntimeWritten { get; init; }
    public string? SuspendOn { get; init; }
    /// <summary>`-o a,b=c` groups (mount(8) form), applied over the flags by <see cref="MountOptionString"/>.</summary>
    public IReadOnlyList<string> Options { get; init; } = [];
    /// <summary>Return once mounted and leave the server running detached (the FUSE-tool default; `mount` without it serves in the foreground).</summary>
    public bool Background { get; init; }

    /// <summary>
    /// The command line (after the program) a kept server is started with, when it is not this process's own: the overlay
    /// mount program's (fuse-overlayfs's syntax, under another program name) becomes `mount --config FILE`.
    /// </summary>
    public IReadOnlyList<string>? ServerArguments { get; init; }
}

internal static class MountCommand
{
    public static Command Create()
    {
        var mountPoint = new Argument<string?>("MOUNTPOINT")
        {
            Description = "Where to mount the container filesystem (optional with --config, which may name it).",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var config = new Option<string?>("--config") { Description = "Instance config (YAML): name, mountpoint, mounts, isolation, paths, resources, rules. MOUNTPOINT, --name, --control, --state-dir and --isolation given as well override it; mount and policy flags belong in the file." };
        var memory = new Option<bool>("--memory") { Description = "Serve an empty in-memory root (quick form)." };
        var memorySize = new Option<string?>("--memory-size") { Description = "Size limit of the in-memory root, e.g. 512MiB, 1GiB (default 1GiB); writes beyond it get ENOSPC." };
        var source = new Option<string?>("--source") { Description = "Serve this host directory as the root (quick form); reached only through descriptors." };
        var direct = new Option<bool>("--direct") { Description = "DirectFS for --source: trusted files' reads and writes go straight to the host file (kernel passthrough)." };
        var readOnlySource = new Option<bool>("--read-only") { Description = "Mount --source read-only (write-class operations get EROFS)." };
        var memoryAt = new Option<string[]>("--memory-at") { Description = "Add an in-memory mount, PATH:SIZE (e.g. /tmp:64MiB); repeatable.", AllowMultipleArgumentsPerToken = false };
        var isolation = new Option<string?>("--isolation") { Description = "Isolation level: standard (default), enhanced or maximum." };
        isolation.AcceptOnlyFromAmong("standard", "enhanced", "maximum");
        var forbid = new Option<string[]>("--forbid") { Description = "Forbidden path glob (EACCES, hidden from listings); repeatable. * stays within a component, ** crosses them." };
        var readOnly = new Option<string[]>("--readonly") { Description = "Read-only path glob (writes get EROFS); repeatable." };
        var allow = new Option<string[]>("--allow") { Description = "Allowed path glob; repeatable." };
        var stateDir = new Option<string?>("--state-dir") { Description = "Where incidents.jsonl and the event journal live (default /var/lib/inspatialfs/NAME)." };
        var control = new Option<string?>("--control") { Description = "Control directory mount (default /run/inspatialfs/NAME)." };
        var noControl = new Option<bool>("--no-control") { Description = "Do not mount the control directory." };
        var noKeeper = new Option<bool>("--no-keeper") { Description = "Serve without inspatialfs-keeper: the mount then dies with the server (without it a crashed or upgraded server is restarted underneath the live mount; host, DirectFS and memory mounts: a memory mount's files are kept in descriptors the keeper holds)." };
        var name = new Option<string?>("--name") { Description = "Instance name, one path component: 1-64 of letters, digits, '-', '_', '.' (default: the config's name, else the mountpoint's base name). Also moves the default control and state directories." };
        var rules = new Option<string[]>("--rules") { Description = "Extra rule file (YAML) on top of the built-in rules; repeatable." };
        var logLevel = new Option<string>("--log-level") { Description = "trace, debug, info, warning, error or critical.", DefaultValueFactory = _ => "info" };
        var readers = new Option<int>("--readers") { Description = "Threads reading requests from /dev/fuse, each on its own cloned descriptor (1-64; default: one per CPU, 2 to 4). Up to two start at once, the rest when every reader is busy; with --io-uring they carry only FORGET and INTERRUPT once the rings serve." };
        readers.Validators.Add(r => AtLeast(r, 1, "--readers: a number of threads, 1 or more"));
        var ioUring = new Option<bool>("--io-uring")
        {
            Description = "Take requests over io_uring (FUSE over io_uring, one ring entry per CPU queue and reader) instead of " +
                "read(2)/write(2) on /dev/fuse: one system call per request instead of two. Needs a kernel with " +
                "/sys/module/fuse/parameters/enable_uring set to Y (the start fails otherwise), and serves without the keeper: " +
                "the kernel cannot hand the requests a dead server held on its rings to a new one.",
        };
        var noPinReaders = new Option<bool>("--no-pin-readers")
        {
            Description = "Leave the /dev/fuse readers to the scheduler. By default, where there is a reader for every CPU, each is " +
                "pinned to a CPU of its own while every CPU has idle time (about half of a caller's requests are then served on " +
                "its own CPU, without waking another), and let go while some CPU is busy; status shows which (`readers`).",
        };
        var noPassthrough = new Option<bool>("--no-passthrough") { Description = "Never use kernel passthrough; DirectFS files are served through the daemon." };
        var directFallback = new Option<string?>("--direct-fallback")
        {
            Description = "How DirectFS files move data when kernel passthrough is unavailable (or --no-passthrough): splice " +
                "(default; READ data goes host file -> pipe -> /dev/fuse with splice(2), never copied through the daemon) " +
                "or copy (pread/pwrite through the daemon's buffers). Writes use pwrite either way.",
        };
        directFallback.AcceptOnlyFromAmong("splice", "copy");
        var cacheTimeout = new Option<int?>("--cache-timeout")
        {
            Description = "Seconds the kernel may cache names, attributes, file data and listings of read-only mounts, read-only image " +
                "layers and read-only policy paths (default 3600; a reload drops them at once). 1 or less: the 1 s of every other node.",
        };
        cacheTimeout.Validators.Add(r => AtLeast(r, 0, "--cache-timeout: seconds, 0 or more"));
        var relax = new Option<string[]>("--relax")
        {
            Description = "Explicitly relax one control of the isolation level (printed as a warning at start and shown in status): " +
                string.Join(", ", Runtime.Relaxations.Names) + "; repeatable.",
        };
        relax.AcceptOnlyFromAmong([.. Runtime.Relaxations.Names]);
        var resources = new Option<string[]>("--resource")
        {
            Description = "A resources: limit, KEY=VALUE with KEY one of memory, disk, inodes, open_files, ops_per_second, " +
                "bytes_per_second (sizes like 256MiB); repeatable. The flag twin of the config's resources: block.",
        };
        var execRuntimeWritten = new Option<string?>("--exec-runtime-written") { Description = "exec of files written at run time: allow, alert (allow and raise an incident) or deny (maximum implies deny)." };
        execRuntimeWritten.AcceptOnlyFromAmong("allow", "alert", "deny");
        var suspendOn = new Option<string?>("--suspend-on") { Description = "Suspend the container on detections of this severity or higher: info, low, medium, high, critical." };
        suspendOn.AcceptOnlyFromAmong("info", "low", "medium", "high", "critical");
        var allowRelax = new Option<bool>("--allow-relax") { Description = "Reserved (accepted, no effect): the isolation level of a running instance cannot be changed; restart with the new level." };
        var options = new Option<string[]>("-o") { Description = MountOptionString.Help, AllowMultipleArgumentsPerToken = false };
        var background = new Option<bool>("--background", "-b")
        {
            Description = "Return once the mount is live and keep serving detached, logging to STATE_DIR/daemon.log (what mount(8), fstab " +
                "and mount.fuse.inspatialfs use); config errors still print here with exit 2. Without it the server stays in the foreground.",
        };

        var command = new Command("mount", "Mount a container filesystem and serve it until SIGTERM/SIGINT or an outside unmount: in the foreground, or with --background return once mounted.")
        {
            mountPoint, config, memory, memorySize, source, direct, readOnlySource, memoryAt, isolation, forbid, readOnly, allow,
            stateDir, control, noControl, noKeeper, name, rules, logLevel, readers, ioUring, noPinReaders, noPassthrough, directFallback, cacheTimeout, relax, resources, execRuntimeWritten, suspendOn, allowRelax,
            options, background,
        };
        command.SetAction(parse => MountRunner.Run(new MountRequest
        {
            MountPoint = parse.GetValue(mountPoint),
            ConfigFile = parse.GetValue(config),
            Memory = parse.GetValue(memory),
            MemorySize = parse.GetValue(memorySize),
            Source = parse.GetValue(source),
            Direct = parse.GetValue(direct),
            ReadOnlySource = parse.GetValue(readOnlySource),
            MemoryAt = parse.GetValue(memoryAt) ?? [],
            Isolation = parse.GetValue(isolation),
            Forbid = parse.GetValue(forbid) ?? [],
            ReadOnly = parse.GetValue(readOnly) ?? [],
            Allow = parse.GetValue(allow) ?? [],
            StateDir = parse.GetValue(stateDir),
            Control = parse.GetValue(control),
            NoControl = parse.GetValue(noControl),
            NoKeeper = parse.GetValue(noKeeper),
            Name = parse.GetValue(name),
            RuleFiles = parse.GetValue(rules) ?? [],
            LogLevel = parse.GetValue(logLevel) ?? "info",
            Readers = parse.GetValue(readers),
            NoPassthrough = parse.GetValue(noPassthrough),
            NoPinReaders = parse.GetValue(noPinReaders),
            IoUring = parse.GetValue(ioUring),
            DirectFallback = parse.GetValue(directFallback),
            CacheTimeout = parse.GetValue(cacheTimeout),
            AllowRelax = parse.GetValue(allowRelax),
            Relax = parse.GetValue(relax) ?? [],
            Resources = parse.GetValue(resources) ?? [],
            ExecRuntimeWritten = parse.GetValue(execRuntimeWritten),
            SuspendOn = parse.GetValue(suspendOn),
            Options = parse.GetValue(options) ?? [],
            Background = parse.GetValue(background),
        }));
        return command;
    }

    /// <summary>
    /// Refuses a number below <paramref name="minimum"/>. Read from the token: a value that is no number has the parser's
    /// own error already, and asking the result for its value would throw instead of reporting it.
    /// </summary>
    private static void AtLeast(System.CommandLine.Parsing.OptionResult r, int minimum, string error)
    {
        if (r.Tokens.Count == 1 && int.TryParse(r.Tokens[0].Value, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int value)
            && value < minimum)
        {
            r.AddError(error);
        }
    }
}
