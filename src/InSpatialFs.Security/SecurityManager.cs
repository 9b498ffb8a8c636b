using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
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
    IReadOnlyDictionary<string, long> PerOp)
{
    /// <summary>Occurrences folded into an open incident of the same (source, process, path).</summary>
    public long IncidentRepeats { get; init; }
    /// <summary>Occurrences a source's incident rate limit kept from opening incidents.</summary>
    public long IncidentsSuppressed { get; init; }
    public int IncidentsOpen { get; init; }
    /// <summary>Critical events (never dropped) whose request waited for room in the event queue.</summary>
    public long EventsWaited { get; init; }
    /// <summary>Operations of host processes refused by host_users.</summary>
    public long HostDenials { get; init; }
}

/// <summary>An event subscriber: the event and its JSON line (newline included), valid only during the call.</summary>
public delegate void EventLineHandler(FsEvent e, ReadOnlySpan<byte> jsonLine);

/// <summary>
/// The security manager: decides every operation before it runs (<see cref="Decide"/>: caller identity →
/// blocked process → suspended container → host_users → path policy → privilege and code controls → throttle →
/// inline rules), records it after (<see cref="Record"/> into the <see cref="EventPipeline"/>, whose consumer feeds
/// the rule engine's Analyze, incidents (<see cref="IncidentRaiser"/>), the journal and subscribers), and takes
/// responses through the <see cref="Responder"/> (deny, block-process, suspend, kill, resume).
/// While the container is suspended its further operations fail with EPERM rather than being held:
/// holding them would park FUSE reader threads and starve every other caller, including the operator's.
/// Contract with the proxy: call Record for every decided op, denied ones included (denial incidents
/// come from the recorded event); after Record the event object belongs to the manager.
/// Lock order: Responder._gate > IncidentStore._gate; _subscriberGate alone. Decide takes no lock.
/// </summary>
public sealed class SecurityManager : ISecurityGate, IDisposable
{
    [ThreadStatic]
    private static List<Detection>? t_inlineDetections;

    private readonly IRuleEngine? _rules;
    private readonly ILogger _log;
    private readonly string _containerName;
    private readonly EventPipeline _pipeline;
    private readonly Responder _responder;
    private readonly IncidentRaiser _raiser;
    private readonly ConcurrentQueue<(Detection Detection, FsEvent Access)> _inlineDetections = new();
    private readonly List<Detection> _detections = [];
    private readonly EventJournal? _journal;
    private readonly object _subscriberGate = new();
    private readonly long[] _perOp = new long[FsOpNames.Count];
    private readonly bool _ownsCallers;
    private readonly bool _containerHasQuotas;
    private volatile EventLineHandler[] _subscribers = [];
    // The consumer serialises each event once; the journal and every subscriber get the same bytes.
    private readonly System.Buffers.ArrayBufferWriter<byte> _line = new(1024);
    private readonly Utf8JsonWriter _lineWriter;
    private long _decisions, _denials, _hostDenials, _seq, _lastDropLog;

    public SecurityManager(SecurityOptions options, IRuleEngine? rules = null, ILogger? log = null, CallerRegistry? callers = null, ContainerFreezer? freezer = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        _rules = rules;
        _log = log ?? NullLogger.Instance;
        _containerName = options.ContainerName;
        Controls = EffectiveControls.Resolve(options);
        _policy = PathPolicy.FromOptions(options);
        Resources = new ResourceGovernor(Controls.Resources, options.StateDir);
        RuntimeWritten = new RuntimeWrittenObjects(journalPath: options.StateDir is null ? null : Path.Combine(options.StateDir, "runtime-written.marks"));
        _ownsCallers = callers is null;
        Callers = callers ?? new CallerRegistry(options.Mountpoint, options.ContainerCgroup);
        ResourceLimits r = Controls.Resources;
        _containerHasQuotas = r.DiskBytes is not null || r.Inodes is not null || r.MemoryBytes is not null;
        Incidents = new IncidentStore(options.StateDir, _log, options.Incidents);
        _responder = new Responder(Callers, freezer ?? TryCreateFreezer(), options.ContainerCgroup, _log, (what, error) => _raiser!.OnResponseFailure(what, error));
        _responder.AnswersChanged = why => CachedAnswersChanged?.Invoke(why);
        _raiser = new IncidentRaiser(Incidents, _responder, Controls, _log);
        if (options.StateDir is not null && options.JournalEvents)
        {
            _journal = new EventJournal(options.StateDir, options.JournalRotateBytes, options.JournalKeep);
        }

        foreach (string w in Controls.Warnings) SecurityLog.Relaxation(_log, w);
        if (options.Membership.InitPid is int init && Callers.RecordInit(init) is string refused) SecurityLog.ResponseRefused(_log, refused);

        _lineWriter = new Utf8JsonWriter(_line);
        _pipeline = new EventPipeline(options.EventQueueCapacity, e => _rules?.MustSee(e) == true, Process, AfterBatch,
            () => !_inlineDetections.IsEmpty, DrainInlineDetections, (ex, e) => SecurityLog.ConsumerFailed(_log, ex, e?.Seq ?? 0));
    }

