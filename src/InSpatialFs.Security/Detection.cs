using InSpatialFs.Security.Events;

namespace InSpatialFs.Security;

/// <summary>Severity of a detection or incident; Falco priority names map onto these.</summary>
public enum Severity : byte
{
    Info,
    Low,
    Medium,
    High,
    Critical,
}

/// <summary>What a rule asks for when it fires.</summary>
[Flags]
public enum ResponseAction
{
    None = 0,
    Log = 1,
    Alert = 2,
    Deny = 4,
    BlockProcess = 8,
    Suspend = 16,
    Kill = 32,
}

public enum RuleMode : byte
{
    Enforce,
    /// <summary>Detect and record only: a deny becomes "would deny".</summary>
    Monitor,
}

/// <summary>A rule that fired: the rule engine's output, the incident manager's input.</summary>
public sealed record Detection(
    string Rule,
    Severity Severity,
    ResponseAction Actions,
    RuleMode Mode,
    string Output,
    IReadOnlyList<FsEvent> Evidence)
{
    /// <summary>evt.seq of the event that completed the detection.</summary>
    public ulong CompletingSeq => Evidence.Count == 0 ? 0 : Evidence[^1].Seq;
}

/// <summary>The behavioural rule engine as the security manager uses it.</summary>
public interface IRuleEngine
{
    /// <summary>
    /// Request-path evaluation of inline rules (stateless and threshold rules with a deny action).
    /// Returns <see cref="Verdict.Allow"/> when nothing objects. Must not block; microseconds.
    /// </summary>
    Verdict EvaluateInline(FsEvent access, List<Detection> detections);

    /// <summary>Asynchronous evaluation of a completed event; appends what fired to <paramref name="detections"/>.</summary>
    void Analyze(FsEvent completed, List<Detection> detections);

    /// <summary>
    /// Whether <see cref="Analyze"/> may need this event (a sequence step or a threshold it could match). Such events are
    /// never dropped when the event queue is full. Called on the request path, but only while the queue is short of
    /// room; must not block.
    /// </summary>
    bool MustSee(FsEvent e) => false;
}
