using System.Text;
using InSpatialFs.Security.Events;
using InSpatialFs.TestKit.Processes;
using static InSpatialFs.Security.Tests.Manager.TestEvents;

namespace InSpatialFs.Security.Tests.Manager;

/// <summary>The sinks behind the manager: one serialisation per event for journal and subscribers, failures kept apart.</summary>
public sealed class EventSinksTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("inspatialfs-sinks-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    [Test]
    public void A_failing_subscriber_does_not_keep_the_event_from_the_journal_or_the_other_subscribers()
    {
        var lines = new List<string>();
        using (var sm = new SecurityManager(Demo(IsolationLevel.Standard, _dir) with { NeverSuspend = true }))
        {
            using IDisposable failing = sm.Subscribe((_, _) => throw new InvalidOperationException("a broken output"));
            using IDisposable good = sm.Subscribe((e, line) => lines.Add(Encoding.UTF8.GetString(line)));
            FsEvent denied = Ev(FsOp.Open, "/etc/shadow");
            sm.Decide(denied);
            sm.Record(denied);
            FsEvent allowed = Ev(FsOp.Open, "/tmp/x");
            sm.Decide(allowed);
            sm.Record(allowed);
            Assert.That(sm.WaitIdle(TimeSpan.FromSeconds(5)), Is.True);
        }

        Assert.That(lines, Has.Count.EqualTo(2), "the good subscriber got both events");
        Assert.That(lines.All(l => l.EndsWith('\n')), Is.True);
        string[] journal = File.ReadAllLines(Path.Combine(_dir, EventJournal.FileName));
        Assert.That(journal, Is.EqualTo(lines.Select(l => l.TrimEnd('\n')).ToArray()), "journal and subscriber see the same bytes");
        FsEvent first = FsEventJson.Parse(journal[0]);
        Assert.That((first.Path, first.Decision, first.Reason), Is.EqualTo(("/etc/shadow", Decision.Deny, "forbidden:/etc/shadow")));
        Assert.That(FsEventJson.Parse(journal[1]).Reason, Is.Null, "an allow has no evt.reason");
    }

    /// <summary>
    /// The state disk fills: the event journal loses lines, but alert outputs and the event stream (subscribers) still
    /// get every event, and the journal takes lines again once there is room.
    /// </summary>
    [Test]
    [NonParallelizable]
    [Category("Mount")]
    public void A_journal_on_a_full_disk_does_not_keep_events_from_the_subscribers()
    {
        string state = Path.Combine(_dir, "state");
        using SmallDisk disk = SmallDisk.Mount(state, "128k");
        int seen = 0;
        using (var sm = new SecurityManager(Demo(IsolationLevel.Standard, state) with { NeverSuspend = true }))
        {
            using IDisposable subscriber = sm.Subscribe(_ => seen++);
            disk.Fill();
            for (int i = 0; i < 2000; i++)
            {
                sm.Record(Ev(FsOp.GetAttr, "/tmp/f" + i));
            }

            Assert.That(sm.WaitIdle(TimeSpan.FromSeconds(10)), Is.True);
            Assert.That(seen, Is.EqualTo(2000), "every event reached the subscriber while the journal could not be written");
            disk.MakeRoom();
            sm.Record(Ev(FsOp.GetAttr, "/tmp/after-room"));
            Assert.That(sm.WaitIdle(TimeSpan.FromSeconds(10)), Is.True);
        }

        Assert.That(seen, Is.EqualTo(2001));
        Assert.That(File.ReadAllText(Path.Combine(state, EventJournal.FileName)), Does.Contain("/tmp/after-room"), "room again: the journal takes lines");
    }

    [Test]
    public void A_removed_subscriber_gets_nothing_more()
    {
        int seen = 0, control = 0;
        using var sm = new SecurityManager(Demo(IsolationLevel.Standard) with { NeverSuspend = true });
        using IDisposable stays = sm.Subscribe(_ => control++);
        IDisposable leaves = sm.Subscribe(_ => seen++);
        sm.Record(Ev(FsOp.GetAttr, "/tmp/a"));
        Assert.That(sm.WaitIdle(TimeSpan.FromSeconds(5)), Is.True);
        leaves.Dispose();
        sm.Record(Ev(FsOp.GetAttr, "/tmp/b"));
        Assert.That(sm.WaitIdle(TimeSpan.FromSeconds(5)), Is.True);
        Assert.That((seen, control), Is.EqualTo((1, 2)));
    }
}
