using System.Diagnostics;
using InSpatialFs.Interop;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Identity;
using InSpatialFs.Security.Incidents;
using InSpatialFs.Security.Policy;
using static InSpatialFs.Security.Tests.Manager.TestEvents;

namespace InSpatialFs.Security.Tests.Manager;

/// <summary>
/// host_users: a host process (here a live `sleep`, never a member: the mountpoint does not exist) gets what the config
/// says; by default root is the operator and other users may not grow what the container is charged for.
/// exec.runtime_written: alert allows the exec and raises an incident.
/// </summary>
public sealed class HostUsersAndAlertTests
{
    private Process _host = null!;

    [SetUp]
    public void SetUp() => _host = Process.Start(new ProcessStartInfo("sleep", "60") { UseShellExecute = false })!;

    [TearDown]
    public void TearDown()
    {
        _host.Kill();
        _host.WaitForExit();
        _host.Dispose();
    }

    private static SecurityOptions Options(bool quotas, HostAccess? others = null, HostAccess? root = null) => Demo(IsolationLevel.Standard) with
    {
        Mountpoint = "/nonexistent-root",
        Resources = quotas ? new ResourceLimits { DiskBytes = 1 << 20, Inodes = 100 } : new ResourceLimits(),
        Membership = new MembershipOptions { HostUsers = others ?? HostAccess.NoQuotaWrites, HostRoot = root ?? HostAccess.Full },
    };

    private Verdict Decide(SecurityManager sm, FsOp op, string path, uint uid, int flags = 0)
    {
        FsEvent e = Ev(op, path, flags, pid: _host.Id, uid: uid);
        Verdict v = sm.Decide(e);
        sm.Record(e);
        return v;
    }

    [Test]
    public void By_default_a_host_user_may_not_grow_a_container_with_quotas_but_may_read_and_remove()
    {
        using var sm = new SecurityManager(Options(quotas: true));
        Verdict create = Decide(sm, FsOp.Create, "/var/tmp/fill", uid: 65534);
        Verdict openWrite = Decide(sm, FsOp.Open, "/var/tmp/existing", uid: 65534, flags: LibC.O_WRONLY);
        Verdict mkdir = Decide(sm, FsOp.MkDir, "/var/tmp/d", uid: 65534);
        Assert.That((create.Error, create.Reason), Is.EqualTo((Errno.EACCES, "host:no-quota-writes")));
        Assert.That((openWrite.Error, mkdir.Error), Is.EqualTo((Errno.EACCES, Errno.EACCES)));
        Assert.That(Decide(sm, FsOp.Open, "/var/tmp/existing", uid: 65534).IsDenied, Is.False, "reads are not charged");
        Assert.That(Decide(sm, FsOp.Unlink, "/var/tmp/existing", uid: 65534).IsDenied, Is.False, "removal frees, never charges");
        Assert.That(Decide(sm, FsOp.Create, "/var/tmp/operator", uid: 0).IsDenied, Is.False, "positive control: root on the host is the operator");

        Assert.That(sm.WaitIdle(TimeSpan.FromSeconds(5)), Is.True);
        Assert.That(sm.Counters().HostDenials, Is.EqualTo(3));
        Incident inc = sm.Incidents.List().First(i => i.Source == "host:no-quota-writes");
        Assert.That((inc.Severity, inc.ContainerId, inc.Uid), Is.EqualTo((Severity.Medium, (string?)null, 65534u)), "a host user's incident, not the container's");
    }

    [Test]
    public void Without_quotas_nothing_is_charged_so_the_default_allows_host_users_to_write()
    {
        using var sm = new SecurityManager(Options(quotas: false));
        Assert.That(Decide(sm, FsOp.Create, "/var/tmp/f", uid: 1000).IsDenied, Is.False);
        Assert.That(sm.MembershipStatus().Single(l => l.Key == "host_users").Value, Does.Contain("no-quota-writes (no quotas configured"));
    }

