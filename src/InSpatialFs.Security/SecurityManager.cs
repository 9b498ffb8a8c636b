using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using System.Threading.Channels;
using InSpatialFs.Interop;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Identity;
using InSpatialFs.Security.Incidents;
using InSpatialFs.Security.Policy;
using InSpatialFs.Security.Resources;
using InSpatialFs.Security.Responses;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace InSpatialFs.Security;

/// <summary>Counters for status and metrics (a consistent-enough snapshot; each value is read atomically).</summary>
public sealed record SecurityCounters(
    long Decisions,
    long Denials,
    long Throttled,
    long EventsRecorded,
    long EventsDropped,
    long EventsProcessed,
    long Incidents,
    long DenialIncidentsSuppressed,
    bool Suspended,
    int BlockedProcesses,
    long OpenFiles,
    IReadOnlyDictionary<string, long> PerOp);

/// <summary>An event subscriber: the event and its JSON line (newline included), valid only during the call.</summary>
public delegate void EventLineHandler(FsEvent e, ReadOnlySpan<byte> jsonLine);

/// <summary>
/// The security manager: decides every operation before it runs (<see cref="Decide"/>: caller identity →
/// blocked process → suspended container → path policy → privilege and code controls → throttle → inline
/// rules), records it after (<see cref="Record"/>: a bounded queue that never blocks; one consumer thread
/// feeds the rule engine's Analyze, the journal, incidents and subscribers), and takes responses
/// (deny, block-process, suspend, kill, resume).
/// While the container is suspended its further operations fail with EPERM rather than being held:
/// holding them would park FUSE reader threads and starve every other caller, including the operator's.
/// Contract with the proxy: call Record for every decided op, denied ones included (denial incidents
/// come from the recorded event); after Record the event object belongs to the manager.
/// Lock order: _responseGate > IncidentStore._gate. Decide takes no lock.
/// </summary>
public sealed class SecurityManager : ISecurityGate, IDisposable
{
    private const string SuspendedReason = "response:suspended", BlockedReason = "response:block_process";
    private const int BatchSize = 512;

    /// <summary>
    /// After a wake-up the consumer waits this long before draining, so a burst is analysed and journalled as one
    /// batch (one write) instead of one wake-up, one batch and one write per event. Bounds detection latency of
    /// asynchronous rules; decisions and inline rules do not wait for it.
    /// </summary>
    private const int CoalesceMs = 1;

    [ThreadStatic]
    private static List<Detection>? t_inlineDetections;

    private readonly IRuleEngine? _rules;
    private readonly ILogger _log;
    private readonly string _containerName;
    private readonly Channel<FsEvent> _queue;
    private readonly ConcurrentQueue<(Detection Detection, FsEvent Access)> _inlineDetections = new();
    private readonly ConcurrentDictionary<(int Tgid, ulong Start), CallerInfo> _blocked = new();
    private readonly Thread _consumer;
    private readonly ConsumerWakeup _wakeup = new();
    private readonly EventJournal? _journal;
    private readonly ContainerFreezer? _freezer;
    private readonly object _responseGate = new();
    private readonly long[] _perOp = new long[FsOpNames.Count];
    private readonly Dictionary<string, long> _recentDenials = new(StringComparer.Ordinal);
    private readonly bool _ownsCallers;
    private volatile EventLineHandler[] _subscribers = [];
    // The consumer serialises each event once; the journal and every subscriber get the same bytes.
    private readonly System.Buffers.ArrayBufferWriter<byte> _line = new(1024);
    private readonly Utf8JsonWriter _lineWriter;
    private volatile bool _suspended;
    private volatile int _blockedCount;
    private SuspendHandle? _suspendHandle;
    private Task? _suspendTask;
    private long _decisions, _denials, _recorded, _dropped, _processed, _suppressed, _seq, _lastDropLog;

