using InSpatialFs.Interop;
using InSpatialFs.Security.Decisions;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Identity;
using InSpatialFs.Security.Incidents;
using InSpatialFs.Security.Policy;
using InSpatialFs.Security.Resources;
using InSpatialFs.Security.Responses;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace InSpatialFs.Security;

/// <summary>An event subscriber: the event and its JSON line (newline included), valid only during the call.</summary>
public delegate void EventLineHandler(FsEvent e, ReadOnlySpan<byte> jsonLine);

/// <summary>
/// The security manager: a façade over the pieces, split along Falco's seams so each has one reason to change:
/// <list type="bullet">
/// <item>decision (<see cref="AccessDecider"/>): decides every operation before it runs and returns a typed <see cref="Verdict"/>;</item>
/// <item>event pipeline (<see cref="EventPipeline"/>): <see cref="Record"/> queues the finished operation for the one consumer thread;</item>
/// <item>analysis and incidents (<see cref="EventAnalysis"/>, <see cref="IncidentRaiser"/>, <see cref="IncidentStore"/>):
/// the rule engine's Analyze, and what becomes an incident;</item>
/// <item>sinks (<see cref="EventSinks"/>): the journal and subscribers, each event serialised once;</item>
/// <item>responder (<see cref="Responder"/>): deny, block-process, suspend, kill, resume;</item>
/// <item>counters (<see cref="DecisionCounters"/>, <see cref="Counters"/>) and reload (<see cref="ReplacePaths"/>).</item>
/// </list>
/// Contract with the proxy: call Record for every decided op, denied ones included (denial incidents
/// come from the recorded event); after Record the event object belongs to the manager.
/// Lock order: Responder._gate &gt; IncidentStore._gate; the sinks' subscriber lock alone. Decide takes no lock.
/// </summary>
public sealed class SecurityManager : ISecurityGate, IDisposable
{
    private readonly ILogger _log;
    private readonly Interop.Diagnostics.LogThrottle _incidentFailureLines = new(1, TimeSpan.FromMinutes(1));
    private readonly AccessDecider _decider;
    private readonly DecisionCounters _counters = new();
    private readonly EventPipeline _pipeline;
    private readonly EventAnalysis _analysis;
    private readonly EventSinks _sinks;
    private readonly Responder _responder;
    private readonly IncidentRaiser _raiser;
    private readonly bool _ownsCallers;
    private long _seq, _lastDropLog;

    public SecurityManager(SecurityOptions options, IRuleEngine? rules = null, ILogger? log = null, CallerRegistry? callers = null, ContainerFreezer? freezer = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        _log = log ?? NullLogger.Instance;
        EffectiveControls controls = EffectiveControls.Resolve(options);
        var resources = new ResourceGovernor(controls.Resources, options.StateDir);
        var runtimeWritten = new RuntimeWrittenObjects(journalPath: options.StateDir is null ? null : Path.Combine(options.StateDir, "runtime-written.marks"));
        _ownsCallers = callers is null;
        callers ??= new CallerRegistry(options.Mountpoint, options.ContainerCgroup);
        if (options.Membership.InitPid is int init && callers.RecordInit(init) is string refused)
        {
            // Going on would fall back to the weakest proof (any process whose root is the mount): a typo must not widen
            // who counts as the container.
            runtimeWritten.Dispose();
            resources.Dispose(); // its ledger job would otherwise stay on the housekeeping thread
            if (_ownsCallers) callers.Dispose();
            throw new InvalidOperationException($"container.init_pid cannot be used ({refused}); the instance does not start with a weaker membership proof");
        }

        Incidents = new IncidentStore(options.StateDir, _log, options.Incidents);
        _responder = new Responder(callers, freezer ?? TryCreateFreezer(), options.ContainerCgroup, _log, (what, error) => _raiser!.OnResponseFailure(what, error));
        _responder.AnswersChanged = why => CachedAnswersChanged?.Invoke(why);
        _raiser = new IncidentRaiser(Incidents, _responder, controls, _log);
        _analysis = new EventAnalysis(rules, _raiser, _responder, controls);
        _decider = new AccessDecider(options, controls, rules, callers, _responder, resources, runtimeWritten, _counters, _analysis.OnInlineDetection);
        _sinks = new EventSinks(options.StateDir is not null && options.JournalEvents
            ? new EventJournal(options.StateDir, options.JournalRotateBytes, options.JournalKeep)
            : null, _log);

        foreach (string w in controls.Warnings) SecurityLog.Relaxation(_log, w);

        _pipeline = new EventPipeline(options.EventQueueCapacity, e => rules?.MustSee(e) == true, Process, AfterBatch,
            () => _analysis.HasInlineDetections, _analysis.DrainInlineDetections, (ex, e) => SecurityLog.ConsumerFailed(_log, ex, e?.Seq ?? 0));
        _analysis.Wake = _pipeline.Wake;
    }

    /// <summary>
    /// Raised when an answer the proxy gave may no longer hold for someone (a process blocked, the container suspended),
    /// so whatever the kernel cached of it must go. May be raised on a FUSE reader thread: handlers must not block.
    /// </summary>
    public event Action<string>? CachedAnswersChanged;

    public SecurityOptions Options { get; private set; }
    public EffectiveControls Controls => _decider.Controls;
    public PathPolicy Policy => _decider.Policy;
    public ResourceGovernor Resources => _decider.Resources;
    public RuntimeWrittenObjects RuntimeWritten => _decider.RuntimeWritten;
    public CallerRegistry Callers => _decider.Callers;
    public IncidentStore Incidents { get; }
    /// <summary>Relaxation warnings: the daemon prints them at start, the control files show them.</summary>
    public IReadOnlyList<string> Warnings => Controls.Warnings;
    public bool IsSuspended => _responder.IsSuspended;
    /// <summary>How the current suspension was done (null when not suspended or still freezing).</summary>
    public SuspendHandle? CurrentSuspension => _responder.Current;

