using System.Diagnostics;
using System.Globalization;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Identity;
using InSpatialFs.Security.Incidents;
using InSpatialFs.Security.Policy;
using InSpatialFs.Security.Responses;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.Security.Tests.Responses;

/// <summary>Collects formatted log lines (the "and a log line" half of "a failing response is an incident and a log line").</summary>
internal sealed class CapturingLogger : ILogger
{
    private readonly List<string> _lines = [];

    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_lines) return [.. _lines];
        }
    }

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        lock (_lines) _lines.Add($"{logLevel}: {formatter(state, exception)}");
    }
}

/// <summary>
/// Every fallback of suspend, with real processes: cgroup v2 cgroup.freeze, the v1 freezer failing over to v2, and
/// SIGSTOP of every member when no cgroup may be frozen (also through pins the caller cache already released);
/// a failed freeze or thaw is an incident and a log line, never a crash; resume undoes whatever was done.
/// </summary>
[NonParallelizable]
public sealed class FreezeFallbackTests
{
    private const string V2Root = "/sys/fs/cgroup/unified";
    private readonly List<Process> _children = [];
    private readonly List<string> _cleanup = [];
    private string? _v2Cgroup;

    [TearDown]
    public void TearDown()
    {
        foreach (Process p in _children)
        {
            try
            {
                p.Kill(entireProcessTree: true); // SIGKILL ends stopped processes too
                p.WaitForExit(5000);
            }
            catch (InvalidOperationException)
            {
            }

            p.Dispose();
        }

        _children.Clear();
        if (_v2Cgroup is not null)
        {
            string dir = Path.Combine(V2Root, _v2Cgroup.TrimStart('/'));
            try
            {
                File.WriteAllText(Path.Combine(dir, "cgroup.freeze"), "0");
            }
            catch (IOException)
            {
            }

            var clock = Stopwatch.StartNew();
            while (Directory.Exists(dir) && clock.Elapsed < TimeSpan.FromSeconds(5))
            {
                try
                {
                    Directory.Delete(dir);
                }
                catch (IOException)
                {
                    Thread.Sleep(20);
                }
            }

            _v2Cgroup = null;
        }

        foreach (string d in _cleanup) Directory.Delete(d, recursive: true);
        _cleanup.Clear();
    }

    private Process Sleep()
    {
        Process p = Process.Start(new ProcessStartInfo("sleep", "60") { UseShellExecute = false })!;
        _children.Add(p);
        return p;
    }

    private static char State(int pid)
    {
        string stat = File.ReadAllText($"/proc/{pid}/stat");
        return stat[stat.LastIndexOf(')') + 2];
    }

