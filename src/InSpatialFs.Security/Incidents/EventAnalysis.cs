using System.Collections.Concurrent;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Identity;
using InSpatialFs.Security.Policy;
using InSpatialFs.Security.Responses;

namespace InSpatialFs.Security.Incidents;

/// <summary>
/// The consumer's analysis stage, before an event goes to the sinks: the rule engine's Analyze, and what becomes an
/// incident or a response (<see cref="IncidentRaiser"/>): detections, policy denials, runtime-written exec alerts,
/// bursts of dropped events. Inline detections (found while deciding, on a request thread) set the state the very
/// next request must see right away (<see cref="OnInlineDetection"/>) and are raised here, before the next batch.
/// </summary>
internal sealed class EventAnalysis(IRuleEngine? rules, IncidentRaiser raiser, Responder responder, EffectiveControls controls)
{
    private readonly ConcurrentQueue<(Detection Detection, FsEvent Access)> _inlineDetections = new();
    private readonly List<Detection> _detections = [];

    /// <summary>Wakes the consumer so queued inline detections are raised without waiting for the next event.</summary>
    public Action? Wake { get; set; }

    public bool HasInlineDetections => !_inlineDetections.IsEmpty;

    /// <summary>On a request thread, from the decision step.</summary>
    public void OnInlineDetection(Detection d, FsEvent access, CallerInfo? caller)
    {
        // State that must hold for the very next request is set here; incidents and freezing happen on the consumer.
        if (d.Mode == RuleMode.Enforce && caller is not null)
        {
            if ((d.Actions & ResponseAction.BlockProcess) != 0) responder.Block(caller);
            bool suspend = (d.Actions & ResponseAction.Suspend) != 0 || (controls.SuspendOn is Severity on && d.Severity >= on);
            if (suspend) responder.MarkSuspended(caller);
        }

        _inlineDetections.Enqueue((d, access));
        Wake?.Invoke();
    }

    /// <summary>On the consumer thread, before each batch.</summary>
    public void DrainInlineDetections()
    {
        while (_inlineDetections.TryDequeue(out (Detection Detection, FsEvent Access) d)) raiser.OnDetection(d.Detection, d.Access);
    }

    /// <summary>On the consumer thread, per event.</summary>
    public void Analyze(FsEvent e)
    {
        if (rules is not null)
        {
            _detections.Clear();
            rules.Analyze(e, _detections);
            foreach (Detection d in _detections) raiser.OnDetection(d, e);
        }

        if (e.Decision == Decision.Deny) raiser.OnDenial(e);
        else if (e.Why.Kind == ReasonKind.ExecAlert) raiser.OnAlert(e);
    }

    /// <summary>After each batch, with the events dropped so far.</summary>
    public void AfterBatch(long dropped) => raiser.OnDropped(dropped);
}
