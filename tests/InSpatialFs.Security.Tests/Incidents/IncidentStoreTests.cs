using InSpatialFs.Security.Events;
using InSpatialFs.Security.Incidents;

namespace InSpatialFs.Security.Tests.Incidents;

public sealed class IncidentStoreTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("inspatialfs-inc-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private static Incident Make(string id, string source) => new()
    {
        Id = id,
        Time = DateTimeOffset.UtcNow,
        Source = source,
        Severity = Severity.High,
        ContainerId = "web-1",
        Pid = 42,
        ProcessName = "sh",
        Uid = 0,
        Evidence = [new FsEvent { Op = FsOp.Open, Path = "/etc/shadow", Seq = 7 }],
        Response = "deny",
    };

    [Test]
    public void Flushed_incidents_and_status_changes_survive_a_reopen()
    {
        string a, b;
        using (var s = new IncidentStore(_dir))
        {
            a = s.Add(id => Make(id, "forbidden:/etc/shadow")).Id;
            b = s.Add(id => Make(id, "rule:x")).Id;
            s.Flush();
            Assert.That(s.SetStatus(a, IncidentStatus.Acknowledged), Is.True);
            s.Flush();
        }

        using var again = new IncidentStore(_dir);
        Assert.That(again.List().Select(i => (i.Id, i.Status)), Is.EqualTo(new[] { (a, IncidentStatus.Acknowledged), (b, IncidentStatus.Open) }));
        Incident first = again.Get(a)!;
        Assert.That((first.Source, first.Pid, first.ProcessName, first.Evidence.Single().Path, first.Evidence[0].Seq),
            Is.EqualTo(("forbidden:/etc/shadow", 42, "sh", "/etc/shadow", 7UL)));
        Assert.That(again.Add(id => Make(id, "next")).Id, Is.Not.EqualTo(a).And.Not.EqualTo(b), "ids continue after a restart");
    }

    [Test]
    public void A_torn_last_line_is_skipped_not_fatal()
    {
        using (var s = new IncidentStore(_dir))
        {
            s.Add(id => Make(id, "one"));
            s.Flush();
        }

        File.AppendAllText(Path.Combine(_dir, IncidentStore.FileName), "{\"type\":\"incident\",\"id\":\"inc-0000");
        using var again = new IncidentStore(_dir);
        Assert.That(again.Count, Is.EqualTo(1));
        Assert.That(again.SkippedLines, Is.EqualTo(1));
    }

    [Test]
    public void Unflushed_incidents_are_not_on_disk_yet_and_flushed_ones_are()
    {
        using var s = new IncidentStore(_dir);
        s.Add(id => Make(id, "x"));
        string file = Path.Combine(_dir, IncidentStore.FileName);
        Assert.That(File.ReadAllText(file), Is.Empty);
        s.Flush();
        Assert.That(File.ReadAllLines(file), Has.Length.EqualTo(1));
    }
}
