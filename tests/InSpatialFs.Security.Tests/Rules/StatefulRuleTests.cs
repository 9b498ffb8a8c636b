using InSpatialFs.Interop;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Rules;
using static InSpatialFs.Security.Tests.Rules.RuleTestKit;

namespace InSpatialFs.Security.Tests.Rules;

public sealed class StatefulRuleTests
{
    private const string CountRule = """
        - rule: burst
          condition: evt.op = unlink
          threshold: {by: [container.id, proc.pid], window: 10s, count: {gte: 3}}
        """;

    private const string DistinctRule = """
        - rule: spread
          condition: evt.op = opendir
          threshold: {by: [proc.pid], window: 10s, distinct: {field: fs.dir, gte: 3}}
        """;

    private const string SequenceRule = """
        - rule: dropexec
          sequence:
            by: [container.id]
            maxspan: 60s
            steps:
              - {name: drop, condition: evt.op = create and fs.path startswith /tmp/}
              - {name: run, condition: evt.op = open and evt.is_exec and fs.path = $drop.fs.path and proc.pid != $drop.proc.pid}
            until: evt.op = unlink and fs.path = $drop.fs.path
        """;

    private static FsEvent Exec(string path, long at, int pid = 200, string container = "web-1")
    {
        FsEvent e = Ev(FsOp.Open, path, at, pid: pid, container: container);
        e.IsExec = true;
        return e;
    }

    [Test]
    public void Count_threshold_fires_when_N_events_fall_within_the_window()
    {
        RuleEngine engine = Engine(CountRule);
        Assert.That(Feed(engine, Ev(FsOp.Unlink, "/a", 0), Ev(FsOp.Unlink, "/b", 4)), Is.Empty);
        Assert.That(Feed(engine, Ev(FsOp.Unlink, "/c", 9)), Is.EqualTo(new[] { "burst" }));
    }

    [Test]
    public void Count_threshold_window_slides_so_old_events_drop_out()
    {
        RuleEngine engine = Engine(CountRule);
        Assert.That(Feed(engine, Ev(FsOp.Unlink, "/a", 0), Ev(FsOp.Unlink, "/b", 6), Ev(FsOp.Unlink, "/c", 11)), Is.Empty);
        // /b (6s), /c (11s), /d (15s) are within 10 s of each other.
        Assert.That(Feed(engine, Ev(FsOp.Unlink, "/d", 15)), Is.EqualTo(new[] { "burst" }));
    }

    [Test]
    public void Count_threshold_groups_by_key()
    {
        RuleEngine engine = Engine(CountRule);
        Assert.That(Feed(engine, Ev(FsOp.Unlink, "/a", 0, pid: 1), Ev(FsOp.Unlink, "/b", 1, pid: 2), Ev(FsOp.Unlink, "/c", 2, pid: 1)), Is.Empty);
        Assert.That(Feed(engine, Ev(FsOp.Unlink, "/d", 3, pid: 1)), Is.EqualTo(new[] { "burst" }));
    }

    [Test]
    public void Count_threshold_starts_over_after_firing()
    {
        RuleEngine engine = Engine(CountRule);
        Assert.That(Feed(engine, Ev(FsOp.Unlink, "/a", 0), Ev(FsOp.Unlink, "/b", 1), Ev(FsOp.Unlink, "/c", 2)), Has.Count.EqualTo(1));
        Assert.That(Feed(engine, Ev(FsOp.Unlink, "/d", 3), Ev(FsOp.Unlink, "/e", 4)), Is.Empty);
        Assert.That(Feed(engine, Ev(FsOp.Unlink, "/f", 5)), Has.Count.EqualTo(1));
    }

    [Test]
    public void Distinct_threshold_counts_distinct_values_only()
    {
        RuleEngine engine = Engine(DistinctRule);
        Assert.That(Feed(engine, Ev(FsOp.OpenDir, "/a/x", 0), Ev(FsOp.OpenDir, "/a/y", 1), Ev(FsOp.OpenDir, "/b/x", 2), Ev(FsOp.OpenDir, "/b/y", 3)), Is.Empty);
        Assert.That(Feed(engine, Ev(FsOp.OpenDir, "/c/x", 4)), Is.EqualTo(new[] { "spread" }));
    }

