using System.Net.Sockets;
using System.Runtime.InteropServices;
using InSpatialFs.Daemon.Config;
using InSpatialFs.Daemon.Control;
using InSpatialFs.Daemon.Hosting;
using InSpatialFs.Daemon.Outputs;
using InSpatialFs.Fuse;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Fuse.Transport;
using InSpatialFs.Interop;
using InSpatialFs.Interop.Threading;
using InSpatialFs.Proxy;
using InSpatialFs.Proxy.Direct;
using InSpatialFs.Security;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Identity;
using InSpatialFs.Security.Outputs;
using InSpatialFs.Security.Policy;
using InSpatialFs.Security.Rules;
using InSpatialFs.Storage;
using InSpatialFs.Storage.Host;
using InSpatialFs.Storage.Memory;
using InSpatialFs.Storage.Mounts;
using InSpatialFs.Storage.Overlay;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.Daemon.Runtime;

/// <summary>
/// One running InSpatialFs instance, the composition root: storage backends and mount table, the rule engine
/// and security manager, the secure proxy, the container mount and the control mount (each with its own
/// protocol server), signals and systemd notification. <see cref="WaitForExit"/> returns when the container
/// mount ends (SIGTERM/SIGINT, or an unmount from outside) after everything has been unmounted and flushed.
/// </summary>
internal sealed partial class Instance : IDisposable
{
    private InstanceConfig _config; // `paths:` replaced by a reload; the rest is fixed for the instance's life
    private readonly InstanceOptions _options;
    private readonly ILogger _log;
    private readonly List<IDisposable> _owned = [];
    private LogFileGuard? _logGuard;
    private readonly List<PosixSignalRegistration> _signals = [];
    private readonly SystemdNotifier _notifier = new();
    private readonly ManualResetEventSlim _stopRequested = new(false);
    private volatile bool _serving;
    private FuseMount? _mount;
    private ProtocolServer? _server;
    private FuseMount? _controlMount;
    private ProtocolServer? _controlServer;
    private ControlFileSystem? _controlFs;
    private HousekeepingJob? _heartbeat;
    private HousekeepingJob? _idleMemoryCheck;
    private readonly IdleMemoryReturn _idleMemory = new();
    private int _collecting; // 1 while a full collection of ReturnMemory runs: a slow one is not stacked on
    private MountProbe? _probe;
    private bool _watchdogWithheld;

    private Instance(InstanceConfig config, InstanceOptions options, ILoggerFactory logs)
    {
        _config = config;
        _options = options;
        _log = logs.CreateLogger("inspatialfs");
        Logs = logs;
    }

    public ILoggerFactory Logs { get; }

    public InstanceConfig Config => _config;

    public MountTable Mounts { get; private set; } = null!;

    public RuleEngine Rules { get; private set; } = null!;

    public SecurityManager Security { get; private set; } = null!;

    public SecureProxy Proxy { get; private set; } = null!;

    /// <summary>Alert channels of `outputs:` (none configured: no channels).</summary>
    public AlertOutputs? Alerts { get; private set; }

    public ControlPlane ControlPlane { get; private set; } = null!;

    public DateTime StartedUtc { get; } = DateTime.UtcNow;

    /// <summary>READ replies of the container mount sent by splice(2) (the DirectFS fallback's data path).</summary>
    public long SplicedReadReplies => _server?.SplicedReadReplies ?? 0;

    /// <summary>READs of a spliced DirectFS mount copied because they did not fit the readers' pipes.</summary>
    public long UnfitSplicedReads => _server?.UnfitSplicedReads ?? 0;

    /// <summary>READs of a spliced DirectFS mount copied because splicing failed (the log says why).</summary>
    public long FailedSplicedReads => _server?.FailedSplicedReads ?? 0;

    /// <summary>FUSE requests of the container mount per opcode slot (see <see cref="ProtocolServer.RequestCounts"/>).</summary>
    public long[] FuseRequests => _server?.RequestCounts() ?? [];

