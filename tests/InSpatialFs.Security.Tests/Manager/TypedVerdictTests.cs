using InSpatialFs.Interop;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Incidents;
using InSpatialFs.Security.Responses;
using InSpatialFs.Security.Tests.Responses;
using static InSpatialFs.Security.Tests.Manager.TestEvents;

namespace InSpatialFs.Security.Tests.Manager;

/// <summary>
/// A verdict carries what was decided as types (class, reason kind and detail, exec); the text events and incidents
/// show is rendered from it with the wording they have always had.
/// </summary>
public sealed class TypedVerdictTests
{
    [TestCase(ReasonKind.ForbiddenPath, "/etc/shadow", "forbidden:/etc/shadow")]
    [TestCase(ReasonKind.ReadOnlyPath, "/usr/**", "readonly:/usr/**")]
    [TestCase(ReasonKind.AllowedPath, "/tmp/**", "allowed:/tmp/**")]
    [TestCase(ReasonKind.IsolationLevel, "maximum", "default:maximum")]
    [TestCase(ReasonKind.LevelAncestor, "maximum", "ancestor:maximum")]
    [TestCase(ReasonKind.HostUsers, "read-only", "host:read-only")]
    [TestCase(ReasonKind.Privilege, "setuid", "privilege:setuid")]
    [TestCase(ReasonKind.ExecDenied, "exec_runtime_written", "privilege:exec_runtime_written")]
    [TestCase(ReasonKind.ExecAlert, null, "alert:exec_runtime_written")]
    [TestCase(ReasonKind.Rule, "no_shadow", "no_shadow")]
    [TestCase(ReasonKind.Suspended, null, "response:suspended")]
    [TestCase(ReasonKind.ProcessBlocked, null, "response:block_process")]
    [TestCase(ReasonKind.ReadOnlyMount, "/ro", "read-only mount /ro")]
    [TestCase(ReasonKind.RenameExposes, "forbidden:/a/** (a rename would move what it protects)", "forbidden:/a/** (a rename would move what it protects)")]
    [TestCase(ReasonKind.Recorded, "anything read back", "anything read back")]
    public void Every_kind_renders_the_wording_events_have_always_shown(ReasonKind kind, string? detail, string text) =>
        Assert.That(new VerdictReason(kind, detail).Text, Is.EqualTo(text));

    [Test]
    public void Every_kind_but_none_has_a_text()
    {
        Assert.That(VerdictReason.None.Text, Is.Null);
        foreach (ReasonKind k in Enum.GetValues<ReasonKind>().Where(k => k != ReasonKind.None))
        {
            Assert.That(new VerdictReason(k, "d").Text, Is.Not.Null.And.Not.Empty, k.ToString());
        }
    }

    [Test]
    public void A_policy_denial_carries_class_kind_and_pattern_and_the_event_shows_its_text()
    {
        using var sm = new SecurityManager(Demo(IsolationLevel.Standard) with { NeverSuspend = true });
        FsEvent e = Ev(FsOp.Open, "/etc/shadow");
        Verdict v = sm.Decide(e);
        Assert.That((v.Decision, v.Error, v.Class, v.Why), Is.EqualTo((Decision.Deny, Errno.EACCES, (PathClass?)PathClass.Forbidden,
            new VerdictReason(ReasonKind.ForbiddenPath, "/etc/shadow"))));
        Assert.That((e.Why, e.Reason), Is.EqualTo((v.Why, "forbidden:/etc/shadow")));

        FsEvent write = Ev(FsOp.Unlink, "/usr/bin/ls");
        Verdict ro = sm.Decide(write);
        Assert.That((ro.Error, ro.Class, ro.Why.Kind, ro.Why.Detail), Is.EqualTo((Errno.EROFS, (PathClass?)PathClass.ReadOnly, ReasonKind.ReadOnlyPath, "/usr/**")));

        Verdict ok = sm.Decide(Ev(FsOp.Open, "/tmp/x"));
        Assert.That((ok.IsDenied, ok.Class, ok.Why, ok.Reason), Is.EqualTo((false, (PathClass?)PathClass.Allowed, VerdictReason.None, (string?)null)),
            "an allow has a class and no reason");
    }

    [Test]
    public void A_default_class_denial_names_the_level_and_an_exec_says_so()
    {
        using var sm = new SecurityManager(Demo(IsolationLevel.Maximum) with { NeverSuspend = true });
        Verdict v = sm.Decide(Ev(FsOp.Open, "/opt/app"));
        Assert.That((v.Class, v.Why), Is.EqualTo(((PathClass?)PathClass.Forbidden, new VerdictReason(ReasonKind.IsolationLevel, "maximum"))));

        Verdict exec = sm.Decide(Ev(FsOp.Open, "/tmp/tool", LibC.FMODE_EXEC));
        Assert.That((exec.IsDenied, exec.IsExec), Is.EqualTo((false, true)));
        Assert.That(sm.Decide(Ev(FsOp.Open, "/tmp/tool")).IsExec, Is.False, "positive control: a plain open is no exec");
    }

    [Test]
    public void A_rule_named_like_a_policy_reason_is_a_rule_denial_not_a_policy_incident()
    {
        // The kind, not the wording, decides: a deny rule whose name looks like "forbidden:..." raises its detection only.
        using var sm = new SecurityManager(Demo(IsolationLevel.Standard) with { NeverSuspend = true },
            new ScriptedRules("/tmp/bad", ResponseAction.Deny, RuleMode.Enforce, Severity.Medium, inline: true, ruleName: "forbidden:/tmp/bad"));
        var e = new FsEvent { Op = FsOp.Open, Path = "/tmp/bad" };
        Verdict v = sm.Decide(e);
        Assert.That((v.Why.Kind, v.Reason), Is.EqualTo((ReasonKind.Rule, "forbidden:/tmp/bad")));
        sm.Record(e);

        var policy = Ev(FsOp.Open, "/etc/shadow");
        sm.Decide(policy);
        sm.Record(policy);
        Assert.That(sm.WaitIdle(TimeSpan.FromSeconds(5)), Is.True);
        Assert.That(sm.Incidents.List().Select(i => i.Source).Order(), Is.EqualTo(new[] { "forbidden:/etc/shadow", "inline-rule" }),
            "the policy denial is an incident (positive control), the rule's denial only its detection");
    }
}