    [Test]
    public void Distinct_threshold_forgets_values_outside_the_window()
    {
        RuleEngine engine = Engine(DistinctRule);
        Assert.That(Feed(engine, Ev(FsOp.OpenDir, "/a/x", 0), Ev(FsOp.OpenDir, "/b/x", 1), Ev(FsOp.OpenDir, "/c/x", 20)), Is.Empty);
        Assert.That(Feed(engine, Ev(FsOp.OpenDir, "/d/x", 21)), Is.Empty);
        Assert.That(Feed(engine, Ev(FsOp.OpenDir, "/e/x", 22)), Is.EqualTo(new[] { "spread" }));
    }

    [Test]
    public void Sequence_fires_with_captures_and_keeps_the_evidence_of_each_step()
    {
        RuleEngine engine = Engine(SequenceRule);
        FsEvent drop = Ev(FsOp.Create, "/tmp/p", 0, pid: 100);
        drop.Seq = 7;
        FsEvent run = Exec("/tmp/p", 5);
        run.Seq = 9;
        var detections = new List<Detection>();
        engine.Analyze(drop, detections);
        engine.Analyze(run, detections);
        Detection d = detections.Single();
        Assert.That(d.Evidence.Select(e => e.Seq), Is.EqualTo(new ulong[] { 7, 9 }));
        Assert.That(d.CompletingSeq, Is.EqualTo(9));
    }

    [Test]
    public void Sequence_capture_must_match()
    {
        RuleEngine engine = Engine(SequenceRule);
        Assert.That(Feed(engine, Ev(FsOp.Create, "/tmp/p", 0, pid: 100), Exec("/tmp/q", 1)), Is.Empty);
        Assert.That(Feed(engine, Exec("/tmp/p", 2, pid: 100)), Is.Empty, "same pid as the dropper: $drop.proc.pid excludes it");
        Assert.That(Feed(engine, Exec("/tmp/p", 3)), Is.EqualTo(new[] { "dropexec" }));
    }

    [Test]
    public void Sequence_expires_after_maxspan()
    {
        RuleEngine engine = Engine(SequenceRule);
        Assert.That(Feed(engine, Ev(FsOp.Create, "/tmp/p", 0), Exec("/tmp/p", 61)), Is.Empty);
        Assert.That(Feed(Engine(SequenceRule), Ev(FsOp.Create, "/tmp/p", 0), Exec("/tmp/p", 59)), Is.EqualTo(new[] { "dropexec" }),
            "the control: the same steps inside the maxspan fire");
    }

    [Test]
    public void Sequence_until_cancels_the_pending_instance()
    {
        RuleEngine engine = Engine(SequenceRule);
        Assert.That(Feed(engine, Ev(FsOp.Create, "/tmp/p", 0), Ev(FsOp.Unlink, "/tmp/p", 1), Exec("/tmp/p", 2)), Is.Empty);
        Assert.That(Feed(Engine(SequenceRule), Ev(FsOp.Create, "/tmp/p", 0), Ev(FsOp.Unlink, "/tmp/other", 1), Exec("/tmp/p", 2)),
            Is.EqualTo(new[] { "dropexec" }), "the control: an unlink of another path cancels nothing");
    }

    [Test]
    public void Sequence_is_keyed_by_its_by_fields()
    {
        RuleEngine engine = Engine(SequenceRule);
        Assert.That(Feed(engine, Ev(FsOp.Create, "/tmp/p", 0, container: "a"), Exec("/tmp/p", 1, container: "b")), Is.Empty);
        Assert.That(Feed(engine, Exec("/tmp/p", 2, container: "a")), Is.EqualTo(new[] { "dropexec" }));
    }

    [Test]
    public void Sequence_keeps_one_pending_instance_per_step_and_key()
    {
        RuleEngine engine = Engine(SequenceRule);
        // The newer drop replaces the older pending instance: memory stays bounded.
        Assert.That(Feed(engine, Ev(FsOp.Create, "/tmp/old", 0), Ev(FsOp.Create, "/tmp/new", 1), Exec("/tmp/old", 2)), Is.Empty);
        Assert.That(Feed(engine, Exec("/tmp/new", 3)), Is.EqualTo(new[] { "dropexec" }));
        Assert.That(engine.GetStats().StateKeys, Is.EqualTo(1));
    }