    /// <summary>How the container mount takes its requests (status `transport`).</summary>
    /// <remarks>A ring that could not be made or registered leaves the kernel on /dev/fuse unless it had switched already
    /// (every queue had an entry): then the requests the rings answered tell which.</remarks>
    public string Transport => _server switch
    {
        null => "none",
        { RingUnavailable: string why, RingRequests: 0 } => $"/dev/fuse (io_uring not used: {why})",
        { RingUnavailable: string why } s => $"io_uring ({s.RingEntries} ring entries on {s.RingQueues} queues; not all: {why})",
        { RingEntries: > 0 } s => $"io_uring ({s.RingEntries} ring entries on {s.RingQueues} queues)",
        _ => "/dev/fuse",
    };

    /// <summary>Where the container mount's /dev/fuse readers run (status `readers`).</summary>
    public string ReaderPlacement => _server switch
    {
        null => "none",
        { RingEntries: > 0 } => "on any CPU (requests come over io_uring, whose threads are pinned to their queues' CPUs)",
        { ReaderPlacementState: string placement } => placement,
        _ when !_options.PinReaders => "on any CPU (--no-pin-readers)",
        _ => "on any CPU (one CPU, fewer readers than CPUs, or /proc/stat unreadable)",
    };

    /// <summary>Requests the container mount took over io_uring.</summary>
    public long RingRequests => _server?.RingRequests ?? 0;

    /// <summary>All rule files in load order: the config's, then --rules.</summary>
    public IReadOnlyList<string> RuleFiles => [.. _config.Rules.Files, .. _options.ExtraRuleFiles];

    public static Instance Start(InstanceConfig config, InstanceOptions options, ILoggerFactory logs)
    {
        var instance = new Instance(config, options, logs);
        try
        {
            instance.StartCore();
            return instance;
        }
        catch (Exception e) when (e is not InstanceStartException)
        {
            instance.Dispose();
            throw new InstanceStartException($"cannot start instance '{config.Name}': {e.Message}", e);
        }
        catch
        {
            instance.Dispose();
            throw;
        }
    }