    private static bool Eventually(Func<bool> condition)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(10)) return false;
            Thread.Sleep(10);
        }

        return true;
    }

    /// <summary>
    /// A stand-in container: an init (sh) with <paramref name="children"/> sleeping children, recorded as the container's
    /// init, so exactly these processes are members (by init ancestry). A SIGSTOP suspension must reach them and
    /// nothing else on the host: never prove membership here by a root directory every host process shares.
    /// </summary>
    private (CallerRegistry Registry, Process Init, int[] Children) Container(int children)
    {
        string script = string.Concat(Enumerable.Repeat("sleep 60 & ", children)) + "wait";
        Process init = Process.Start(new ProcessStartInfo("sh", ["-c", script]) { UseShellExecute = false })!;
        _children.Add(init);
        int[] kids = [];
        Assert.That(Eventually(() => (kids = ChildrenOf(init.Id)).Length == children), Is.True, "the container's processes started");
        var reg = new CallerRegistry("/nonexistent-root", null, backgroundSweep: false);
        Assert.That(reg.RecordInit(init.Id), Is.Null);
        return (reg, init, kids);
    }

    private static int[] ChildrenOf(int parent)
    {
        string path = $"/proc/{parent}/task/{parent}/children";
        return File.Exists(path)
            ? File.ReadAllText(path).Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(x => int.Parse(x, CultureInfo.InvariantCulture)).ToArray()
            : [];
    }

    /// <summary>A fresh v2 cgroup holding <paramref name="p"/>; its path relative to the v2 root.</summary>
    private string V2CgroupWith(Process p)
    {
        if (!File.Exists(Path.Combine(V2Root, "cgroup.procs"))) Assert.Ignore("no cgroup v2 hierarchy at " + V2Root);
        _v2Cgroup = "/isfs-test-" + Guid.NewGuid().ToString("N")[..8];
        string dir = Path.Combine(V2Root, _v2Cgroup.TrimStart('/'));
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "cgroup.procs"), p.Id.ToString(CultureInfo.InvariantCulture));
        return _v2Cgroup;
    }

    private string TempDir()
    {
        string d = Directory.CreateTempSubdirectory("isfs-freezer-").FullName;
        _cleanup.Add(d);
        return d;
    }

    private static bool V2Frozen(string cgroup) =>
        File.ReadAllLines(Path.Combine(V2Root, cgroup.TrimStart('/'), "cgroup.events")).Contains("frozen 1");

    [Test]
    public void Without_a_freezable_cgroup_every_member_is_stopped_and_resume_continues_them_all()
    {
        // The stand-in container shares the daemon's (this process's) cgroup: freezing it is refused, so SIGSTOP it is.
        (CallerRegistry reg, Process init, int[] kids) = Container(3);
        using CallerRegistry _ = reg;
        Process host = Sleep();
        var log = new CapturingLogger();
        using var sm = new SecurityManager(new SecurityOptions { Level = IsolationLevel.Standard }, log: log, callers: reg);
        CallerInfo caller = sm.Callers.Resolve(kids[0])!;
        sm.Callers.Resolve(kids[1]);
        Assert.That(caller.Membership, Is.EqualTo(Membership.InitAncestry));
        Assert.That(sm.Callers.Resolve(host.Id)!.IsContainerMember, Is.False);

        Assert.That(sm.Suspend(caller, "test"), Is.EqualTo("suspend"));
        Assert.That(sm.WaitIdle(TimeSpan.FromSeconds(20)), Is.True);
        SuspendHandle h = sm.CurrentSuspension!;
        Assert.That(h.Method, Is.EqualTo(SuspendHandle.SigStop));
        Assert.That(h.Failures, Has.Some.Contains("refusing to freeze"), "why the cgroup was not frozen");
        Assert.That(h.StoppedProcesses.Select(p => p.Pid), Is.EquivalentTo(kids.Append(init.Id)),
            "pinned members, members that never touched the mount (found in /proc), and nothing else");
        Assert.That(kids.Append(init.Id).Select(State), Is.All.EqualTo('T'));
        Assert.That((State(host.Id), State(Environment.ProcessId)), Is.EqualTo(('S', 'S')).Or.EqualTo(('S', 'R')), "never a host process, never the daemon");

        sm.Resume();
        Assert.That(Eventually(() => kids.Append(init.Id).All(p => State(p) != 'T')), Is.True, "all continued");
        Assert.That(sm.IsSuspended, Is.False);
    }

    [Test]
    public void A_suspend_through_a_caller_pin_the_cache_already_released_still_stops_it_and_resume_continues_it()
    {
        // Before: the SIGSTOP fallback signalled through the caller's own pidfd; a pin released by the cache (exec refresh,
        // eviction) threw ObjectDisposedException mid-loop, the suspension had no handle, and resume left the others stopped.
        (CallerRegistry reg, Process init, int[] kids) = Container(2);
        using CallerRegistry _ = reg;
        using var sm = new SecurityManager(new SecurityOptions { Level = IsolationLevel.Standard }, callers: reg);
        CallerInfo released = sm.Callers.Resolve(kids[0])!;
        sm.Callers.Resolve(kids[1]);
        released.Dispose();

        Assert.That(sm.Suspend(released, "test"), Is.EqualTo("suspend"));
        Assert.That(sm.WaitIdle(TimeSpan.FromSeconds(20)), Is.True);
        Assert.That(sm.CurrentSuspension!.StoppedProcesses.Select(p => p.Pid), Is.EquivalentTo(kids.Append(init.Id)));
        Assert.That(kids.Select(State), Is.All.EqualTo('T'));

        sm.Resume();
        Assert.That(Eventually(() => kids.Append(init.Id).All(p => State(p) != 'T')), Is.True);
    }

    [Test]
    public void A_violation_from_before_the_operators_resume_does_not_suspend_again_and_a_new_one_does()
    {
        (CallerRegistry reg, Process init, int[] kids) = Container(1);
        using CallerRegistry _ = reg;
        using var sm = new SecurityManager(new SecurityOptions { Level = IsolationLevel.Standard, Forbidden = ["/etc/shadow"], SuspendOn = Severity.High }, callers: reg);
        var late = new FsEvent { Op = FsOp.Lookup, Path = "/etc/shadow", Pid = kids[0], TimeUnixNanos = FsEvent.NowUnixNanos() };
        Assert.That(sm.Decide(late).IsDenied, Is.True);
        sm.Resume(); // the operator resumes while that denial still waits for analysis
        sm.Record(late);
        Assert.That(sm.WaitIdle(TimeSpan.FromSeconds(20)), Is.True);
        Assert.That(sm.IsSuspended, Is.False);
        Assert.That(sm.Incidents.List().Single().Response, Does.Contain("suspend skipped"));

        var fresh = new FsEvent { Op = FsOp.Open, Path = "/etc/shadow", Pid = kids[0] };
        Assert.That(sm.Decide(fresh).IsDenied, Is.True);
        sm.Record(fresh);
        Assert.That(sm.WaitIdle(TimeSpan.FromSeconds(20)), Is.True);
        Assert.That(sm.IsSuspended, Is.True, "positive control: a violation after the resume suspends");
        Assert.That(kids.Append(init.Id).Select(State), Is.All.EqualTo('T'));
        sm.Resume();
        Assert.That(Eventually(() => kids.Append(init.Id).All(p => State(p) != 'T')), Is.True);
    }

    [Test]
    [Category("Mount")]
    public void A_container_cgroup_on_cgroup_v2_is_frozen_and_thawed()
    {
        Process member = Sleep(), host = Sleep();
        string cgroup = V2CgroupWith(member);
        using var sm = new SecurityManager(new SecurityOptions { Level = IsolationLevel.Standard, ContainerCgroup = cgroup, Mountpoint = "/nonexistent-root" },
            freezer: new ContainerFreezer(v1FreezerRoot: "/nonexistent-v1", v2Root: V2Root));
        CallerInfo c = sm.Callers.Resolve(member.Id)!;
        Assert.That(c.Membership, Is.EqualTo(Membership.Cgroup));
        Assert.That(sm.Callers.Resolve(host.Id)!.IsContainerMember, Is.False);

        Assert.That(sm.Suspend(c, "test"), Is.EqualTo("suspend"));
        Assert.That(sm.WaitIdle(TimeSpan.FromSeconds(20)), Is.True);
        Assert.That(sm.CurrentSuspension!.Method, Is.EqualTo(SuspendHandle.V2));
        Assert.That(V2Frozen(cgroup), Is.True);
        Assert.That(State(host.Id), Is.Not.EqualTo('T'));

        sm.Resume();
        Assert.That(V2Frozen(cgroup), Is.False);
    }

    [Test]
    [Category("Mount")]
    public void A_v1_freezer_that_fails_falls_back_to_v2_and_the_failure_is_an_incident_and_a_log_line()
    {
        Process member = Sleep();
        string cgroup = V2CgroupWith(member);
        // A v1 hierarchy whose freezer.state cannot be written (a directory stands in its place).
        string v1 = TempDir();
        Directory.CreateDirectory(Path.Combine(v1, cgroup.TrimStart('/'), "freezer.state"));
        var log = new CapturingLogger();
        using var sm = new SecurityManager(new SecurityOptions { Level = IsolationLevel.Standard, ContainerCgroup = cgroup, Mountpoint = "/nonexistent-root" },
            log: log, freezer: new ContainerFreezer(v1FreezerRoot: v1, v2Root: V2Root));
        CallerInfo c = sm.Callers.Resolve(member.Id)!;

        Assert.That(sm.Suspend(c, "test"), Is.EqualTo("suspend"));
        Assert.That(sm.WaitIdle(TimeSpan.FromSeconds(20)), Is.True);
        Assert.That(sm.CurrentSuspension!.Method, Is.EqualTo(SuspendHandle.V2), "the next method worked");
        Assert.That(V2Frozen(cgroup), Is.True);
        sm.Incidents.Flush(force: true);
        Incident failed = sm.Incidents.List().Single(i => i.Source == IncidentRaiser.ResponseFailed);
        Assert.That(failed.Output, Does.Contain("cgroup-v1-freezer").And.Contain("fell back to cgroup-v2-freeze"));
        Assert.That(log.Lines, Has.Some.Contains("incident " + failed.Id));

        sm.Resume();
        Assert.That(V2Frozen(cgroup), Is.False);
    }

    [Test]
    public void A_thaw_that_fails_is_an_incident_and_a_log_line_and_the_manager_goes_on()
    {
        // A fake v2 cgroup that freezes, then refuses the thaw (cgroup.freeze replaced by a directory).
        string v2 = TempDir();
        string dir = Path.Combine(v2, "ctr");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "cgroup.freeze"), "0");
        File.WriteAllText(Path.Combine(dir, "cgroup.events"), "populated 1\nfrozen 1\n");
        (CallerRegistry reg, Process _, int[] kids) = Container(1);
        using CallerRegistry registry = reg;
        var log = new CapturingLogger();
        using var sm = new SecurityManager(new SecurityOptions { Level = IsolationLevel.Standard, ContainerCgroup = "/ctr" },
            log: log, callers: reg, freezer: new ContainerFreezer(v1FreezerRoot: "/nonexistent-v1", v2Root: v2));
        CallerInfo c = sm.Callers.Resolve(kids[0])!;
        Assert.That(c.IsContainerMember, Is.True);
        {
            Assert.That(sm.Suspend(c, "test"), Is.EqualTo("suspend"));
            Assert.That(sm.WaitIdle(TimeSpan.FromSeconds(20)), Is.True);
            Assert.That(File.ReadAllText(Path.Combine(dir, "cgroup.freeze")), Is.EqualTo("1"));
            File.Delete(Path.Combine(dir, "cgroup.freeze"));
            Directory.CreateDirectory(Path.Combine(dir, "cgroup.freeze"));

            Assert.DoesNotThrow(sm.Resume);
            Assert.That(sm.IsSuspended, Is.False, "the daemon's own state is lifted");
            Incident failed = sm.Incidents.List().Single(i => i.Source == IncidentRaiser.ResponseFailed);
            Assert.That(failed.Output, Does.StartWith("resume failed").And.Contain("cgroup-v2-freeze"));
            Assert.That(log.Lines, Has.Some.Contains("resume: cgroup-v2-freeze"));
            Assert.That(sm.Decide(new FsEvent { Op = FsOp.GetAttr, Path = "/", Pid = kids[0] }).IsDenied, Is.False, "still serving");
        }
    }
}