    [Test]
    public void Suppression_gives_one_detection_per_key_and_window()
    {
        RuleEngine engine = Engine("- rule: r\n  condition: evt.op = unlink\n  suppress: 60s\n");
        List<string> fired = Feed(engine, Ev(FsOp.Unlink, "/a", 0), Ev(FsOp.Unlink, "/b", 30), Ev(FsOp.Unlink, "/c", 30, container: "other"));
        Assert.That(fired, Is.EqualTo(new[] { "r", "r" }), "once for web-1, once for other");
        Assert.That(Feed(engine, Ev(FsOp.Unlink, "/d", 61)), Is.EqualTo(new[] { "r" }));
        RuleStats stats = engine.GetStats().PerRule.Single();
        Assert.That((stats.Hits, stats.Suppressed), Is.EqualTo((4L, 1L)));
    }

    [Test]
    public void Inline_deny_rule_denies_on_the_request_path()
    {
        RuleEngine engine = Engine("- rule: no_shadow\n  condition: evt.op = open and fs.path = /etc/shadow\n  actions: [deny, alert]\n");
        var detections = new List<Detection>();
        Verdict v = engine.EvaluateInline(Ev(FsOp.Open, "/etc/shadow"), detections);
        Assert.That((v.IsDenied, v.Error, v.Reason), Is.EqualTo((true, Interop.Errno.EACCES, "no_shadow")));
        Assert.That(detections.Single().Actions, Is.EqualTo(ResponseAction.Deny | ResponseAction.Alert));
        Assert.That(engine.EvaluateInline(Ev(FsOp.Open, "/etc/passwd"), detections), Is.EqualTo(Verdict.Allow));
        engine.Analyze(Ev(FsOp.Open, "/etc/shadow"), detections);
        Assert.That(detections, Has.Count.EqualTo(1), "an inline rule is not evaluated again by the analyser");
    }

    [Test]
    public void Monitor_mode_allows_but_reports_would_deny()
    {
        RuleEngine engine = Engine("- rule: no_shadow\n  condition: fs.path = /etc/shadow\n  actions: [deny]\n  mode: monitor\n");
        var detections = new List<Detection>();
        Verdict v = engine.EvaluateInline(Ev(FsOp.Open, "/etc/shadow"), detections);
        Assert.That(v.IsDenied, Is.False);
        Assert.That(v.Decision, Is.EqualTo(Decision.WouldDeny));
        Assert.That(detections.Single().Mode, Is.EqualTo(RuleMode.Monitor));
    }

    [Test]
    public void Inline_threshold_denies_once_the_rate_is_exceeded()
    {
        RuleEngine engine = Engine("- rule: rate\n  condition: evt.op = open\n  actions: [deny]\n  threshold: {by: [proc.pid], window: 1s, count: {gte: 3}}\n");
        var d = new List<Detection>();
        Assert.That(engine.EvaluateInline(Ev(FsOp.Open, "/a"), d).IsDenied, Is.False);
        Assert.That(engine.EvaluateInline(Ev(FsOp.Open, "/b"), d).IsDenied, Is.False);
        Assert.That(engine.EvaluateInline(Ev(FsOp.Open, "/c"), d).IsDenied, Is.True);
    }

    [Test]
    public void Key_cap_evicts_the_least_recently_seen_key_and_is_reported()
    {
        RuleEngine engine = Engine(CountRule, maxKeys: 2);
        Feed(engine, Ev(FsOp.Unlink, "/a", 0, pid: 1), Ev(FsOp.Unlink, "/a", 1, pid: 2), Ev(FsOp.Unlink, "/a", 2, pid: 3));
        RuleEngineStats stats = engine.GetStats();
        Assert.That((stats.StateKeys, stats.CapHits, stats.MaxKeysPerRule), Is.EqualTo((2L, 1L, 2)));
    }