    private void StartCore()
    {
        // No process-wide umask(0): the daemon's own files get explicit modes (TrustedPath), and host-backend creates set
        // a zero umask on their own thread only (LibC.EnsureThreadUmaskZero), so the unit's UMask= holds for the rest.
        // Signals first: a SIGTERM while starting (systemd stop right after start, or a quick Ctrl-C) must stop the
        // instance through its own unmount, not kill the process with the default action and leave a dead mount.
        InstallSignals();
        if (_options.IoUring && InSpatialFs.Fuse.Transport.FuseRingSupport.Unavailable() is string noRing)
        {
            throw new InstanceStartException($"--io-uring: {noRing}");
        }

        bool adopting = TakeStore();
        PreparePaths(adopting);
        Mounts = BuildMounts(adopting);
        Rules = LoadRules();
        Alerts = AlertOutputsFactory.Create(_config, () => Rules.RuleSet, Logs);
        _owned.Add(Alerts); // disposed after the security manager, which may still raise incidents while it drains
        Security = new SecurityManager(BuildSecurityOptions(_config, _options.Relax), Rules, Logs.CreateLogger("InSpatialFs.Security"));
        _owned.Add(Security);
        Security.Incidents.Added += Alerts.Publish;
        Security.Callers.Processes.Accounts = new AccountNames((path, max) => ContainerFiles.Read(Mounts, path, max));
        // Each relaxation is logged once, by the security manager (event 4001), as it resolves the controls.

        Proxy = new SecureProxy(Mounts, Security, ProxyOptionsFor(), Logs.CreateLogger("InSpatialFs.Proxy"));
        _owned.Add(Proxy); // its invalidation thread stops once the servers have
        // A blocked process or a suspended container must not be answered from the kernel's caches: drop them (queued,
        // never waited for: this is raised on the reader thread that took the response).
        Security.CachedAnswersChanged += why => Proxy.InvalidateKernelCaches(why, TimeSpan.Zero);
        ControlPlane = new ControlPlane(this);
        _owned.Add(ControlPlane);
        if (_config.MetricsListen is { } listen)
        {
            // A restarted or upgraded server serves on the socket its predecessor kept in the descriptor store: there is
            // no moment without a listener in which another local user could take the port and make this start fail.
            // A first start binds before anything is mounted: an address in use refuses it instead of serving without
            // metrics.
            Socket? kept = _store?.Take(MetricsSocketName) is { } fd ? MetricsListener.Adopt(fd, listen) : null;
            var metrics = new MetricsListener(kept ?? MetricsListener.Bind(listen), ControlPlane.Metrics, Logs.CreateLogger("InSpatialFs.Metrics"));
            _owned.Add(metrics);
            if (kept is null && _store is { } store)
            {
                store.Remove(MetricsSocketName); // one that listened elsewhere (metrics_listen changed)
                store.Store(MetricsSocketName, metrics.Descriptor);
            }

            Log.MetricsListening(_log, metrics.Endpoint.ToString());
        }

        FuseSessionParameters? adopt = OpenJournal(adopting);
        _mount = adopt != null
            ? FuseMount.Adopt(_config.Mountpoint, _inheritedSession!, new FuseMountOptions { FsName = "inspatialfs:" + _config.Name, AllowOther = true }, Logs.CreateLogger("InSpatialFs.Fuse"))
            : Mount(_config.Mountpoint, "inspatialfs:" + _config.Name, allowOther: true);
        StoreClonesOf(_mount.Device);
        if (_mount.ConnectionId is uint connection)
        {
            // A FUSE mount's st_dev is 0:connection; callers whose root lies on it are container members.
            Security.Callers.SetMountDevice(0, connection);
        }

        _server = Serve(_mount, Proxy, _options.ReaderThreads, _options.Passthrough, cacheSymlinks: !Security.Controls.RestrictSymlinks, adopt: adopt,
            ioUring: _options.IoUring, pinReaders: _options.PinReaders);
        if (_stopRequested.IsSet)
        {
            _server.Stop(); // the signal came before there was a server to stop
        }

        if (_options.Control)
        {
            var controlFs = _controlFs = new ControlFileSystem(ControlPlane, Logs.CreateLogger("InSpatialFs.Control"));
            _controlMount = MountControl();
            StoreClonesOf(_controlMount.Device, ControlClonePrefix);
            // events readers block a thread each (at most MaxBlockedEventReaders); leave room for the snapshot files and commands.
            // Control files carry command lines of at most 4 KiB and text snapshots: 64 KiB requests (not the container
            // mount's 1 MiB) keep 16 readers' buffers at 2 MiB instead of 32 MiB of address space and GC budget.
            _controlServer = Serve(_controlMount, controlFs, readers: ControlFileSystem.MaxBlockedEventReaders + 4, passthrough: false, cacheSymlinks: true,
                maxWrite: ControlMaxWrite, adopt: _adoptControl, readerThreadName: "ctl-reader");
        }

        WaitUntilConnected();
        if (_stopRequested.IsSet)
        {
            _log.LogInformation("stopped by a signal while starting; {Mountpoint} unmounted", _config.Mountpoint);
            return;
        }

        AfterConnected(adopt != null);

        string mode = Mounts.Entries.Any(m => m.Direct) ? $", direct: {Proxy.DirectMode.DisplayName()}" : "";
        _log.LogInformation("serving {Mountpoint} ({Level} isolation{Mode}); control files in {Control}",
            _config.Mountpoint, FsEventJson.LevelName(_config.Isolation), mode, _options.Control ? _config.Control : "(none)");
        ReadinessPipe.ReleaseCallerStderr(); // a keeper reports READY=1 to this server's caller: nothing here holds its pipe then
        _notifier.Ready($"serving {_config.Mountpoint}");
        ReadinessPipe.SignalReady();
        _serving = true; // SIGHUP reloads from here on (the rules exist)
        TimeSpan period = _notifier.WatchdogInterval is TimeSpan w ? w / 2 : TimeSpan.FromSeconds(10);
        if (_notifier.WatchdogInterval is TimeSpan watchdog)
        {
            _probe = new MountProbe(_config.Mountpoint, watchdog / 4);
        }

        // A detached server's log is a file in the state directory: the heartbeat keeps it under its cap.
        _logGuard = LogFileGuard.ForStateDirectory(_config.StateDir, _log);
        _logGuard?.Check();
        _heartbeat = Housekeeping.Shared.Schedule(Heartbeat, period, period);
        ReturnTransientMemory("start");
        _idleMemoryCheck = Housekeeping.Shared.Schedule(ReturnIdleMemory, IdleMemoryReturn.CheckInterval, IdleMemoryReturn.CheckInterval);
    }