    public SecurityManager(SecurityOptions options, IRuleEngine? rules = null, ILogger? log = null, CallerRegistry? callers = null, ContainerFreezer? freezer = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        _rules = rules;
        _log = log ?? NullLogger.Instance;
        _containerName = options.ContainerName;
        Controls = EffectiveControls.Resolve(options);
        Policy = PathPolicy.FromOptions(options);
        Resources = new ResourceGovernor(Controls.Resources);
        RuntimeWritten = new RuntimeWrittenPaths();
        _ownsCallers = callers is null;
        Callers = callers ?? new CallerRegistry(options.Mountpoint, options.ContainerCgroup);
        _freezer = freezer ?? TryCreateFreezer();
        Incidents = new IncidentStore(options.StateDir, _log);
        if (options.StateDir is not null && options.JournalEvents)
        {
            _journal = new EventJournal(options.StateDir, options.JournalRotateBytes, options.JournalKeep);
        }

        foreach (string w in Controls.Warnings) SecurityLog.Relaxation(_log, w);

        _lineWriter = new Utf8JsonWriter(_line);
        _queue = Channel.CreateBounded<FsEvent>(new BoundedChannelOptions(options.EventQueueCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait, // TryWrite fails when full: counted as a drop, never waited on
        });
        _consumer = new Thread(ConsumeLoop) { IsBackground = true, Name = "security-events" };
        _consumer.Start();
    }

    public SecurityOptions Options { get; }
    public EffectiveControls Controls { get; }
    public PathPolicy Policy { get; }
    public ResourceGovernor Resources { get; }

    /// <summary>resources.open_files: counted here (the gate interface's default counts nothing, which left the cap without effect).</summary>
    public bool TryOpenFile() => Resources.TryOpenFile() == Interop.Errno.OK;

    public void FileClosed() => Resources.FileClosed();
    public RuntimeWrittenPaths RuntimeWritten { get; }
    public CallerRegistry Callers { get; }
    public IncidentStore Incidents { get; }
    /// <summary>Relaxation warnings: the daemon prints them at start, the control files show them.</summary>
    public IReadOnlyList<string> Warnings => Controls.Warnings;
    public bool IsSuspended => _suspended;
    /// <summary>How the current suspension was done (null when not suspended or still freezing).</summary>
    public SuspendHandle? CurrentSuspension => _suspendHandle;

    // ---------------------------------------------------------------- request path

    public PathClass Classify(string path) => Policy.Classify(path);

    public bool MayForbidChildrenOf(string dirPath) => Policy.MayForbidChildrenOf(dirPath);

    public Verdict Decide(FsEvent access)
    {
        ArgumentNullException.ThrowIfNull(access);
        FsEvent a = access;
        Interlocked.Increment(ref _decisions);
        Interlocked.Increment(ref _perOp[(int)a.Op]);
        CallerInfo? caller = Identify(a);
        bool member = false;
        if (caller is not null)
        {
            member = caller.IsContainerMember;
            // ConcurrentDictionary.IsEmpty takes every bucket lock; a volatile count keeps the common case lock-free.
            if (_blockedCount != 0 && _blocked.ContainsKey((caller.Tgid, caller.ProcessStartTime))) return Deny(a, Errno.EPERM, BlockedReason);
        }

        if (_suspended && member) return Deny(a, Errno.EPERM, SuspendedReason);

        PathMatch m = Policy.Match(a.Path);
        a.PolicyClass = m.Class;
        if (m.Class == PathClass.Forbidden) return Deny(a, Errno.EACCES, m.Reason);

        bool exec = a.Op == FsOp.Open && (a.IsExec || (a.Flags & LibC.FMODE_EXEC) != 0);
        a.IsExec |= exec;
        if (exec && caller is not null) Callers.NoteExec(caller.Pid);
        bool write = IsWriteAccess(a);
        if (write && m.Class == PathClass.ReadOnly) return Deny(a, Errno.EROFS, m.Reason);

        if (a.Target is string target && a.Op is FsOp.Rename or FsOp.Link or FsOp.CopyFileRange)
        {
            PathMatch t = Policy.Match(target);
            if (t.Class == PathClass.Forbidden) return Deny(a, Errno.EACCES, t.Reason);
            if (t.Class == PathClass.ReadOnly) return Deny(a, Errno.EROFS, t.Reason);
        }

        if (PrivilegeControls.Check(Controls, a, m.Class) is string refused) return Deny(a, Errno.EPERM, refused);

        if (exec && Controls.RuntimeWrittenExec == RuntimeWrittenExec.Deny && m.Class != PathClass.ReadOnly && RuntimeWritten.Contains(a.Path))
        {
            return Deny(a, Errno.EPERM, PrivilegeControls.RuntimeWrittenExec);
        }

        TimeSpan delay = member ? Resources.Throttle(a.Op, a.Size, Stopwatch.GetTimestamp()) : TimeSpan.Zero;

        Decision decision = Decision.Allow;
        if (_rules is not null)
        {
            List<Detection> found = t_inlineDetections ??= new List<Detection>(4);
            Verdict rv = _rules.EvaluateInline(a, found);
            if (found.Count > 0)
            {
                foreach (Detection d in found) OnInlineDetection(d, a, caller);
                found.Clear();
            }

            if (rv.IsDenied) return Deny(a, rv.Error == Errno.OK ? Errno.EPERM : rv.Error, rv.Reason ?? "rule");
            if (rv.Decision == Decision.WouldDeny)
            {
                decision = Decision.WouldDeny;
                a.Reason = rv.Reason;
            }
        }

        if (decision == Decision.Allow && a.Op is FsOp.Open or FsOp.Create && Controls.AllowDirect && !exec
            && (Controls.Level == IsolationLevel.Standard || !write))
        {
            decision = Decision.AllowDirect;
        }

        a.Decision = decision;
        return new Verdict(decision, Errno.OK, a.Reason, delay);
    }