    [Test]
    public void The_configured_access_of_host_users_and_root_is_what_they_get()
    {
        using var readOnly = new SecurityManager(Options(quotas: false, others: HostAccess.ReadOnly));
        Assert.That(Decide(readOnly, FsOp.Unlink, "/tmp/x", uid: 1000).Reason, Is.EqualTo("host:read-only"));
        Assert.That(Decide(readOnly, FsOp.Open, "/tmp/x", uid: 1000).IsDenied, Is.False);

        using var none = new SecurityManager(Options(quotas: false, others: HostAccess.None));
        Assert.That(Decide(none, FsOp.GetAttr, "/", uid: 1000).Reason, Is.EqualTo("host:none"));

        using var full = new SecurityManager(Options(quotas: true, others: HostAccess.Full));
        Assert.That(Decide(full, FsOp.Create, "/var/tmp/f", uid: 1000).IsDenied, Is.False);

        using var rootReadOnly = new SecurityManager(Options(quotas: false, root: HostAccess.ReadOnly));
        Assert.That(Decide(rootReadOnly, FsOp.Create, "/tmp/f", uid: 0).Reason, Is.EqualTo("host:read-only"));
        Assert.That(rootReadOnly.MembershipStatus().Single(l => l.Key == "host_root").Value, Is.EqualTo("read-only"));
    }

    [Test]
    public void Container_members_are_not_host_users()
    {
        // The fallback proof with the "mount" on /'s filesystem makes the sleep a member.
        var reg = new CallerRegistry("/nonexistent-root", null, backgroundSweep: false);
        string[] dev = Process.Start(new ProcessStartInfo("stat", "-L -c %Hd:%Ld /proc/self/root") { RedirectStandardOutput = true })!
            .StandardOutput.ReadToEnd().Trim().Split(':');
        reg.SetMountDevice(uint.Parse(dev[0], System.Globalization.CultureInfo.InvariantCulture), uint.Parse(dev[1], System.Globalization.CultureInfo.InvariantCulture));
        using var sm = new SecurityManager(Options(quotas: true, others: HostAccess.None), callers: reg);
        Assert.That(Decide(sm, FsOp.Create, "/var/tmp/f", uid: 1000).IsDenied, Is.False);
        reg.Dispose();
        using var withoutProof = new SecurityManager(Options(quotas: true, others: HostAccess.None));
        Assert.That(Decide(withoutProof, FsOp.Create, "/var/tmp/f", uid: 1000).Reason, Is.EqualTo("host:none"),
            "the control: the same request from a caller not proven a member is a host user's and refused");
    }

    [Test]
    public void Runtime_written_exec_alert_allows_the_exec_and_raises_an_incident()
    {
        foreach ((RuntimeWrittenExec mode, bool denied, int incidents) in new[] { (RuntimeWrittenExec.Alert, false, 1), (RuntimeWrittenExec.Allow, false, 0), (RuntimeWrittenExec.Deny, true, 1) })
        {
            using var sm = new SecurityManager(Demo(IsolationLevel.Standard) with { RuntimeWrittenExec = mode });
            FsEvent write = Ev(FsOp.Write, "/tmp/tool", size: 4, obj: 31);
            sm.Decide(write);
            sm.Record(write);
            FsEvent exec = Ev(FsOp.Open, "/tmp/tool", LibC.FMODE_EXEC, obj: 31);
            Verdict v = sm.Decide(exec);
            sm.Record(exec);
            FsEvent imageExec = Ev(FsOp.Open, "/bin/sh", LibC.FMODE_EXEC, obj: 32);
            sm.Decide(imageExec);
            sm.Record(imageExec);
            Assert.That(sm.WaitIdle(TimeSpan.FromSeconds(5)), Is.True);

            Assert.That(v.IsDenied, Is.EqualTo(denied), mode.ToString());
            List<Incident> list = [.. sm.Incidents.List()];
            Assert.That(list, Has.Count.EqualTo(incidents), mode + ": only the runtime-written file, never the image's");
            if (mode == RuntimeWrittenExec.Alert)
            {
                Assert.That((list[0].Source, list[0].Response, list[0].Evidence[0].Path), Is.EqualTo((IncidentRaiser.AlertRuntimeWrittenExec, "alert", "/tmp/tool")));
            }
        }
    }
}