    /// <summary>
    /// Starting (and reloading) leaves megabytes of garbage: the parsed config and rule files, the command line, the
    /// rule compiler's intermediate trees. An idle instance may never allocate enough for the GC to run again, so those
    /// pages would stay resident for the container's life (about 3.5 MiB of an idle instance's 22). One aggressive
    /// collection returns them to the kernel; it runs on the thread pool, after the mount answers, and pauses the
    /// readers for a few milliseconds once.
    /// </summary>
    private void ReturnTransientMemory(string after) =>
        ThreadPool.UnsafeQueueUserWorkItem(_ => ReturnMemory(after), null);

    /// <summary>After a burst of work or of nodes the kernel let go of, once the instance is quiet: see <see cref="IdleMemoryReturn"/>.</summary>
    private void ReturnIdleMemory()
    {
        TimeSpan before = _idleMemory.NextCheck;
        if (_idleMemory.ShouldReturn(GC.GetGCMemoryInfo().TotalCommittedBytes, FuseRequests.Sum(), Proxy.LiveNodes)) ReturnMemory("going quiet");
        TimeSpan next = _idleMemory.NextCheck;
        if (next == before) return;
        _idleMemoryCheck?.Change(next, next);
    }

    /// <summary>One aggressive, compacting collection, which decommits what the GC no longer needs.</summary>
    private void ReturnMemory(string after)
    {
        if (Interlocked.Exchange(ref _collecting, 1) == 1) return;
        try
        {
            long before = Environment.WorkingSet;
            long started = System.Diagnostics.Stopwatch.GetTimestamp();
            GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            _idleMemory.Returned(GC.GetGCMemoryInfo().TotalCommittedBytes, Proxy.LiveNodes);
            Log.TransientMemoryReturned(_log, after, (before - Environment.WorkingSet) / 1024,
                System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        }
        finally
        {
            Volatile.Write(ref _collecting, 0);
        }
    }

    /// <summary>Full collections run once quiet after a burst of work or of forgotten nodes (status <c>memory_returns</c>).</summary>
    public long IdleMemoryReturns => _idleMemory.IdleReturns;

    /// <summary>Serves until the container mount ends; returns the process exit code.</summary>
    public int WaitForExit()
    {
        bool faulted = false;
        try
        {
            _server!.Completion.GetAwaiter().GetResult();
        }
        catch (Exception e)
        {
            _log.LogError(e, "the FUSE connection failed");
            faulted = true;
        }

        _notifier.Stopping("unmounting");
        _log.LogInformation("{Mountpoint} unmounted; shutting down", _config.Mountpoint);
        Shutdown();
        return faulted ? Cli.ExitCodes.RuntimeFailure : Cli.ExitCodes.Ok;
    }

    /// <summary>SIGTERM/SIGINT: unmount (lazily, so busy mounts go too); the read loops then end with ENODEV.</summary>
    public void RequestStop()
    {
        if (_stopRequested.IsSet)
        {
            return;
        }

        _stopRequested.Set();
        _notifier.Stopping("unmounting");
        _server?.Stop();
    }

    private FuseMount Mount(string mountpoint, string fsName, bool allowOther)
    {
        try
        {
            return FuseMount.Mount(mountpoint, new FuseMountOptions { FsName = fsName, AllowOther = allowOther }, Logs.CreateLogger("InSpatialFs.Fuse"));
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or UnauthorizedAccessException)
        {
            throw new InstanceStartException($"cannot mount {mountpoint}: {e.Message}", e);
        }
    }

    /// <param name="cacheSymlinks">Off where symlink controls apply: every use of a link must be read, and checked, anew.</param>
    private const uint ControlMaxWrite = 64 * 1024;

    private ProtocolServer Serve(FuseMount mount, IFuseFileSystem fs, int readers, bool passthrough, bool cacheSymlinks, uint? maxWrite = null,
        FuseSessionParameters? adopt = null, bool ioUring = false, bool pinReaders = false, string readerThreadName = "fuse-reader")
    {
        // No EXPORT_SUPPORT: nothing exports this filesystem over NFS, and without it the kernel never asks us to
        // look up "." or "..", names the proxy refuses.
        var options = new ProtocolServerOptions { ReaderThreadName = readerThreadName, PinReaders = pinReaders };
        options = options with { WantedFlags = options.WantedFlags & ~FuseInitFlags.ExportSupport };
        if (readers > 0)
        {
            options = options with { ReaderThreads = readers };
        }

        if (maxWrite is { } w)
        {
            options = options with { MaxWrite = w, MaxPages = (ushort)(w / 4096) };
        }

        if (!passthrough)
        {
            options = options with { WantedFlags = options.WantedFlags & ~FuseInitFlags.Passthrough };
        }

        if (!cacheSymlinks)
        {
            options = options with { WantedFlags = options.WantedFlags & ~FuseInitFlags.CacheSymlinks };
        }

        if (ioUring)
        {
            options = options with { IoUring = true };
        }

        if (adopt is { } negotiated)
        {
            options = options with { Adopt = negotiated };
        }

        var server = new ProtocolServer(mount.Device, fs, options, Logs.CreateLogger("InSpatialFs.Fuse"));
        server.Start();
        return server;
    }

    private void WaitUntilConnected()
    {
        DateTime deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        // The server publishes its connection before it calls the proxy's Initialized, which is where DirectFS
        // learns whether passthrough works; wait for both so the start line shows the mode really in use.
        while ((_server!.Connection == null || Proxy.Connection == null || (_controlServer != null && _controlServer.Connection == null))
               && DateTime.UtcNow < deadline)
        {
            if (_server.Completion.IsCompleted)
            {
                if (_stopRequested.IsSet)
                {
                    return; // stopped while starting: WaitForExit returns at once
                }

                throw new InstanceStartException($"the kernel closed {_config.Mountpoint} before INIT completed");
            }

            Thread.Sleep(5);
        }

        if (_server.Connection == null)
        {
            throw new InstanceStartException($"the kernel did not send INIT for {_config.Mountpoint} within 10 s");
        }
    }

    private void InstallSignals()
    {
        _signals.Add(PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnStop));
        _signals.Add(PosixSignalRegistration.Create(PosixSignal.SIGINT, OnStop));
        _signals.Add(PosixSignalRegistration.Create(PosixSignal.SIGHUP, context =>
        {
            context.Cancel = true;
            if (_serving)
            {
                ThreadPool.QueueUserWorkItem(_ => ReloadRules(out string _));
            }
        }));
        // SIGUSR2: `ctl upgrade` with the same binary, for service managers and scripts that speak signals (the keeper
        // forwards it; under systemd: systemctl kill -s USR2 --kill-whom=main inspatialfs@NAME).
        _signals.Add(PosixSignalRegistration.Create((PosixSignal)UpgradeSignal, context =>
        {
            context.Cancel = true;
            if (_serving)
            {
                Errno result = HandOver(null, out string message);
                _log.Log(result == Errno.OK ? LogLevel.Information : LogLevel.Warning, "SIGUSR2: {Message}", message);
            }
        }));
    }

