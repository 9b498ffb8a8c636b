using InSpatialFs.Security.Events;
using InSpatialFs.Security.Rules;

namespace InSpatialFs.Security.Tests.Rules;

/// <summary>Steady-state properties of the built-in set over a benign, realistic event mix (timing is for the benchmarks).</summary>
public sealed class RuleEnginePerformanceTests
{
    /// <summary>A web container's traffic: lookups, stats, reads of code and config, writes of logs and data, a few execs.</summary>
    internal static FsEvent[] BenignMix(int count)
    {
        (FsOp Op, string Path, bool Write, bool Exec)[] shapes =
        [
            (FsOp.Lookup, "/usr/lib/python3.12/json/__init__.py", false, false),
            (FsOp.GetAttr, "/srv/app/main.py", false, false),
            (FsOp.Open, "/srv/app/templates/index.html", false, false),
            (FsOp.Read, "/srv/app/templates/index.html", false, false),
            (FsOp.Release, "/srv/app/templates/index.html", false, false),
            (FsOp.Open, "/etc/resolv.conf", false, false),
            (FsOp.Open, "/var/log/app/access.log", true, false),
            (FsOp.Write, "/var/log/app/access.log", true, false),
            (FsOp.Create, "/srv/data/upload-17.tmp", true, false),
            (FsOp.Write, "/srv/data/upload-17.tmp", true, false),
            (FsOp.OpenDir, "/srv/app/static", false, false),
            (FsOp.ReadDir, "/srv/app/static", false, false),
            (FsOp.Open, "/usr/bin/python3.12", false, true),
            (FsOp.GetXattr, "/srv/app/main.py", false, false),
            (FsOp.Read, "/srv/app/main.py", false, false),
        ];
        var events = new FsEvent[count];
        long t = FsEventJson.ParseTime("2026-11-27T12:00:00Z");
        for (int i = 0; i < count; i++)
        {
            // Renames and deletes are rarer (3 per second per process), as in a web app handling uploads.
            (FsOp op, string path, bool write, bool exec) = (i % 64) switch
            {
                10 => (FsOp.Rename, "/srv/data/upload-17.tmp", true, false),
                42 => (FsOp.Unlink, "/srv/data/cache/old-1", true, false),
                _ => shapes[i % shapes.Length],
            };
            events[i] = new FsEvent
            {
                Op = op,
                Path = path,
                Target = op == FsOp.Rename ? "/srv/data/upload-17" : null,
                IsWrite = write,
                IsExec = exec,
                Mode = 0x81A4,
                Pid = 1000 + ((i / 64) % 8),
                ProcName = exec ? "gunicorn" : "python3",
                ContainerId = "web-1",
                Seq = (ulong)i + 1,
                // 200 events per second per process: well below every threshold.
                TimeUnixNanos = t + (i * 625_000L),
            };
        }

        return events;
    }

    [Test]
    public void Benign_mix_produces_no_detections()
    {
        var engine = RuleEngine.Create(Array.Empty<RuleSource>());
        var detections = new List<Detection>();
        foreach (FsEvent e in BenignMix(20_000))
        {
            Assert.That(engine.EvaluateInline(e, detections).IsDenied, Is.False);
            engine.Analyze(e, detections);
        }

        Assert.That(detections.Select(d => d.Rule).Distinct(), Is.Empty);
    }

    [Test]
    public void Built_in_set_allocates_nothing_per_event_in_steady_state()
    {
        var engine = RuleEngine.Create(Array.Empty<RuleSource>());
        var detections = new List<Detection>();
        FsEvent[] events = BenignMix(200_000);
        for (int i = 0; i < 20_000; i++)
        {
            engine.EvaluateInline(events[i], detections);
            engine.Analyze(events[i], detections);
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 20_000; i < events.Length; i++)
        {
            engine.EvaluateInline(events[i], detections);
            engine.Analyze(events[i], detections);
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(detections, Is.Empty);
        Assert.That(allocated, Is.Zero, $"{allocated} bytes over {events.Length - 20_000} events");
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
        FsEvent[] events = BenignMix(50_000);
        for (int i = 0; i < 5_000; i++)
        {
            engine.EvaluateInline(events[i], detections);
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        int denied = 0;
        for (int i = 5_000; i < events.Length; i++)
        {
            denied += engine.EvaluateInline(events[i], detections).IsDenied ? 1 : 0;
        }

        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.Zero);
        Assert.That((denied, detections.Count), Is.EqualTo((0, 0)));
    }
}