    [Test]
    public void Idle_keys_are_evicted_at_the_cap_before_live_ones()
    {
        RuleEngine engine = Engine(CountRule, maxKeys: 2);
        Feed(engine, Ev(FsOp.Unlink, "/a", 0, pid: 1), Ev(FsOp.Unlink, "/a", 30, pid: 2), Ev(FsOp.Unlink, "/a", 31, pid: 3));
        RuleEngineStats stats = engine.GetStats();
        Assert.That((stats.Evictions, stats.CapHits), Is.EqualTo((1L, 0L)));
    }

    [Test]
    public void Sweep_and_forget_container_evict_state()
    {
        RuleEngine engine = Engine(CountRule);
        Feed(engine, Ev(FsOp.Unlink, "/a", 0, container: "a"), Ev(FsOp.Unlink, "/a", 100, container: "b"), Ev(FsOp.Unlink, "/a", 100, container: "c"));
        Assert.That(engine.Sweep(T0 + (105 * Second)), Is.EqualTo(1), "container a idle for more than the window");
        Assert.That(engine.ForgetContainer("b"), Is.EqualTo(1));
        Assert.That(engine.GetStats().StateKeys, Is.EqualTo(1));
        Assert.That(engine.GetStats().Evictions, Is.EqualTo(2));
    }
}

public sealed class SequenceCaptureCopyTests
{
    [Test]
    public void Reused_capture_copies_every_field_of_the_event()
    {
        // Reflection is fine here: the point is to notice a field added to FsEvent but not to CopyEvent.
        var source = new FsEvent();
        var target = new FsEvent();
        int i = 1;
        foreach (System.Reflection.FieldInfo f in typeof(FsEvent).GetFields())
        {
            object value = f.FieldType switch
            {
                Type t when t == typeof(string) => "v" + i,
                Type t when t == typeof(bool) => true,
                Type t when t.IsEnum => Enum.ToObject(t, 1),
                Type t when t == typeof(InodeIdentity) => new InodeIdentity(1, (ulong)i, 2, Persistent: true),
                Type t when t == typeof(InSpatialFs.Security.Identity.ProcessContext) => new InSpatialFs.Security.Identity.ProcessContext { Pid = i },
                Type t => Convert.ChangeType(i, t, System.Globalization.CultureInfo.InvariantCulture),
            };
            f.SetValue(source, value);
            i++;
        }

        RuleRuntime.CopyEvent(source, target);
        foreach (System.Reflection.FieldInfo f in typeof(FsEvent).GetFields())
        {
            Assert.That(f.GetValue(target), Is.EqualTo(f.GetValue(source)), f.Name);
        }
    }
}

public sealed class LargeCountThresholdTests
{
    private const string Rule = """
        - rule: storm
          condition: evt.op = read
          threshold: {by: [proc.pid], window: 1s, count: {gte: 1000}}
        """;

    private static List<string> Burst(RuleEngine engine, int count, long startNanos, long everyNanos)
    {
        var fired = new List<string>();
        for (int i = 0; i < count; i++)
        {
            FsEvent e = RuleTestKit.Ev(FsOp.Read, "/f");
            e.TimeUnixNanos = RuleTestKit.T0 + startNanos + (i * everyNanos);
            fired.AddRange(RuleTestKit.Feed(engine, e));
        }

        return fired;
    }

    [Test]
    public void Large_count_fires_within_the_window_with_bounded_state()
    {
        RuleEngine engine = RuleTestKit.Engine(Rule);
        Assert.That(Burst(engine, 999, 0, 500_000), Is.Empty);
        Assert.That(Burst(engine, 1, 999L * 500_000, 1), Is.EqualTo(new[] { "storm" }));
    }

    [Test]
    public void Large_count_spread_beyond_the_window_does_not_fire()
    {
        RuleEngine engine = RuleTestKit.Engine(Rule);
        Assert.That(Burst(engine, 3000, 0, 2_000_000), Is.Empty, "500 per second never reaches 1000 per second");
        Assert.That(Burst(RuleTestKit.Engine(Rule), 1000, 0, 500_000), Is.EqualTo(new[] { "storm" }),
            "the control: the same count at 2000 per second fires");
    }
}