    /// <summary>Fills level, caller, proc.name and container.id (a cache hit is one dictionary read; <paramref name="pinNew"/> pins a caller not seen yet).</summary>
    private CallerInfo? Identify(FsEvent a, bool pinNew = true)
    {
        a.Level = Controls.Level;
        CallerInfo? caller = pinNew ? Callers.Resolve(a.Pid) : Callers.Cached(a.Pid);
        a.Caller = caller;
        if (caller is not null)
        {
            a.ProcName = caller.Name;
            if (caller.IsContainerMember) a.ContainerId = _containerName;
        }

        return caller;
    }

    /// <summary>Write-class ops, opens for write or truncation, and copy_file_range (whose destination is fs.target when set).</summary>
    internal static bool IsWriteAccess(FsEvent a) => a.Op switch
    {
        FsOp.Open => a.IsWrite || (a.Flags & (LibC.O_ACCMODE | LibC.O_TRUNC)) != 0,
        FsOp.CopyFileRange => a.Target is null,
        _ => a.Op.IsWriteClass(),
    };

    private Verdict Deny(FsEvent a, Errno error, string reason)
    {
        Interlocked.Increment(ref _denials);
        a.Decision = Decision.Deny;
        a.Reason = reason;
        a.Result = (int)error;
        return new Verdict(Decision.Deny, error, reason, TimeSpan.Zero);
    }

    /// <summary>
    /// Rate limits for READ/WRITE, which the proxy does not decide one by one (they were admitted at OPEN):
    /// only container members are throttled, and only through an already pinned caller (no /proc reads here).
    /// </summary>
    public TimeSpan DataDelay(uint pid, FsOp op, long bytes)
    {
        if (!Resources.LimitsRates)
        {
            return TimeSpan.Zero;
        }

        CallerInfo? caller = Callers.Cached((int)pid);
        return caller is { IsContainerMember: true } ? Resources.Throttle(op, bytes, Stopwatch.GetTimestamp()) : TimeSpan.Zero;
    }

    public QuotaAccount? QuotaFor(string mountPath) =>
        Resources.Limits.DiskBytes is null && Resources.Limits.Inodes is null ? null : Resources.Account(mountPath);

