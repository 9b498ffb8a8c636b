using System.Globalization;
using InSpatialFs.Interop;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Identity;
using InSpatialFs.Security.Policy;
using InSpatialFs.Security.Responses;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.Security.Incidents;

/// <summary>
/// Turns what the event consumer sees into incidents and responses: policy denials, rule detections, runtime-written
/// exec alerts, failed responses and bursts of dropped events. Responses are taken for every occurrence (a rate
/// limit quiets reports, never enforcement); the incident store folds repeats and rate-limits new incidents.
/// Runs on the consumer thread, except <see cref="OnResponseFailure"/>, which any thread may call.
/// </summary>
internal sealed class IncidentRaiser(IncidentStore store, Responder responder, EffectiveControls controls, ILogger log)
{
    /// <summary>The source of runtime-written exec alerts (the text of <see cref="VerdictReason.ExecAlert"/>).</summary>
    public static readonly string AlertRuntimeWrittenExec = VerdictReason.ExecAlert.Text!;
    public const string ResponseFailed = "response:failed";
    public const string EventsDropped = "events:dropped";

    /// <summary>A drop burst ends after this long without a new drop; the next drop opens a new incident.</summary>
    private static readonly TimeSpan DropBurstGap = TimeSpan.FromSeconds(5);

    private long _droppedSeen;
    private string? _dropBurst;
    private DateTime _lastDrop;

    /// <summary>
    /// Policy denials are incidents: forbidden access high, read-only writes medium, privilege refusals high, host users
    /// refused by host_users medium. Response denials (blocked, suspended) and rule denials (their detection is the
    /// incident) are not.
    /// </summary>
    internal static Severity? DenialSeverity(VerdictReason reason, Errno error) => reason.Kind switch
    {
        ReasonKind.Privilege or ReasonKind.ExecDenied => Severity.High,
        ReasonKind.HostUsers => Severity.Medium,
        _ when reason.IsPathPolicy => error == Errno.EROFS ? Severity.Medium : Severity.High,
        _ => null,
    };

    /// <summary>A denied event: an incident (and the suspend_on response) when its reason is one of the policy's own.</summary>
    public void OnDenial(FsEvent e)
    {
        if (DenialSeverity(e.Why, (Errno)e.Result) is not Severity severity) return;
        string reason = e.Reason!;
        string response = "deny";
        if (controls.SuspendOn is Severity on && severity >= on) response += ", " + responder.Suspend(e.Caller, reason, e.TimeUnixNanos);
        Report(reason, severity, e, Describe(e) + $" denied ({(Errno)e.Result})", [e.Clone()], response);
    }

    public void OnAlert(FsEvent e) =>
        Report(AlertRuntimeWrittenExec, Severity.Medium, e, $"exec of {e.Path}, written at run time (exec.runtime_written: alert)", [e.Clone()], "alert");

    public void OnDetection(Detection d, FsEvent e)
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
            bool suspend = (a & ResponseAction.Suspend) != 0 || (controls.SuspendOn is Severity on && d.Severity >= on);
            if ((a & ResponseAction.Kill) != 0) taken.Add(responder.Kill(caller));
            if (suspend) taken.Add(responder.Suspend(caller, d.Rule, e.TimeUnixNanos));
            if ((a & ResponseAction.BlockProcess) != 0 && caller is not null)
            {
                responder.Block(caller);
                taken.Add("block-process");
            }

            if (taken.Count == 0) taken.Add((a & ResponseAction.Alert) != 0 ? "alert" : "log");
        }

        Report(d.Rule, d.Severity, e, d.Output, d.Evidence.Select(x => x.Clone()).ToList(), string.Join(", ", taken));
    }

    /// <summary>A response that could not be carried out: an incident (rate-limited like any source) and a log line.</summary>
    public void OnResponseFailure(string response, string error)
    {
        (Incident? inc, IncidentOutcome outcome) = store.Report(ResponseFailed, ResponseFailed + "|" + response + "|" + error, id => new Incident
        {
            Id = id,
            Time = DateTimeOffset.UtcNow,
            Source = ResponseFailed,
            Severity = Severity.High,
            Output = $"{response} failed: {error}",
            Response = "none",
        });
        if (outcome == IncidentOutcome.Opened) SecurityLog.IncidentRaised(log, inc!.Id, Severity.High, ResponseFailed, 0, null, inc.Output, "none");
    }

    /// <summary>
    /// After each batch: routine events dropped since the last call open one incident per burst, and the burst's
    /// incident counts every dropped event (a burst ends after <see cref="DropBurstGap"/> without drops).
    /// </summary>
    public void OnDropped(long droppedTotal)
    {
        long fresh = droppedTotal - _droppedSeen;
        DateTime now = DateTime.UtcNow;
        if (fresh <= 0)
        {
            if (_dropBurst is not null && now - _lastDrop > DropBurstGap) _dropBurst = null;
            return;
        }

        _droppedSeen = droppedTotal;
        _lastDrop = now;
        if (_dropBurst is not null && store.Get(_dropBurst) is { Status: IncidentStatus.Open })
        {
            store.AddOccurrences(_dropBurst, fresh);
            return;
        }

        Incident inc = store.Add(id => new Incident
        {
            Id = id,
            Time = DateTimeOffset.UtcNow,
            Source = EventsDropped,
            Severity = Severity.Medium,
            Output = "routine events dropped: the event queue was full (denials, execs, set-id changes and what rules wait for are never dropped)",
            Response = "none",
            Count = fresh,
        });
        _dropBurst = inc.Id;
        SecurityLog.IncidentRaised(log, inc.Id, Severity.Medium, EventsDropped, 0, null, inc.Output, "none");
    }

    private void Report(string source, Severity severity, FsEvent e, string? output, List<FsEvent> evidence, string response)
    {
        string key = string.Concat(source, "|", ProcessKey(e), "|", e.Path);
        (Incident? inc, IncidentOutcome outcome) = store.Report(source, key, id => new Incident
        {
            Id = id,
            Time = DateTimeOffset.UtcNow,
            Source = source,
            Severity = severity,
            ContainerId = e.ContainerId,
            Pid = e.Pid,
            ProcessName = e.ProcName,
            Uid = e.Uid,
            Output = output,
            Evidence = evidence,
            Response = response,
            Key = key,
        });
        if (outcome == IncidentOutcome.Opened) SecurityLog.IncidentRaised(log, inc!.Id, severity, source, e.Pid, e.ProcName, output, response);
    }

    /// <summary>The process as pinned (tgid and start time survive pid reuse), else the pid and name the event carries.</summary>
    private static string ProcessKey(FsEvent e) => e.Caller is CallerInfo c
        ? string.Create(CultureInfo.InvariantCulture, $"{c.Tgid}@{c.ProcessStartTime}")
        : string.Create(CultureInfo.InvariantCulture, $"{e.Pid}:{e.ProcName}");

    private static string Describe(FsEvent e) => $"{e.Op.Name()} {e.Path}{(e.Target is null ? "" : " -> " + e.Target)}";
}
