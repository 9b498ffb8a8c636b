using InSpatialFs.Security.Events;

namespace InSpatialFs.Security.Tests.Incidents;

public sealed class EventJournalTests
{
    private static readonly string[] Expected = ["events.jsonl", "events.jsonl.1", "events.jsonl.2"];

    [Test]
    public void The_journal_rotates_by_size_and_keeps_N_files()
    {
        string dir = Directory.CreateTempSubdirectory("inspatialfs-journal-").FullName;
        try
        {
            using (var j = new EventJournal(dir, rotateBytes: 2000, keep: 2))
            {
                for (int i = 0; i < 100; i++) j.Write(new FsEvent { Op = FsOp.Read, Path = "/data/file-" + i, Seq = (ulong)i + 1 });
                j.Flush();
                Assert.That(j.Rotations, Is.GreaterThan(2));
            }

            string[] files = Directory.GetFiles(dir).Select(Path.GetFileName).Order().ToArray()!;
            Assert.That(files, Is.EqualTo(Expected));
            string[] current = File.ReadAllLines(Path.Combine(dir, "events.jsonl"));
            Assert.That(FsEventJson.Parse(current[^1]).Seq, Is.EqualTo(100UL), "the newest event is in the live file");
            Assert.That(new FileInfo(Path.Combine(dir, "events.jsonl.1")).Length, Is.LessThan(2000 + 400));
            ulong lastRotated = FsEventJson.Parse(File.ReadAllLines(Path.Combine(dir, "events.jsonl.1"))[^1]).Seq;
            Assert.That(lastRotated + 1, Is.EqualTo(FsEventJson.Parse(current[0]).Seq), ".1 holds the events just before the live file");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