    public void Record(FsEvent completed)
    {
        ArgumentNullException.ThrowIfNull(completed);
        completed.Seq = (ulong)Interlocked.Increment(ref _seq);
        // Events the proxy records without a decision (readdir, release) take the caller pinned by its earlier ops;
        // never a new pin here: a RELEASE often comes after its process exited, and its pid may name another by now.
        if (completed.Caller is null && completed.ProcName is null) Identify(completed, pinNew: false);
        if (completed.TimeUnixNanos == 0) completed.TimeUnixNanos = FsEvent.NowUnixNanos();
        RuntimeWritten.Observe(completed);
        if (_queue.Writer.TryWrite(completed))
        {
            Interlocked.Increment(ref _recorded);
            _wakeup.Wake();
            return;
        }

        long dropped = Interlocked.Increment(ref _dropped);
        long now = Environment.TickCount64;
        long last = Volatile.Read(ref _lastDropLog);
        if (now - last >= 1000 && Interlocked.CompareExchange(ref _lastDropLog, now, last) == last)
        {
            SecurityLog.EventsDropped(_log, dropped);
        }
    }

    /// <summary>Adds an event callback, run on the consumer thread after analysis; dispose the result to remove it.</summary>
    public IDisposable Subscribe(Action<FsEvent> onEvent)
    {
        ArgumentNullException.ThrowIfNull(onEvent);
        return Subscribe((e, _) => onEvent(e));
    }

    /// <summary>
    /// Adds an event callback that also receives the event's JSON line (with its newline), serialised once for the
    /// journal and every subscriber; the span is valid only during the call.
    /// </summary>
    public IDisposable Subscribe(EventLineHandler onEvent)
    {
        ArgumentNullException.ThrowIfNull(onEvent);
        lock (_responseGate) _subscribers = [.. _subscribers, onEvent];
        return new Subscription(this, onEvent);
    }

    private sealed class Subscription(SecurityManager owner, EventLineHandler action) : IDisposable
    {
        public void Dispose()
        {
            lock (owner._responseGate) owner._subscribers = owner._subscribers.Where(a => a != action).ToArray();
        }
    }

    public SecurityCounters Counters()
    {
        var perOp = new Dictionary<string, long>(FsOpNames.Count);
        for (int i = 0; i < _perOp.Length; i++)
        {
            long n = Volatile.Read(ref _perOp[i]);
            if (n != 0) perOp[((FsOp)i).Name()] = n;
        }

        return new SecurityCounters(
            Volatile.Read(ref _decisions), Volatile.Read(ref _denials), Resources.ThrottledOps,
            Volatile.Read(ref _recorded), Volatile.Read(ref _dropped), Volatile.Read(ref _processed),
            Incidents.Count, Volatile.Read(ref _suppressed), _suspended, _blocked.Count, Resources.OpenFiles, perOp);
    }

    /// <summary>Waits until every event recorded so far has been analysed and flushed (tests, shutdown).</summary>
    public bool WaitIdle(TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout)
        {
            if (Volatile.Read(ref _processed) >= Volatile.Read(ref _recorded) && _inlineDetections.IsEmpty && _queue.Reader.Count == 0)
            {
                Task? t = _suspendTask;
                if (t is null || t.IsCompleted) return true;
            }

            Thread.Sleep(2);
        }