    /// <summary>
    /// Raised when an answer the proxy gave may no longer hold for someone (a process blocked, the container suspended),
    /// so whatever the kernel cached of it must go. May be raised on a FUSE reader thread: handlers must not block.
    /// </summary>
    public event Action<string>? CachedAnswersChanged;

    public SecurityOptions Options { get; private set; }
    public EffectiveControls Controls { get; }

    // Swapped whole by ReplacePaths (a reload): a decision reads it once and sees the old classes or the new ones.
    private volatile PathPolicy _policy;

    public PathPolicy Policy => _policy;
    public ResourceGovernor Resources { get; }
    public RuntimeWrittenObjects RuntimeWritten { get; }
    public CallerRegistry Callers { get; }
    public IncidentStore Incidents { get; }
    /// <summary>Relaxation warnings: the daemon prints them at start, the control files show them.</summary>
    public IReadOnlyList<string> Warnings => Controls.Warnings;
    public bool IsSuspended => _responder.IsSuspended;
    /// <summary>How the current suspension was done (null when not suspended or still freezing).</summary>
    public SuspendHandle? CurrentSuspension => _responder.Current;

    /// <summary>Status lines: who is treated as what (membership proofs, host users, pinned callers by proof).</summary>
    public IReadOnlyList<(string Key, string Value)> MembershipStatus() => MembershipReport.Lines(Callers, Options.Membership, _containerHasQuotas);

    /// <summary>Records the container's init (control command <c>container-init PID</c>); null, or why it was refused.</summary>
    public string? RecordContainerInit(int pid) => Callers.RecordInit(pid);

    // ---------------------------------------------------------------- request path

    public PathClass Classify(string path) => Policy.Classify(path);

    public bool MayForbidChildrenOf(string dirPath) => Policy.MayForbidChildrenOf(dirPath);

    /// <summary>Classes that follow multiply-linked files to their other names.</summary>
    public ProtectedObjects ProtectedObjects { get; } = new();

    public IReadOnlyList<string> ProtectedRoots => Policy.ProtectedRoots;

    public void NoteLinkedObject(in InodeIdentity obj, string path) => ProtectedObjects.Mark(obj, Policy.Match(path));

    /// <summary>
    /// A reload's new path classes (`paths:`), compiled, then swapped in at once. The isolation level and the controls
    /// stay (a restart changes those). Objects already marked through a hard link keep the class they were marked with.
    /// Whoever calls this must then drop what the kernel cached (the proxy's InvalidateKernelCaches).
    /// </summary>
    public void ReplacePaths(IReadOnlyList<string> forbidden, IReadOnlyList<string> readOnly, IReadOnlyList<string> allowed)
    {
        SecurityOptions next = Options with { Forbidden = forbidden, ReadOnly = readOnly, Allowed = allowed };
        _policy = PathPolicy.FromOptions(next);
        Options = next;
    }

