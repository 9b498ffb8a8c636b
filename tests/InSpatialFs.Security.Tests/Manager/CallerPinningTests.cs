using System.Diagnostics;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Incidents;
using InSpatialFs.Security.Policy;

namespace InSpatialFs.Security.Tests.Manager;

/// <summary>
/// Responses and event fields use the caller as pinned when the op was decided, not whatever the pid names
/// when the asynchronous consumer gets to the event (found through a real mount: `cat /forbidden` exits
/// before its incident is raised).
/// </summary>
public sealed class CallerPinningTests
{
    [Test]
    public void A_denial_incident_acts_on_the_caller_pinned_at_decision_after_it_exited()
    {
        using var child = Process.Start(new ProcessStartInfo("sleep", "0.3") { UseShellExecute = false })!;
        var options = new SecurityOptions
        {
            Level = IsolationLevel.Standard,
            Forbidden = ["/etc/shadow"],
            SuspendOn = Severity.High,
            Mountpoint = "/nonexistent-root",
        };
        using var sm = new SecurityManager(options);
        var e = new FsEvent { Op = FsOp.Lookup, Path = "/etc/shadow", Pid = child.Id };
        Assert.That(sm.Decide(e).IsDenied, Is.True);
        Assert.That(e.ProcName, Is.EqualTo("sleep"));

        Assert.That(child.WaitForExit(5000), Is.True);
        sm.Record(e);
        Assert.That(sm.WaitIdle(TimeSpan.FromSeconds(5)), Is.True);

        Incident inc = sm.Incidents.List().Single();
        Assert.That(inc.ProcessName, Is.EqualTo("sleep"));
        Assert.That(inc.Response, Is.EqualTo("deny, block-process (host process: suspend refused)"),
            "the host process that acted is blocked; the exit of the caller does not turn the response into 'no caller'");
        Assert.That(sm.IsSuspended, Is.False);
    }

    [Test]
    public void Events_recorded_without_a_decision_carry_the_callers_name_and_the_level()
    {
        using var sm = new SecurityManager(new SecurityOptions { Level = IsolationLevel.Enhanced, Mountpoint = "/nonexistent-root" });
        var seen = new List<FsEvent>();
        using IDisposable _ = sm.Subscribe(x =>
        {
            lock (seen) seen.Add(x);
        });

        using var stranger = Process.Start(new ProcessStartInfo("sleep", "5") { UseShellExecute = false })!;
        try
        {
            // OPENDIR is decided (and pins the caller); the READDIR after it is only recorded.
            Assert.That(sm.Decide(new FsEvent { Op = FsOp.OpenDir, Path = "/", Pid = Environment.ProcessId }).IsDenied, Is.False);
            sm.Record(new FsEvent { Op = FsOp.ReadDir, Path = "/", Pid = Environment.ProcessId, Decision = Decision.Allow });
            sm.Record(new FsEvent { Op = FsOp.Release, Path = "/x", Pid = stranger.Id, Decision = Decision.Allow });
            Assert.That(sm.WaitIdle(TimeSpan.FromSeconds(5)), Is.True);
        }
        finally
        {
            stranger.Kill();
            stranger.WaitForExit();
        }

        List<FsEvent> events;
        lock (seen) events = [.. seen];
        string comm = File.ReadAllText($"/proc/{Environment.ProcessId}/comm").TrimEnd('\n');
        FsEvent readdir = events.Single(x => x.Op == FsOp.ReadDir);
        Assert.That((readdir.ProcName, readdir.Level, readdir.ContainerId), Is.EqualTo((comm, IsolationLevel.Enhanced, (string?)null)));
        FsEvent release = events.Single(x => x.Op == FsOp.Release);
        Assert.That((release.ProcName, release.Level), Is.EqualTo(((string?)null, IsolationLevel.Enhanced)),
            "a pid never seen in a decision is not pinned when only recorded (it may have exited and been reused)");
    }
}
