using System.Diagnostics;
using InSpatialFs.Interop;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Identity;
using InSpatialFs.Security.Incidents;
using InSpatialFs.Security.Policy;
using InSpatialFs.Security.Responses;
using InSpatialFs.Security.Tests.Identity;

namespace InSpatialFs.Security.Tests.Responses;

public sealed class FreezerGuardTests
{
    private static readonly CgroupPaths Daemon = CgroupPaths.Parse("6:freezer:/system/daemon\n0::/system/daemon\n");

    [TestCase("/", true, "root cgroup")]
    [TestCase("", true, "root cgroup")]
    [TestCase("/system", true, "contains the daemon")]
    [TestCase("/system/daemon", true, "contains the daemon")]
    [TestCase("/system", false, "contains the daemon")]
    public void Freezing_the_root_or_a_cgroup_holding_the_daemon_is_refused(string cgroup, bool v1, string why)
    {
        var f = new ContainerFreezer(self: Daemon);
        Assert.That(f.Refusal(cgroup, v1), Does.Contain(why));
    }

    [TestCase("/ctr/web-1")]
    [TestCase("/system/daemon-sibling")]
    [TestCase("/system/other")]
    public void A_container_cgroup_beside_the_daemon_may_be_frozen(string cgroup)
    {
        Assert.That(new ContainerFreezer(self: Daemon).Refusal(cgroup, v1: true), Is.Null);
        Assert.That(new ContainerFreezer(self: Daemon).Refusal("/system/daemon", v1: true), Does.Contain("contains the daemon"),
            "the control: the daemon's own cgroup is refused by the same guard");
    }

    [Test]
    public void A_host_process_is_never_frozen_or_killed()
    {
        using var reg = new CallerRegistry(mountpoint: "/nonexistent-root", containerCgroup: null);
        CallerInfo me = reg.Resolve(Environment.ProcessId)!;
        Assert.That(me.IsContainerMember, Is.False);
        var f = new ContainerFreezer(self: Daemon);
        Assert.That(() => f.Freeze(me, [me], null), Throws.InvalidOperationException.With.Message.Contains("not a container member"));
        Assert.That(() => ContainerFreezer.Kill(me), Throws.InvalidOperationException);
    }

    [Test]
    public void The_manager_answers_a_suspend_for_a_host_process_with_a_block_only()
    {
        using var sm = new SecurityManager(new SecurityOptions { Level = IsolationLevel.Standard, SuspendOn = Severity.Low, Mountpoint = "/nonexistent-root" });
        CallerInfo me = sm.Callers.Resolve(Environment.ProcessId)!;
        Assert.That(sm.Suspend(me, "test"), Does.StartWith("block-process"));
        Assert.That(sm.IsSuspended, Is.False);
        Assert.That(sm.Decide(new FsEvent { Op = FsOp.GetAttr, Path = "/", Pid = Environment.ProcessId }).Reason, Is.EqualTo("response:block_process"));
        sm.Resume();
        Assert.That(sm.Decide(new FsEvent { Op = FsOp.GetAttr, Path = "/", Pid = Environment.ProcessId }).IsDenied, Is.False);
    }
}

/// <summary>A real cgroup v1 freezer: a sleep child in a fresh freezer cgroup is suspended and resumed.</summary>
[NonParallelizable]
[Category("Mount")]
public sealed class CgroupV1FreezerTests
{
    private const string FreezerRoot = "/sys/fs/cgroup/freezer";
    private string _name = "";
    private string _dir = "";
    private Process? _child;