    public Verdict Decide(FsEvent access)
    {
        ArgumentNullException.ThrowIfNull(access);
        FsEvent a = access;
        Interlocked.Increment(ref _decisions);
        Interlocked.Increment(ref _perOp[(int)a.Op]);
        CallerInfo? caller = Identify(a);
        bool member = caller?.IsContainerMember == true;
        if (caller is not null && _responder.IsBlocked(caller)) return Deny(a, Errno.EPERM, VerdictReason.ProcessBlocked, null);
        if (member && _responder.IsSuspended) return Deny(a, Errno.EPERM, VerdictReason.Suspended, null);

        bool exec = a.Op == FsOp.Open && (a.IsExec || (a.Flags & LibC.FMODE_EXEC) != 0);
        a.IsExec |= exec;
        bool write = IsWriteAccess(a);
        // pid 0 is the kernel acting for an earlier request; a pid that could not be pinned (it exited mid-request)
        // is held to host_users, so a process cannot slip past them by exiting.
        if (!member && a.Pid > 0)
        {
            HostAccess hostAccess = a.Uid == 0 ? Options.Membership.HostRoot : Options.Membership.HostUsers;
            if (HostAccessRules.Refusal(hostAccess, a, write, _containerHasQuotas) is VerdictReason hostReason)
            {
                Interlocked.Increment(ref _hostDenials);
                return Deny(a, Errno.EACCES, hostReason, null);
            }
        }

        PathPolicy policy = _policy; // one policy per decision, even across a reload
        PathMatch m = ProtectedObjects.Apply(a.Object, policy.Match(a.Path));
        a.PolicyClass = m.Class;
        if (m.Class == PathClass.Forbidden) return Deny(a, Errno.EACCES, m.Why, m.Class);

        if (exec && caller is not null) Callers.NoteExec(caller.Pid);
        if (write && m.Class == PathClass.ReadOnly) return Deny(a, Errno.EROFS, m.Why, m.Class);

        if (a.Target is string target && a.Op is FsOp.Rename or FsOp.Link or FsOp.CopyFileRange)
        {
            PathMatch t = policy.Match(target);
            if (t.Class == PathClass.Forbidden) return Deny(a, Errno.EACCES, t.Why, m.Class);
            if (t.Class == PathClass.ReadOnly) return Deny(a, Errno.EROFS, t.Why, m.Class);
            if (a.Op == FsOp.Rename)
            {
                // The objects below a renamed directory keep their classes; an exchange moves both ways.
                VerdictReason? exposed = policy.RenameWouldExpose(a.Path, target)
                    ?? ((a.Flags & LibC.RENAME_EXCHANGE) != 0 ? policy.RenameWouldExpose(target, a.Path) : null);
                if (exposed is VerdictReason x) return Deny(a, Errno.EACCES, x, m.Class);
            }
        }

        if (PrivilegeControls.Check(Controls, a, m.Class) is VerdictReason refused) return Deny(a, Errno.EPERM, refused, m.Class);

        // Exec control follows the object (its identity), not the name it has now. The loader and interpreters read
        // code with plain read-opens, so at the deny setting those are refused too (CodeLoaders says who they are);
        // at alert, an exec is allowed and the consumer raises the incident.
        if (a.Op == FsOp.Open && Controls.RuntimeWrittenExec != RuntimeWrittenExec.Allow && RuntimeWritten.Contains(a.Object))
        {
            if (Controls.RuntimeWrittenExec == RuntimeWrittenExec.Deny)
            {
                if (exec) return Deny(a, Errno.EPERM, PrivilegeControls.RuntimeWrittenExec, m.Class);
                if (!write && CodeLoaders.IsLoaderOrInterpreter(caller?.Name)) return Deny(a, Errno.EPERM, PrivilegeControls.RuntimeWrittenInterpreted, m.Class);
            }
            else if (exec)
            {
                a.Why = VerdictReason.ExecAlert;
            }
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

            if (rv.IsDenied) return Deny(a, rv.Error == Errno.OK ? Errno.EPERM : rv.Error, rv.Why.IsNone ? VerdictReason.Rule("rule") : rv.Why, m.Class);
            if (rv.Decision == Decision.WouldDeny)
            {
                decision = Decision.WouldDeny;
                a.Why = rv.Why;
            }
        }

        if (decision == Decision.Allow && a.Op is FsOp.Open or FsOp.Create && Controls.AllowDirect && !exec
            && (Controls.Level == IsolationLevel.Standard || !write))
        {
            decision = Decision.AllowDirect;
        }

        a.Decision = decision;
        return new Verdict(decision, Errno.OK, m.Class, a.Why, delay, exec);
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

    private Verdict Deny(FsEvent a, Errno error, VerdictReason reason, PathClass? cls)
    {
        Interlocked.Increment(ref _denials);
        a.Decision = Decision.Deny;
        a.Why = reason;
        a.Result = (int)error;
        return Verdict.Deny(error, reason, cls) with { IsExec = a.IsExec };
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

    public OpenFileCharge TryOpenFile(uint pid)
    {
        if (Resources.Limits.OpenFiles is null) return OpenFileCharge.NotCounted;
        // Decide pinned the caller just before; a host process (the operator, a backup) is not held to the container's cap.
        if (Callers.Cached((int)pid) is not { IsContainerMember: true }) return OpenFileCharge.NotCounted;
        return Resources.TryOpenFile() == Errno.OK ? OpenFileCharge.Counted : OpenFileCharge.Refused;
    }

    public void FileClosed() => Resources.FileClosed();

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
        if (_pipeline.Record(completed)) return;

        long now = Environment.TickCount64;
        long last = Volatile.Read(ref _lastDropLog);
        if (now - last >= 1000 && Interlocked.CompareExchange(ref _lastDropLog, now, last) == last)
        {
            SecurityLog.EventsDropped(_log, _pipeline.Dropped);
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
        lock (_subscriberGate) _subscribers = [.. _subscribers, onEvent];
        return new Subscription(this, onEvent);
    }

    private sealed class Subscription(SecurityManager owner, EventLineHandler action) : IDisposable
    {
        public void Dispose()
        {
            lock (owner._subscriberGate) owner._subscribers = owner._subscribers.Where(a => a != action).ToArray();
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
            _pipeline.Recorded, _pipeline.Dropped, _pipeline.Processed,
            Incidents.Total, Incidents.Repeats, _responder.IsSuspended, _responder.BlockedCount, Resources.OpenFiles, perOp)
        {
            IncidentRepeats = Incidents.Repeats,
            IncidentsSuppressed = Incidents.Suppressed,
            IncidentsOpen = Incidents.OpenCount,
            EventsWaited = _pipeline.Waited,
            HostDenials = Volatile.Read(ref _hostDenials),
        };
    }

    /// <summary>Waits until every event recorded so far has been analysed and flushed, and no freeze is running (tests, shutdown).</summary>
    public bool WaitIdle(TimeSpan timeout) => _pipeline.WaitIdle(timeout, () => !_responder.Busy);

    // ---------------------------------------------------------------- consumer

    private void DrainInlineDetections()
    {
        while (_inlineDetections.TryDequeue(out (Detection Detection, FsEvent Access) d)) _raiser.OnDetection(d.Detection, d.Access);
    }

    private void Process(FsEvent e)
    {
        if (_rules is not null)
        {
            _detections.Clear();
            _rules.Analyze(e, _detections);
            foreach (Detection d in _detections) _raiser.OnDetection(d, e);
        }

        if (e.Decision == Decision.Deny) _raiser.OnDenial(e);
        else if (e.Why.Kind == ReasonKind.ExecAlert) _raiser.OnAlert(e);

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

    private void AfterBatch(long dropped)
    {
        _raiser.OnDropped(dropped);
        try
        {
            _journal?.Flush();
            Incidents.Flush();
        }
        catch (IOException ex)
        {
            SecurityLog.ResponseFailed(_log, ex, "journal flush");
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

    private void OnInlineDetection(Detection d, FsEvent access, CallerInfo? caller)
    {
        // State that must hold for the very next request is set here; incidents and freezing happen on the consumer.
        if (d.Mode == RuleMode.Enforce && caller is not null)
        {
            if ((d.Actions & ResponseAction.BlockProcess) != 0) _responder.Block(caller);
            bool suspend = (d.Actions & ResponseAction.Suspend) != 0 || (Controls.SuspendOn is Severity on && d.Severity >= on);
            if (suspend) _responder.MarkSuspended(caller);
        }

        _inlineDetections.Enqueue((d, access));
        _pipeline.Wake();
    }

    // ---------------------------------------------------------------- responses

    /// <summary>Blocks a process: every further op from it fails with EPERM until <see cref="Resume"/>.</summary>
    public void Block(CallerInfo caller)
    {
        ArgumentNullException.ThrowIfNull(caller);
        _responder.Block(caller);
    }

    public bool IsBlocked(CallerInfo caller)
    {
        ArgumentNullException.ThrowIfNull(caller);
        return _responder.IsBlocked(caller);
    }

    /// <summary>Suspends the container the caller belongs to (host processes get a block); returns the response taken.</summary>
    public string Suspend(CallerInfo? caller, string why) => _responder.Suspend(caller, why);

    /// <summary>Operator suspend (control file "suspend"); returns the response taken, or why it was refused.</summary>
    public string SuspendContainer(string why) => _responder.SuspendContainer(why);

    /// <summary>Thaws the container (whatever the suspension froze or stopped) and lifts every process block.</summary>
    public void Resume()
    {
        _responder.Resume();
        Incidents.Flush(); // a failed thaw is an incident: written now, not at the next event batch
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
        _pipeline.Dispose();
        _lineWriter.Dispose();
        _journal?.Dispose();
        Resources.Dispose();
        RuntimeWritten.Dispose();
        Incidents.Dispose();
        _responder.Dispose();
        if (_ownsCallers) Callers.Dispose();
    }
}
