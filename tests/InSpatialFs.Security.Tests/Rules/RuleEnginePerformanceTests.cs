using InSpatialFs.Security.Events;
using InSpatialFs.Security.Rules;
using InSpatialFs.TestKit.Runtime;
using InSpatialFs.TestKit.Workloads;

namespace InSpatialFs.Security.Tests.Rules;

/// <summary>Steady-state properties of the built-in set over a benign, realistic event mix (timing is for the benchmarks).</summary>
public sealed class RuleEnginePerformanceTests
{

    [Test]
    public void Benign_mix_produces_no_detections()
    {
        var engine = RuleEngine.Create(Array.Empty<RuleSource>());
        var detections = new List<Detection>();
        foreach (FsEvent e in BenignEventMix.Create(20_000))
        {
            Assert.That(engine.EvaluateInline(e, detections).IsDenied, Is.False);
            engine.Analyze(e, detections);
        }

        Assert.That(detections.Select(d => d.Rule).Distinct(), Is.Empty);
        Assert.That(engine.RuleSet.Count, Is.GreaterThanOrEqualTo(20), "the control: the built-in rules were loaded and evaluated");
    }

    [Test]
    public void Built_in_set_allocates_nothing_per_event_in_steady_state()
    {
        var engine = RuleEngine.Create(Array.Empty<RuleSource>());
        (long allocated, List<Detection> detections) = SteadyState(engine, BenignEventMix.Create(200_000));
        Assert.That(detections, Is.Empty);
        Assert.That(allocated, Is.Zero, $"{allocated} bytes in the least-allocating of three rounds of 60,000 events");
    }

    /// <summary>Runs both paths over the events, warming up on the first tenth; the least bytes one third of the rest allocated, and what fired.</summary>
    private static (long Allocated, List<Detection> Detections) SteadyState(RuleEngine engine, FsEvent[] events)
    {
        var detections = new List<Detection>();
        int warm = events.Length / 10;
        for (int i = 0; i < warm; i++)
        {
            engine.EvaluateInline(events[i], detections);
            engine.Analyze(events[i], detections);
        }

        // The rest in three consecutive rounds (stateful rules must see time move on, not a replay).
        int third = (events.Length - warm) / 3;
        long least = SteadyAllocation.LeastBytesPerRound(round =>
        {
            for (int i = warm + (round * third); i < warm + ((round + 1) * third); i++)
            {
                engine.EvaluateInline(events[i], detections);
                engine.Analyze(events[i], detections);
            }
        });
        return (least, detections);
    }

    [Test]
    public void Inline_evaluation_allocates_nothing_when_nothing_objects()
    {
        const string site = """
            - rule: Deny shadow reads
              condition: evt.op = open and fs.path in (/etc/shadow, /etc/gshadow)
              actions: [deny, alert]
            - rule: Throttle unlink storms
              condition: evt.op = unlink
              actions: [deny]
              threshold: {by: [container.id, proc.pid], window: 1s, count: {gte: 5000}}
            """;
        var engine = RuleEngine.Create([new RuleSource("site.yaml", site)]);
        Assert.That(engine.RuleSet.InlineCount, Is.EqualTo(2));
        var detections = new List<Detection>();
        FsEvent[] events = BenignEventMix.Create(50_000);
        for (int i = 0; i < 5_000; i++)
        {
            engine.EvaluateInline(events[i], detections);
        }

        int denied = 0;
        long least = SteadyAllocation.LeastBytesPerRound(() =>
        {
            for (int i = 5_000; i < events.Length; i++)
            {
                denied += engine.EvaluateInline(events[i], detections).IsDenied ? 1 : 0;
            }
        });
        Assert.That(least, Is.Zero, "bytes in the least-allocating of three rounds of 45,000 events");
        Assert.That((denied, detections.Count), Is.EqualTo((0, 0)));
    }

    [Test]
    public void Built_ins_plus_Falco_s_file_rules_fire_nothing_on_the_benign_mix_and_allocate_nothing_per_event()
    {
        string falco = Path.Combine(TestContext.CurrentContext.TestDirectory, "Rules", "Falco", "falco_rules.yaml");
        var engine = RuleEngine.Create([RuleSource.FromFile(falco)]);
        Assert.That(engine.RuleSet.Rules.Count(r => r.DefinedIn == falco), Is.GreaterThanOrEqualTo(7));
        (long allocated, List<Detection> detections) = SteadyState(engine, BenignProcesses.Attach(BenignEventMix.Create(200_000)));
        Assert.That(detections.Select(d => d.Rule).Distinct(), Is.Empty);
        Assert.That(allocated, Is.Zero, $"{allocated} bytes in the least-allocating of three rounds of 60,000 events");
    }

    [Test]
    public void The_same_rules_do_fire_on_an_attack_event_of_the_same_process_positive_control()
    {
        string falco = Path.Combine(TestContext.CurrentContext.TestDirectory, "Rules", "Falco", "falco_rules.yaml");
        var engine = RuleEngine.Create([RuleSource.FromFile(falco)]);
        FsEvent e = BenignProcesses.Attach(BenignEventMix.Create(3))[2];
        e.Path = "/etc/shadow";
        var detections = new List<Detection>();
        engine.Analyze(e, detections);
        Assert.That(detections.Select(d => d.Rule), Does.Contain("Read sensitive file untrusted"));
    }
}