        return false;
    }

    // ---------------------------------------------------------------- consumer

    private void ConsumeLoop()
    {
        ChannelReader<FsEvent> reader = _queue.Reader;
        var detections = new List<Detection>();
        Func<bool> hasWork = () => reader.Count > 0 || !_inlineDetections.IsEmpty || reader.Completion.IsCompleted;
        while (true)
        {
            int n = 0;
            while (_inlineDetections.TryDequeue(out (Detection Detection, FsEvent Access) d)) HandleDetection(d.Detection, d.Access);
            while (n < BatchSize && reader.TryRead(out FsEvent? e))
            {
                n++;
                try
                {
                    Process(e, detections);
                }
                catch (Exception ex)
                {
                    SecurityLog.ConsumerFailed(_log, ex, e.Seq);
                }
                finally
                {
                    detections.Clear();
                }
            }

            try
            {
                _journal?.Flush();
                Incidents.Flush();
            }
            catch (IOException ex)
            {
                SecurityLog.ResponseFailed(_log, ex, "journal flush");
            }

            Interlocked.Add(ref _processed, n);
            if (n == BatchSize)
            {
                continue; // behind: drain without pausing
            }

            if (reader.Count == 0 && _inlineDetections.IsEmpty)
            {
                if (reader.Completion.IsCompleted)
                {
                    return;
                }

                _wakeup.Sleep(hasWork, Timeout.Infinite);
            }

            Thread.Sleep(CoalesceMs);
        }
    }

    private void Process(FsEvent e, List<Detection> detections)
    {
        if (_rules is not null)
        {
            _rules.Analyze(e, detections);
            foreach (Detection d in detections) HandleDetection(d, e);
        }

        if (e.Decision == Decision.Deny && e.Reason is string reason && DenialSeverity(reason, (Errno)e.Result) is Severity sev)
        {
            RaiseDenialIncident(e, reason, sev);
        }

        EventLineHandler[] subscribers = _subscribers;
        if (_journal is null && subscribers.Length == 0)
        {
            return;
        }

        ReadOnlySpan<byte> line = JsonLine(e);
        _journal?.WriteLine(line);
        foreach (EventLineHandler s in subscribers)
        {
            try
            {
                s(e, line);
            }
            catch (Exception ex)
            {
                SecurityLog.ResponseFailed(_log, ex, "event subscriber");
            }
        }
    }

    private ReadOnlySpan<byte> JsonLine(FsEvent e)
    {
        _line.ResetWrittenCount();
        _lineWriter.Reset(_line);
        FsEventJson.Write(_lineWriter, e);
        _lineWriter.Flush();
        System.Buffers.BuffersExtensions.Write(_line, "\n"u8);
        return _line.WrittenSpan;
    }

    /// <summary>Policy denials are incidents: forbidden access high, read-only writes medium, privilege refusals high. Response denials (blocked, suspended) and rule denials (their detection is the incident) are not.</summary>
    internal static Severity? DenialSeverity(string reason, Errno error)
    {
        if (reason.StartsWith("privilege:", StringComparison.Ordinal)) return Severity.High;
        bool policy = reason.StartsWith("forbidden:", StringComparison.Ordinal) || reason.StartsWith("readonly:", StringComparison.Ordinal)
            || reason.StartsWith("default:", StringComparison.Ordinal) || reason.StartsWith("ancestor:", StringComparison.Ordinal);
        if (!policy) return null;
        return error == Errno.EROFS ? Severity.Medium : Severity.High;
    }

    private void RaiseDenialIncident(FsEvent e, string reason, Severity severity)
    {
        // A process retrying the same denied path is one incident per window, not thousands.
        string key = string.Concat(e.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture), "|", reason, "|", e.Path);
        long now = Environment.TickCount64;
        if (_recentDenials.TryGetValue(key, out long at) && now - at < 10_000)
        {
            Interlocked.Increment(ref _suppressed);
            return;
        }

        if (_recentDenials.Count > 10_000) _recentDenials.Clear();
        _recentDenials[key] = now;

        CallerInfo? caller = e.Caller;
        string response = "deny";
        if (Controls.SuspendOn is Severity on && severity >= on)
        {
            response += ", " + Suspend(caller, reason);
        }

        FsEvent evidence = e.Clone();
        Incident inc = Incidents.Add(id => new Incident
        {
            Id = id,
            Time = DateTimeOffset.UtcNow,
            Source = reason,
            Severity = severity,
            ContainerId = e.ContainerId,
            Pid = e.Pid,
            ProcessName = e.ProcName,
            Uid = e.Uid,
            Output = $"{e.Op.Name()} {e.Path}{(e.Target is null ? "" : " -> " + e.Target)} denied ({(Errno)e.Result})",
            Evidence = [evidence],
            Response = response,
        });
        SecurityLog.IncidentRaised(_log, inc.Id, severity, reason, e.Pid, e.ProcName, inc.Output, response);
    }

    private void OnInlineDetection(Detection d, FsEvent access, CallerInfo? caller)
    {
        // State that must hold for the very next request is set here; incidents and freezing happen on the consumer.
        if (d.Mode == RuleMode.Enforce)
        {
            if ((d.Actions & ResponseAction.BlockProcess) != 0 && caller is not null) Block(caller);
            bool suspend = (d.Actions & ResponseAction.Suspend) != 0 || (Controls.SuspendOn is Severity on && d.Severity >= on);
            if (suspend && caller is { IsContainerMember: true }) _suspended = true;
        }

        _inlineDetections.Enqueue((d, access));
        _wakeup.Wake();
    }

    private void HandleDetection(Detection d, FsEvent e)
    {
        CallerInfo? caller = e.Caller;
        var taken = new List<string>();
        if (d.Mode == RuleMode.Monitor)
        {
            taken.Add("none (monitor)");
        }
        else
        {
            ResponseAction a = d.Actions;
            if ((a & ResponseAction.Deny) != 0) taken.Add("deny");
            bool suspend = (a & ResponseAction.Suspend) != 0 || (Controls.SuspendOn is Severity on && d.Severity >= on);
            if ((a & ResponseAction.Kill) != 0) taken.Add(KillCaller(caller));
            if (suspend) taken.Add(Suspend(caller, d.Rule));
            if ((a & ResponseAction.BlockProcess) != 0 && caller is not null)
            {
                Block(caller);
                taken.Add("block-process");
            }

            if (taken.Count == 0) taken.Add((a & ResponseAction.Alert) != 0 ? "alert" : "log");
        }

        string response = string.Join(", ", taken);
        Incident inc = Incidents.Add(id => new Incident
        {
            Id = id,
            Time = DateTimeOffset.UtcNow,
            Source = d.Rule,
            Severity = d.Severity,
            ContainerId = e.ContainerId,
            Pid = e.Pid,
            ProcessName = e.ProcName,
            Uid = e.Uid,
            Output = d.Output,
            Evidence = d.Evidence.Select(x => x.Clone()).ToList(),
            Response = response,
        });
        SecurityLog.IncidentRaised(_log, inc.Id, d.Severity, d.Rule, e.Pid, e.ProcName, d.Output, response);
    }

    // ---------------------------------------------------------------- responses

    /// <summary>Blocks a process: every further op from it fails with EPERM until <see cref="Resume"/>.</summary>
    public void Block(CallerInfo caller)
    {
        ArgumentNullException.ThrowIfNull(caller);
        if (_blocked.TryAdd((caller.Tgid, caller.ProcessStartTime), caller)) _blockedCount = _blocked.Count;
    }

    public bool IsBlocked(CallerInfo caller) => _blocked.ContainsKey((caller.Tgid, caller.ProcessStartTime));

    /// <summary>
    /// Suspends the container the caller belongs to. Host processes (and pid 0) are never frozen: they get a
    /// block-process instead. Further ops from members fail at once; the freeze itself runs off the request
    /// and consumer threads (a member blocked in a FUSE request cannot freeze until it is answered).
    /// Returns the response taken, for the incident.
    /// </summary>
    public string Suspend(CallerInfo? caller, string why)
    {
        if (caller is null || !caller.IsContainerMember)
        {
            if (caller is not null) Block(caller);
            string refused = $"suspend refused for pid {caller?.Pid ?? 0}: not a container member";
            SecurityLog.ResponseRefused(_log, refused);
            return caller is null ? "suspend refused (no caller)" : "block-process (host process: suspend refused)";
        }

        lock (_responseGate)
        {
            if (_suspended && (_suspendTask is not null || _suspendHandle is not null)) return "suspend (already suspended)";
            _suspended = true;
            if (_freezer is null)
            {
                Block(caller);
                return "suspend (no freezer: block-process)";
            }

            IEnumerable<CallerInfo> members = Callers.Snapshot().Where(c => c.IsContainerMember);
            ContainerFreezer freezer = _freezer;
            _suspendTask = Task.Run(() =>
            {
                try
                {
                    SuspendHandle h = freezer.Freeze(caller, members, Options.ContainerCgroup);
                    lock (_responseGate) _suspendHandle = h;
                    SecurityLog.Suspended(_log, $"{h} ({why})");
                }
                catch (Exception ex) when (ex is InvalidOperationException)
                {
                    // A guard refused: the container stays suspended in the daemon's eyes (its ops keep failing) until resume.
                    SecurityLog.ResponseRefused(_log, ex.Message);
                }
                catch (Exception ex)
                {
                    SecurityLog.ResponseFailed(_log, ex, "freeze");
                }
            });
            return "suspend";
        }
    }

    /// <summary>
    /// Operator suspend (control file "suspend"): freezes the configured container cgroup, else the cgroup
    /// of a live member seen so far. Returns the response taken, or why it was refused.
    /// </summary>
    public string SuspendContainer(string why)
    {
        CallerInfo? member = Callers.Snapshot().FirstOrDefault(c => c.IsContainerMember && !c.HasExited);
        if (member is not null) return Suspend(member, why);
        if (Options.ContainerCgroup is not string cg || _freezer is null) return "suspend refused: no container member seen and no container cgroup configured";
        lock (_responseGate)
        {
            if (_suspended) return "suspend (already suspended)";
            try
            {
                SuspendHandle? h = _freezer.TryFreezeCgroup(cg, cg);
                if (h is null) return $"suspend refused: cgroup {cg} not found";
                _suspendHandle = h;
                _suspended = true;
                SecurityLog.Suspended(_log, $"{h} ({why})");
                return "suspend";
            }
            catch (InvalidOperationException ex)
            {
                SecurityLog.ResponseRefused(_log, ex.Message);
                return "suspend refused: " + ex.Message;
            }
        }
    }

    private string KillCaller(CallerInfo? caller)
    {
        if (caller is null || !caller.IsContainerMember)
        {
            if (caller is not null) Block(caller);
            return caller is null ? "kill refused (no caller)" : "block-process (host process: kill refused)";
        }

        if (!Callers.StillSameProcess(caller)) return "kill skipped (process gone)";
        try
        {
            Errno e = ContainerFreezer.Kill(caller);
            return e == Errno.OK ? "kill" : $"kill failed ({e})";
        }
        catch (InvalidOperationException ex)
        {
            SecurityLog.ResponseRefused(_log, ex.Message);
            return "kill refused";
        }
    }

    /// <summary>Thaws the container and lifts every process block.</summary>
    public void Resume()
    {
        Task? pending;
        lock (_responseGate) pending = _suspendTask;
        pending?.Wait(TimeSpan.FromSeconds(10));
        lock (_responseGate)
        {
            if (_suspendHandle is SuspendHandle h && _freezer is not null)
            {
                try
                {
                    _freezer.Thaw(h);
                    SecurityLog.Resumed(_log, h.ToString());
                }
                catch (IOException ex)
                {
                    SecurityLog.ResponseFailed(_log, ex, "thaw");
                }
            }

            _suspendHandle = null;
            _suspendTask = null;
            _suspended = false;
            _blocked.Clear();
            _blockedCount = 0;
        }
    }

    public bool Acknowledge(string incidentId) => SetStatus(incidentId, IncidentStatus.Acknowledged);

    public bool ResolveIncident(string incidentId) => SetStatus(incidentId, IncidentStatus.Resolved);

    private bool SetStatus(string id, IncidentStatus s)
    {
        bool ok = Incidents.SetStatus(id, s);
        Incidents.Flush();
        return ok;
    }

    private static ContainerFreezer? TryCreateFreezer()
    {
        try
        {
            return new ContainerFreezer();
        }
        catch (IOException)
        {
            return null;
        }
    }

    public void Dispose()
    {
        _queue.Writer.TryComplete();
        _wakeup.Wake();
        _consumer.Join(TimeSpan.FromSeconds(10));
        _wakeup.Dispose();
        _lineWriter.Dispose();
        _journal?.Dispose();
        Incidents.Dispose();
        if (_ownsCallers) Callers.Dispose();
    }
}
