using System.Diagnostics;
using InSpatialFs.Interop;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Incidents;
using InSpatialFs.Security.Rules;
using static InSpatialFs.Security.Tests.Manager.TestEvents;

namespace InSpatialFs.Security.Tests.Manager;

/// <summary>A rule engine stand-in whose only opinion is which events a rule waits for.</summary>
internal sealed class WaitsFor(string path) : IRuleEngine
{
    public Verdict EvaluateInline(FsEvent access, List<Detection> detections) => Verdict.Allow;

    public void Analyze(FsEvent completed, List<Detection> detections)
    {
    }

    public bool MustSee(FsEvent e) => e.Path == path;
}

/// <summary>
/// A flood cannot blind analysis: with the consumer stalled, routine events are dropped (one incident per burst with
/// the count) while denials, execs, set-id changes and what a rule waits for are kept, their requests waiting for room.
/// </summary>
public sealed class UnblindableAnalysisTests
{
    private static List<FsEvent> Seen(SecurityManager sm, ManualResetEventSlim gate, out IDisposable subscription)
    {
        var seen = new List<FsEvent>();
        subscription = sm.Subscribe(e =>
        {
            gate.Wait(TimeSpan.FromSeconds(30));
            lock (seen) seen.Add(e);
        });
        return seen;
    }

    private static FsEvent Denial(string path)
    {
        FsEvent e = Ev(FsOp.Lookup, path);
        e.Decision = Decision.Deny;
        e.Why = new VerdictReason(ReasonKind.ForbiddenPath, path); // a policy denial, as Decide types it
        e.Result = (int)Errno.EACCES;
        return e;
    }

    [Test]
    public void Under_a_flood_routine_events_are_dropped_but_no_denial_exec_or_setid_change_is()
    {
        using var gate = new ManualResetEventSlim();
        using var sm = new SecurityManager(Demo(IsolationLevel.Standard) with { EventQueueCapacity = 16 });
        List<FsEvent> seen = Seen(sm, gate, out IDisposable sub);
        using IDisposable _ = sub;

        var critical = new List<FsEvent>();
        var clock = Stopwatch.StartNew();
        // The release comes while requests are waiting for room: they wait, they are not dropped.
        using var release = new Timer(_ => gate.Set(), null, 500, Timeout.Infinite);
        for (int i = 0; i < 200; i++)
        {
            sm.Record(Ev(FsOp.GetAttr, "/tmp/routine"));
            FsEvent c = (i % 3) switch
            {
                0 => Denial("/etc/shadow"),
                1 => Ev(FsOp.Open, "/tmp/tool", LibC.FMODE_EXEC),
                _ => Ev(FsOp.Chmod, "/tmp/tool", mode: LibC.S_IFREG | 0x9ED), // 04755
            };
            if (c.Op == FsOp.Open) c.IsExec = true;
            critical.Add(c);
            sm.Record(c);
        }

        Assert.That(sm.WaitIdle(TimeSpan.FromSeconds(30)), Is.True);
        SecurityCounters counters = sm.Counters();
        lock (seen)
        {
            Assert.That(critical.All(seen.Contains), Is.True, "every denial, exec and set-id change reached analysis and the subscribers");
            Assert.That(seen.Count(e => e.Op == FsOp.GetAttr), Is.LessThan(200), "positive control: routine events were dropped");
        }

        Assert.That(counters.EventsDropped, Is.GreaterThan(0));
        Assert.That(counters.EventsWaited, Is.GreaterThan(0), "requests waited for room instead");
        Assert.That(counters.EventsRecorded + counters.EventsDropped, Is.EqualTo(400));
        Assert.That(clock.Elapsed, Is.GreaterThan(TimeSpan.FromMilliseconds(400)), "the flood was held back until the consumer moved");

        Incident burst = sm.Incidents.List().Single(i => i.Source == IncidentRaiser.EventsDropped);
        Assert.That(burst.Count, Is.EqualTo(counters.EventsDropped), "one incident for the burst, carrying every dropped event");
        Incident denial = sm.Incidents.List().Single(i => i.Source == "forbidden:/etc/shadow");
        Assert.That(denial.Count, Is.EqualTo(critical.Count(c => c.Decision == Decision.Deny)), "no denial went uncounted");
    }

    [Test]
    public void A_critical_event_waits_bounded_for_a_stalled_consumer_then_is_queued_over_capacity()
    {
        using var gate = new ManualResetEventSlim();
        using var sm = new SecurityManager(Demo(IsolationLevel.Standard) with { EventQueueCapacity = 8 });
        List<FsEvent> seen = Seen(sm, gate, out IDisposable sub);
        using IDisposable _ = sub;
        for (int i = 0; i < 8; i++) sm.Record(Denial("/etc/shadow")); // fills the capacity (the consumer is stuck on the first)

        var clock = Stopwatch.StartNew();
        sm.Record(Denial("/etc/shadow"));
        TimeSpan waited = clock.Elapsed;
        gate.Set();
        Assert.That(waited, Is.GreaterThanOrEqualTo(TimeSpan.FromSeconds(1.5)).And.LessThan(TimeSpan.FromSeconds(10)), "bounded");
        Assert.That(sm.WaitIdle(TimeSpan.FromSeconds(10)), Is.True);
        lock (seen) Assert.That(seen, Has.Count.EqualTo(9), "nothing lost");
        Assert.That(sm.Counters().EventsDropped, Is.Zero);
    }

    [Test]
    public void What_a_rule_waits_for_is_kept_while_other_routine_events_are_dropped()
    {
        using var gate = new ManualResetEventSlim();
        using var sm = new SecurityManager(Demo(IsolationLevel.Standard) with { EventQueueCapacity = 8 }, new WaitsFor("/tmp/watched"));
        List<FsEvent> seen = Seen(sm, gate, out IDisposable sub);
        using IDisposable _ = sub;
        using var release = new Timer(_ => gate.Set(), null, 300, Timeout.Infinite);
        for (int i = 0; i < 50; i++)
        {
            sm.Record(Ev(FsOp.GetAttr, "/tmp/other"));
            sm.Record(Ev(FsOp.GetAttr, "/tmp/watched"));
        }

        Assert.That(sm.WaitIdle(TimeSpan.FromSeconds(30)), Is.True);
        lock (seen)
        {
            Assert.That(seen.Count(e => e.Path == "/tmp/watched"), Is.EqualTo(50));
            Assert.That(seen.Count(e => e.Path == "/tmp/other"), Is.LessThan(50));
        }
    }

    [Test]
    public void The_built_in_sequence_rules_make_creates_and_chmods_must_see_and_plain_reads_not()
    {
        RuleEngine rules = RuleEngine.Create(Array.Empty<string>());
        Assert.Multiple(() =>
        {
            Assert.That(rules.MustSee(new FsEvent { Op = FsOp.Create, Path = "/tmp/x" }), Is.True, "first step of a written-then-executed sequence");
            Assert.That(rules.MustSee(new FsEvent { Op = FsOp.Chown, Path = "/tmp/x" }), Is.True, "a later step of create-chown-setuid");
            Assert.That(rules.MustSee(new FsEvent { Op = FsOp.GetAttr, Path = "/tmp/x" }), Is.False);
            Assert.That(rules.MustSee(new FsEvent { Op = FsOp.ReadDir, Path = "/tmp" }), Is.False);
        });
    }
}
