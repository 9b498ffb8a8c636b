using InSpatialFs.Security.Events;
using InSpatialFs.Security.Policy;

namespace InSpatialFs.Security.Tests.Policy;

public sealed class EffectiveControlsTests
{
    [Test]
    public void Levels_get_stricter_in_order()
    {
        EffectiveControls s = EffectiveControls.Defaults(IsolationLevel.Standard);
        EffectiveControls e = EffectiveControls.Defaults(IsolationLevel.Enhanced);
        EffectiveControls m = EffectiveControls.Defaults(IsolationLevel.Maximum);
        Assert.Multiple(() =>
        {
            Assert.That((s.RefuseSetuid, s.RefuseDevices, s.RestrictHardlinks, s.RefuseFifosSockets, s.AllowDirect), Is.EqualTo((true, true, false, false, true)));
            Assert.That((e.RestrictHardlinks, e.RestrictSymlinks, e.RuntimeWrittenExec), Is.EqualTo((true, true, RuntimeWrittenExec.Allow)));
            Assert.That(e.Resources.OpsPerSecond, Is.Not.Null);
            Assert.That((m.RefuseFifosSockets, m.RefuseAllXattrWrites, m.AllowDirect, m.RuntimeWrittenExec, m.SuspendOn),
                Is.EqualTo((true, true, false, RuntimeWrittenExec.Deny, (Severity?)Severity.High)));
        });
    }

    [Test]
    public void Tightening_a_level_gives_no_warning()
    {
        EffectiveControls c = EffectiveControls.Resolve(new SecurityOptions
        {
            Level = IsolationLevel.Standard,
            RestrictHardlinks = true,
            RefuseFifosSockets = true,
            RuntimeWrittenExec = RuntimeWrittenExec.Deny,
            AllowDirect = false,
            SuspendOn = Severity.Critical,
            Resources = new ResourceLimits { OpsPerSecond = 10 },
        });
        Assert.That(c.Warnings, Is.Empty);
        Assert.That((c.RestrictHardlinks, c.RefuseFifosSockets, c.RuntimeWrittenExec, c.AllowDirect), Is.EqualTo((true, true, RuntimeWrittenExec.Deny, false)));
    }

    [Test]
    public void Each_relaxation_is_applied_and_warned_once()
    {
        EffectiveControls c = EffectiveControls.Resolve(new SecurityOptions
        {
            Level = IsolationLevel.Maximum,
            AllowDirect = true,
            RuntimeWrittenExec = RuntimeWrittenExec.Allow,
            RefuseSetuid = false,
            SuspendOn = Severity.Critical,
            Resources = new ResourceLimits { OpenFiles = 100_000 },
        });
        Assert.That(c.AllowDirect && !c.RefuseSetuid && c.RuntimeWrittenExec == RuntimeWrittenExec.Allow, Is.True);
        Assert.That(c.Warnings, Has.Count.EqualTo(5));
        Assert.That(c.Warnings, Has.Some.Contains("DirectFS").And.Some.Contains("refuse_setuid=false")
            .And.Some.Contains("exec.runtime_written=allow").And.Some.Contains("suspend_on=critical").And.Some.Contains("open_files"));
    }
}