    /// <summary>SIGUSR2 on Linux: asks for an upgrade in place.</summary>
    private const int UpgradeSignal = 12;

    private void OnStop(PosixSignalContext context)
    {
        context.Cancel = true; // we exit on our own once unmounted
        _log.LogInformation("{Signal}: unmounting {Mountpoint}", context.Signal, _config.Mountpoint);
        RequestStop();
    }

    /// <summary>
    /// Before anything is mounted: the state directory (checked, created 0700, locked), then crash recovery and checks
    /// of the mountpoint and the control directory. Any refusal ends the start with nothing mounted.
    /// </summary>
    private void PreparePaths(bool adopting)
    {
        for (int attempt = 0; ; attempt++)
        {
            using SafeFd stateDir = OwnPaths.OpenStateDirectory(_config.StateDir, _log);
            try
            {
                _owned.Add(StateDirLock.Acquire(stateDir, _config.StateDir));
                break;
            }
            catch (StateDirectoryRemovedException e) when (attempt == 0)
            {
                // Prune judged the stopped instance's state expendable and removed it under the lock this start waited
                // for; a start a moment later would have found no directory and made one, so this one does too.
                Log.StateDirectoryRemovedWhileStarting(_log, e.Message);
            }
        }

        if (!adopting) // an adopted mount is live, not stale: its connection is what this server takes over
        {
            StaleMounts.Clear(_config.Mountpoint, "inspatialfs:" + _config.Name, _log);
            OwnPaths.PrepareMountpoint(_config.Mountpoint, _log);
        }

        if (_options.Control && _inheritedControl == null) // a handed-over control mount is live too
        {
            StaleMounts.Clear(_config.Control, "inspatialfs-control:" + _config.Name, _log);
            OwnPaths.PrepareControlDirectory(_config.Control, _log);
        }
    }

