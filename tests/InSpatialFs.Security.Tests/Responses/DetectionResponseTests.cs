using InSpatialFs.Interop;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Incidents;
using InSpatialFs.Security.Policy;

namespace InSpatialFs.Security.Tests.Responses;

/// <summary>A rule engine stand-in: fires a configured detection when an event's path matches.</summary>
/// <remarks><paramref name="ruleName"/> is the verdict's reason (the detection is always "inline-rule").</remarks>
internal sealed class ScriptedRules(string path, ResponseAction actions, RuleMode mode, Severity severity, bool inline, string ruleName = "rule:inline-rule") : IRuleEngine
{
    public Verdict EvaluateInline(FsEvent access, List<Detection> detections)
    {
        if (!inline || access.Path != path) return Verdict.Allow;
        detections.Add(new Detection("inline-rule", severity, actions, mode, "inline hit", [access]));
        if ((actions & ResponseAction.Deny) == 0) return Verdict.Allow;
        return mode == RuleMode.Monitor
            ? Verdict.WouldDeny(VerdictReason.Rule(ruleName))
            : Verdict.Deny(Errno.EPERM, VerdictReason.Rule(ruleName));
    }

    public void Analyze(FsEvent completed, List<Detection> detections)
    {
        if (!inline && completed.Path == path) detections.Add(new Detection("async-rule", severity, actions, mode, "async hit", [completed]));
    }
}

public sealed class DetectionResponseTests
{
    private static SecurityOptions Std() => new() { Level = IsolationLevel.Standard, Mountpoint = "/nonexistent-root" };

    [Test]
    public void An_inline_deny_rule_denies_and_becomes_an_incident()
    {
        using var sm = new SecurityManager(Std(), new ScriptedRules("/tmp/bad", ResponseAction.Deny, RuleMode.Enforce, Severity.Medium, inline: true));
        var e = new FsEvent { Op = FsOp.Open, Path = "/tmp/bad" };
        Verdict v = sm.Decide(e);
        Assert.That((v.Error, v.Reason), Is.EqualTo((Errno.EPERM, "rule:inline-rule")));
        sm.Record(e);
        Assert.That(sm.WaitIdle(TimeSpan.FromSeconds(5)), Is.True);
        Incident inc = sm.Incidents.List().Single();
        Assert.That((inc.Source, inc.Response), Is.EqualTo(("inline-rule", "deny")));
    }

    [Test]
    public void A_monitor_mode_rule_records_but_lets_the_op_through()
    {
        using var sm = new SecurityManager(Std(), new ScriptedRules("/tmp/bad", ResponseAction.Deny | ResponseAction.Kill, RuleMode.Monitor, Severity.Critical, inline: true));
        var e = new FsEvent { Op = FsOp.Open, Path = "/tmp/bad" };
        Verdict v = sm.Decide(e);
        Assert.That((v.IsDenied, v.Decision, e.Decision), Is.EqualTo((false, Decision.WouldDeny, Decision.WouldDeny)));
        sm.Record(e);
        Assert.That(sm.WaitIdle(TimeSpan.FromSeconds(5)), Is.True);
        Assert.That(sm.Incidents.List().Single().Response, Is.EqualTo("none (monitor)"));
    }

    [Test]
    public void A_block_process_detection_blocks_further_ops_of_that_process_until_resume()
    {
        int me = Environment.ProcessId;
        using var sm = new SecurityManager(Std(), new ScriptedRules("/tmp/trigger", ResponseAction.BlockProcess, RuleMode.Enforce, Severity.High, inline: false));
        var e = new FsEvent { Op = FsOp.Open, Path = "/tmp/trigger", Pid = me };
        Assert.That(sm.Decide(e).IsDenied, Is.False);
        sm.Record(e);
        Assert.That(sm.WaitIdle(TimeSpan.FromSeconds(5)), Is.True);
        Assert.That(sm.Decide(new FsEvent { Op = FsOp.GetAttr, Path = "/tmp/other", Pid = me }).Error, Is.EqualTo(Errno.EPERM));
        Assert.That(sm.Decide(new FsEvent { Op = FsOp.GetAttr, Path = "/tmp/other", Pid = 0 }).IsDenied, Is.False, "other callers are unaffected");
        Assert.That(sm.Counters().BlockedProcesses, Is.EqualTo(1));
        sm.Resume();
        Assert.That(sm.Decide(new FsEvent { Op = FsOp.GetAttr, Path = "/tmp/other", Pid = me }).IsDenied, Is.False);
    }

    [Test]
    public void Suspend_and_kill_for_a_host_process_fall_back_to_block_process()
    {
        int me = Environment.ProcessId;
        using var sm = new SecurityManager(Std(), new ScriptedRules("/tmp/trigger", ResponseAction.Suspend | ResponseAction.Kill, RuleMode.Enforce, Severity.Critical, inline: false));
        var e = new FsEvent { Op = FsOp.Open, Path = "/tmp/trigger", Pid = me };
        sm.Decide(e);
        sm.Record(e);
        Assert.That(sm.WaitIdle(TimeSpan.FromSeconds(5)), Is.True);
        Assert.That(sm.Incidents.List().Single().Response, Does.Contain("kill refused").And.Contain("suspend refused"));
        Assert.That(sm.IsSuspended, Is.False);
        Assert.That(sm.Decide(new FsEvent { Op = FsOp.GetAttr, Path = "/", Pid = me }).Error, Is.EqualTo(Errno.EPERM));
        sm.Resume();
    }
}