    [SetUp]
    public void SetUp()
    {
        if (!File.Exists(Path.Combine(FreezerRoot, "cgroup.procs"))) Assert.Ignore("no cgroup v1 freezer on this host");
        _name = "inspatialfs-test-" + Guid.NewGuid().ToString("N")[..8];
        _dir = Path.Combine(FreezerRoot, _name);
        Directory.CreateDirectory(_dir);
        _child = CallerRegistryTests.StartSleep("60");
        File.WriteAllText(Path.Combine(_dir, "cgroup.procs"), _child.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    [TearDown]
    public void TearDown()
    {
        if (_dir.Length == 0) return;
        try
        {
            File.WriteAllText(Path.Combine(_dir, "freezer.state"), "THAWED");
        }
        catch (IOException)
        {
        }

        if (_child is { HasExited: false })
        {
            _child.Kill();
            _child.WaitForExit();
        }

        _child?.Dispose();
        var sw = Stopwatch.StartNew();
        while (Directory.Exists(_dir) && sw.ElapsedMilliseconds < 5000)
        {
            try
            {
                Directory.Delete(_dir);
            }
            catch (IOException)
            {
                Thread.Sleep(20);
            }
        }
    }

    private string State() => File.ReadAllText(Path.Combine(_dir, "freezer.state")).Trim();

    [Test]
    public void Suspend_freezes_the_container_cgroup_and_resume_thaws_it()
    {
        using var sm = new SecurityManager(new SecurityOptions { Level = IsolationLevel.Standard, ContainerCgroup = "/" + _name });
        CallerInfo c = sm.Callers.Resolve(_child!.Id)!;
        Assert.That(c.IsContainerMember, Is.True);
        Assert.That(c.Cgroups.Freezer, Is.EqualTo("/" + _name));

        Assert.That(sm.Suspend(c, "test"), Is.EqualTo("suspend"));
        Assert.That(sm.WaitIdle(TimeSpan.FromSeconds(10)), Is.True);
        Assert.That(State(), Is.EqualTo("FROZEN"));
        Assert.That(sm.CurrentSuspension!.Method, Is.EqualTo("cgroup-v1-freezer"));
        Verdict v = sm.Decide(new FsEvent { Op = FsOp.Open, Path = "/tmp/x", Pid = _child.Id });
        Assert.That((v.Error, v.Reason), Is.EqualTo((Errno.EPERM, "response:suspended")));
        Assert.That(sm.Decide(new FsEvent { Op = FsOp.Open, Path = "/tmp/x", Pid = Environment.ProcessId }).IsDenied, Is.False, "the host is not suspended");

        sm.Resume();
        Assert.That(State(), Is.EqualTo("THAWED"));
        Assert.That(sm.Decide(new FsEvent { Op = FsOp.Open, Path = "/tmp/x", Pid = _child.Id }).IsDenied, Is.False);
    }

    [Test]
    public void A_forbidden_read_under_maximum_suspends_the_container()
    {
        using var sm = new SecurityManager(new SecurityOptions
        {
            Level = IsolationLevel.Maximum,
            Forbidden = ["/etc/shadow"],
            Allowed = ["/tmp/**"],
            ContainerCgroup = "/" + _name,
            ContainerName = "web-1",
        });
        var e = new FsEvent { Op = FsOp.Open, Path = "/etc/shadow", Pid = _child!.Id };
        Assert.That(sm.Decide(e).Error, Is.EqualTo(Errno.EACCES));
        Assert.That(e.ContainerId, Is.EqualTo("web-1"));
        Assert.That(e.ProcName, Is.EqualTo("sleep"));
        sm.Record(e);
        Assert.That(sm.WaitIdle(TimeSpan.FromSeconds(10)), Is.True);
        Assert.That(State(), Is.EqualTo("FROZEN"));
        Incident inc = sm.Incidents.List().Single();
        Assert.That((inc.Severity, inc.Response, inc.ContainerId), Is.EqualTo((Severity.High, "deny, suspend", "web-1")));
        sm.Resume();
        Assert.That(State(), Is.EqualTo("THAWED"));
    }

    [Test]
    public void A_kill_detection_kills_the_member_through_its_pidfd()
    {
        using var sm = new SecurityManager(
            new SecurityOptions { Level = IsolationLevel.Standard, ContainerCgroup = "/" + _name },
            new ScriptedRules("/tmp/payload", ResponseAction.Kill, RuleMode.Enforce, Severity.Medium, inline: false));
        var e = new FsEvent { Op = FsOp.Open, Path = "/tmp/payload", Pid = _child!.Id };
        sm.Decide(e);
        sm.Record(e);
        Assert.That(sm.WaitIdle(TimeSpan.FromSeconds(10)), Is.True);
        Assert.That(_child.WaitForExit(5000), Is.True, "SIGKILL reached the child");
        Assert.That(sm.Incidents.List().Single().Response, Is.EqualTo("kill"));
    }

    [Test]
    public void An_operator_suspend_freezes_the_configured_cgroup_without_a_caller()
    {
        using var sm = new SecurityManager(new SecurityOptions { Level = IsolationLevel.Standard, ContainerCgroup = "/" + _name });
        Assert.That(sm.SuspendContainer("operator"), Is.EqualTo("suspend"));
        Assert.That(State(), Is.EqualTo("FROZEN"));
        Assert.That(sm.Decide(new FsEvent { Op = FsOp.GetAttr, Path = "/", Pid = _child!.Id }).Error, Is.EqualTo(Errno.EPERM));
        sm.Resume();
        Assert.That(State(), Is.EqualTo("THAWED"));
    }

    [Test]
    public void An_operator_suspend_of_the_root_cgroup_is_refused()
    {
        using var sm = new SecurityManager(new SecurityOptions { Level = IsolationLevel.Standard, ContainerCgroup = "/" });
        Assert.That(sm.SuspendContainer("operator"), Does.StartWith("suspend refused"));
        Assert.That(sm.IsSuspended, Is.False);
    }
}
