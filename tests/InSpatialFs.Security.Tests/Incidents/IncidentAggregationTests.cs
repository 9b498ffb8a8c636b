using System.Text.Json;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Incidents;

namespace InSpatialFs.Security.Tests.Incidents;

/// <summary>Incidents that stay useful under attack: repeats fold, each source is rate-limited, the file rotates and a start reads only what it needs.</summary>
public sealed class IncidentAggregationTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("inspatialfs-agg-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private static Func<string, Incident> Make(string source, string key, string output = "denied") => id => new Incident
    {
        Id = id,
        Time = DateTimeOffset.UtcNow,
        Source = source,
        Severity = Severity.High,
        Pid = 42,
        ProcessName = "cat",
        Output = output,
        Evidence = [new FsEvent { Op = FsOp.Open, Path = "/etc/shadow" }],
        Response = "deny",
        Key = key,
    };

    private string Live => Path.Combine(_dir, IncidentStore.FileName);

    [Test]
    public void A_repeat_of_the_same_source_process_and_path_adds_to_the_open_incident()
    {
        using var s = new IncidentStore(_dir);
        for (int i = 0; i < 100; i++) s.Report("forbidden:/etc/shadow", "k-shadow", Make("forbidden:/etc/shadow", "k-shadow"));
        (Incident? other, IncidentOutcome o) = s.Report("forbidden:/etc/shadow", "k-other-path", Make("forbidden:/etc/shadow", "k-other-path"));

        Incident first = s.List()[0];
        Assert.That((s.Count, first.Count, s.Repeats, o), Is.EqualTo((2, 100L, 99L, IncidentOutcome.Opened)));
        Assert.That(first.LastSeen, Is.GreaterThanOrEqualTo(first.Time));
        Assert.That(other!.Count, Is.EqualTo(1));

        Assert.That(s.SetStatus(first.Id, IncidentStatus.Acknowledged), Is.True);
        (Incident? after, IncidentOutcome reopened) = s.Report("forbidden:/etc/shadow", "k-shadow", Make("forbidden:/etc/shadow", "k-shadow"));
        Assert.That(reopened, Is.EqualTo(IncidentOutcome.Opened), "an acknowledged incident takes no more repeats");
        Assert.That(after!.Id, Is.Not.EqualTo(first.Id));
    }

    [Test]
    public void Each_source_opens_at_most_its_burst_and_counts_what_it_suppressed()
    {
        using var s = new IncidentStore(_dir, options: new IncidentOptions { MaxBurst = 5, RatePerSecond = 0.001 });
        var outcomes = new List<IncidentOutcome>();
        for (int i = 0; i < 20; i++) outcomes.Add(s.Report("forbidden:/secret/**", "k" + i, Make("forbidden:/secret/**", "k" + i)).Outcome);
        (Incident? _, IncidentOutcome otherSource) = s.Report("privilege:setuid", "p", Make("privilege:setuid", "p"));

        Assert.That(outcomes.Count(o => o == IncidentOutcome.Opened), Is.EqualTo(5));
        Assert.That(outcomes.Count(o => o == IncidentOutcome.Suppressed), Is.EqualTo(15));
        Assert.That(s.Suppressed, Is.EqualTo(15));
        Assert.That(s.List().Where(i => i.Source == "forbidden:/secret/**").Last().Suppressed, Is.EqualTo(15), "the source's latest incident carries the count");
        Assert.That(otherSource, Is.EqualTo(IncidentOutcome.Opened), "the limit is per source");
        Assert.That(s.Report("forbidden:/secret/**", "k0", Make("forbidden:/secret/**", "k0")).Outcome, Is.EqualTo(IncidentOutcome.Repeated),
            "a repeat of an open incident is never suppressed");
    }

    [Test]
    public void Counts_are_written_as_updates_and_a_restarted_store_goes_on_counting_the_same_incident()
    {
        string id;
        using (var s = new IncidentStore(_dir))
        {
            for (int i = 0; i < 1000; i++) id = s.Report("forbidden:/etc/shadow", "k", Make("forbidden:/etc/shadow", "k")).Incident!.Id;
            s.Flush(force: true);
            Assert.That(File.ReadAllLines(Live), Has.Length.EqualTo(2), "one incident line and one update line, not 1000 lines");
        }

        using var again = new IncidentStore(_dir);
        Incident inc = again.List().Single();
        Assert.That(inc.Count, Is.EqualTo(1000));
        again.Report("forbidden:/etc/shadow", "k", Make("forbidden:/etc/shadow", "k"));
        Assert.That((again.Count, inc.Count), Is.EqualTo((1, 1001L)));
    }

    [Test]
    public void The_file_rotates_by_size_keeps_the_configured_files_and_a_start_reads_only_the_live_one()
    {
        var options = new IncidentOptions { RotateBytes = 4 << 10, Keep = 2, RatePerSecond = 1e6, MaxBurst = 1_000_000 };
        string padding = new('x', 300);
        List<string> open = [];
        long total;
        int rotations;
        using (var s = new IncidentStore(_dir, options: options))
        {
            for (int i = 0; i < 800; i++)
            {
                Incident inc = s.Report("forbidden:/secret/**", "k" + i, Make("forbidden:/secret/**", "k" + i, padding)).Incident!;
                if (i % 100 == 0) open.Add(inc.Id);
                else s.SetStatus(inc.Id, IncidentStatus.Resolved);
                if (i % 10 == 0) s.Flush();
            }

            for (int r = 0; r < 7; r++) s.Report("forbidden:/secret/**", "k0", Make("forbidden:/secret/**", "k0"));
            s.Flush(force: true);
            total = s.Total;
            rotations = s.Rotations;
        }

        Assert.That(rotations, Is.GreaterThan(20), "a history many times the rotation size");
        Assert.That(File.Exists(Live + ".1") && File.Exists(Live + ".2"), Is.True);
        Assert.That(File.Exists(Live + ".3"), Is.False, "keep: 2");
        // Bounded by the rotation size, or twice the snapshot of what is still open when that is larger.
        Assert.That(new FileInfo(Live).Length, Is.LessThan(16 << 10));

        using var again = new IncidentStore(_dir, options: options);
        Assert.That(again.List(IncidentStatus.Open).Select(i => i.Id), Is.EquivalentTo(open), "every open incident, though most were opened many rotations ago");
        Assert.That(again.Get(open[0])!.Count, Is.EqualTo(8));
        Assert.That(again.Total, Is.EqualTo(total), "the id counter comes from the snapshot");
        Assert.That(again.LoadedLines, Is.EqualTo(File.ReadAllLines(Live).Length).And.LessThan(200), "a start reads the live file only");
        Assert.That(again.Report("x", "new", Make("x", "new")).Incident!.Id, Is.EqualTo($"inc-{total + 1:D6}"));
    }

    [Test]
    public void A_rotation_interrupted_after_the_old_file_moved_is_completed_at_the_next_start()
    {
        using (var s = new IncidentStore(_dir))
        {
            s.Report("a", "k", Make("a", "k"));
            s.Flush();
        }

        // As if the daemon died between "live -> .1" and ".new -> live": the fsynced new file is all there is.
        File.Move(Live, Live + ".1");
        File.WriteAllText(Live + ".new", File.ReadAllText(Live + ".1"));
        using (var s = new IncidentStore(_dir))
        {
            Assert.That(s.Count, Is.EqualTo(1));
            Assert.That(File.Exists(Live + ".new"), Is.False);
        }

        // Died while writing the new file: the live one is intact, the half-written one goes.
        File.WriteAllText(Live + ".new", "{\"type\":\"snap");
        using var again = new IncidentStore(_dir);
        Assert.That((again.Count, again.SkippedLines, File.Exists(Live + ".new")), Is.EqualTo((1, 0, false)));
    }

    [Test]
    public void Memory_holds_at_most_the_cap_and_resolved_incidents_go_first()
    {
        using var s = new IncidentStore(null, options: new IncidentOptions { MaxInMemory = 10, RatePerSecond = 1e6, MaxBurst = 1_000_000 });
        string keepOpen = s.Report("src", "first", Make("src", "first")).Incident!.Id;
        for (int i = 0; i < 30; i++)
        {
            Incident inc = s.Report("src", "k" + i, Make("src", "k" + i)).Incident!;
            s.SetStatus(inc.Id, IncidentStatus.Resolved);
        }

        Assert.That(s.Count, Is.EqualTo(10));
        Assert.That(s.Get(keepOpen), Is.Not.Null, "the open incident outlives newer resolved ones");
        Assert.That(s.Total, Is.EqualTo(31));
    }

    [Test]
    public void Incident_lines_carry_count_last_seen_and_suppressed()
    {
        using var s = new IncidentStore(null);
        s.Report("src", "k", Make("src", "k"));
        Incident inc = s.Report("src", "k", Make("src", "k")).Incident!;
        using var doc = JsonDocument.Parse(s.ToJsonLine(inc.Id));
        Assert.That(doc.RootElement.GetProperty("count").GetInt64(), Is.EqualTo(2));
        Assert.That(doc.RootElement.GetProperty("suppressed").GetInt64(), Is.Zero);
        Assert.That(doc.RootElement.TryGetProperty("last_seen", out _), Is.True);
    }
}