    private void Heartbeat()
    {
        _logGuard?.Check();
        SecurityCounters c = Security.Counters();
        _notifier.Status($"ops={c.Decisions} denials={c.Denials} incidents={c.Incidents} dropped={c.EventsDropped}{(c.Suspended ? " SUSPENDED" : "")}");
        if (_notifier.WatchdogInterval is not TimeSpan watchdog || _probe == null)
        {
            return;
        }

        // Ping only while the mount answers: a hung reader pool must lead to a restart, not be hidden by a timer thread.
        TimeSpan silent = _probe.SinceLastAnswer;
        if (silent < watchdog / 2)
        {
            if (_watchdogWithheld)
            {
                _watchdogWithheld = false;
                Log.WatchdogResumed(_log, _config.Mountpoint);
            }

            _notifier.WatchdogPing();
        }
        else if (!_watchdogWithheld)
        {
            _watchdogWithheld = true;
            Log.WatchdogWithheld(_log, _config.Mountpoint, (long)silent.TotalSeconds);
        }
    }

    private void Shutdown()
    {
        _heartbeat?.Dispose();
        _heartbeat = null;
        _idleMemoryCheck?.Dispose();
        _idleMemoryCheck = null;
        _probe?.Dispose();
        _probe = null;
        _controlFs?.Close(); // followers (cat events, ctl events --follow) get end-of-file instead of holding the server
        _controlServer?.Stop();
        _controlServer?.Completion.Wait(TimeSpan.FromSeconds(5));
        if (_controlMount != null)
        {
            _controlMount.Dispose();
            _controlMount = null;
            OwnPaths.RemoveControlDirectory(_config.Control, _log);
        }

        _mount?.Dispose();
        _mount = null;
        Security?.WaitIdle(TimeSpan.FromSeconds(5));
    }

    public void Dispose()
    {
        foreach (PosixSignalRegistration s in _signals)
        {
            s.Dispose();
        }

        Shutdown();
        _server?.Dispose();
        for (int i = _owned.Count - 1; i >= 0; i--)
        {
            _owned[i].Dispose();
        }

        _notifier.Dispose();
        _stopRequested.Dispose();
    }
}