    /// <summary>Status lines: who is treated as what (membership proofs, host users, pinned callers by proof).</summary>
    public IReadOnlyList<(string Key, string Value)> MembershipStatus() => MembershipReport.Lines(Callers, Options.Membership, _decider.ContainerHasQuotas);

    /// <summary>Records the container's init (control command <c>container-init PID</c>); null, or why it was refused.</summary>
    public string? RecordContainerInit(int pid) => Callers.RecordInit(pid);

    // ---------------------------------------------------------------- request path (ISecurityGate)

    public PathClass Classify(string path) => Policy.Classify(path);

    public bool MayForbidChildrenOf(string dirPath) => Policy.MayForbidChildrenOf(dirPath);

    /// <summary>Classes that follow multiply-linked files to their other names.</summary>
    public ProtectedObjects ProtectedObjects => _decider.ProtectedObjects;

    public IReadOnlyList<string> ProtectedRoots => Policy.ProtectedRoots;

    public void NoteLinkedObject(in InodeIdentity obj, string path) => ProtectedObjects.Mark(obj, Policy.Match(path));

    public void ObjectCopied(in InodeIdentity original, in InodeIdentity copy)
    {
        ProtectedObjects.Carry(original, copy);
        RuntimeWritten.Carry(original, copy);
    }

    public Verdict Decide(FsEvent access)
    {
        ArgumentNullException.ThrowIfNull(access);
        return _decider.Decide(access);
    }

    public TimeSpan DataDelay(uint pid, FsOp op, long bytes) => _decider.DataDelay(pid, op, bytes);

    public OpenFileCharge TryOpenFile(uint pid) => _decider.TryOpenFile(pid);

    public void FileClosed() => Resources.FileClosed();

    public QuotaAccount? QuotaFor(string mountPath) =>
        Resources.Limits.DiskBytes is null && Resources.Limits.Inodes is null ? null : Resources.Account(mountPath);

    public void Record(FsEvent completed)
    {
        ArgumentNullException.ThrowIfNull(completed);
        completed.Seq = (ulong)Interlocked.Increment(ref _seq);
        // Events the proxy records without a decision (readdir, release) take the caller pinned by its earlier ops;
        // never a new pin here: a RELEASE often comes after its process exited, and its pid may name another by now.
        if (completed.Caller is null && completed.ProcName is null) _decider.Identify(completed, pinNew: false);
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

    // ---------------------------------------------------------------- reload

    /// <summary>
    /// A reload's new path classes (`paths:`), compiled, then swapped in at once. The isolation level and the controls
    /// stay (a restart changes those). Objects already marked through a hard link keep the class they were marked with.
    /// Whoever calls this must then drop what the kernel cached (the proxy's InvalidateKernelCaches).
    /// </summary>
    public void ReplacePaths(IReadOnlyList<string> forbidden, IReadOnlyList<string> readOnly, IReadOnlyList<string> allowed)
    {
        SecurityOptions next = Options with { Forbidden = forbidden, ReadOnly = readOnly, Allowed = allowed };
        _decider.ReplacePolicy(PathPolicy.FromOptions(next));
        Options = next;
    }

    // ---------------------------------------------------------------- sinks and counters

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
    public IDisposable Subscribe(EventLineHandler onEvent) => _sinks.Subscribe(onEvent);

    public SecurityCounters Counters() =>
        new(_counters.Decisions, _counters.Denials, Resources.ThrottledOps,
            _pipeline.Recorded, _pipeline.Dropped, _pipeline.Processed,
            Incidents.Total, Incidents.Repeats, _responder.IsSuspended, _responder.BlockedCount, Resources.OpenFiles, _counters.PerOp())
        {
            IncidentRepeats = Incidents.Repeats,
            IncidentsSuppressed = Incidents.Suppressed,
            IncidentsOpen = Incidents.OpenCount,
            EventsWaited = _pipeline.Waited,
            HostDenials = _counters.HostDenials,
        };

    /// <summary>Waits until every event recorded so far has been analysed and flushed, and no freeze is running (tests, shutdown).</summary>
    public bool WaitIdle(TimeSpan timeout) => _pipeline.WaitIdle(timeout, () => !_responder.Busy);

    // ---------------------------------------------------------------- consumer thread

    private void Process(FsEvent e)
    {
        _analysis.Analyze(e);
        _sinks.Publish(e);
    }

    private void AfterBatch(long dropped)
    {
        _analysis.AfterBatch(dropped);
        _sinks.Flush();
        try
        {
            Incidents.Flush();
        }
        catch (IOException ex) when (_incidentFailureLines.Allow(out long notLogged))
        {
            // Kept and written again at the next flush: an incident is not lost to a full disk while the daemon runs.
            SecurityLog.RecordWriteFailed(_log, "incident log " + IncidentStore.FileName, ex.Message, "incidents are kept and written once it can be", notLogged);
        }
        catch (IOException)
        {
        }
    }

    // ---------------------------------------------------------------- responses and incidents (operator commands)

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
        _sinks.Dispose();
        Resources.Dispose();
        RuntimeWritten.Dispose();
        Incidents.Dispose();
        _responder.Dispose();
        if (_ownsCallers) Callers.Dispose();
    }
}
