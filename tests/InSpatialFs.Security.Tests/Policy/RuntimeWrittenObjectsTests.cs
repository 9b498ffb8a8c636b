using InSpatialFs.Interop;
using InSpatialFs.Security.Policy;

namespace InSpatialFs.Security.Tests.Policy;

/// <summary>The journal of runtime-written objects, which a restarted daemon reloads to keep refusing their exec.</summary>
public sealed class RuntimeWrittenObjectsTests
{
    private const int Marks = 5000;

    [Test]
    public void A_flush_that_returns_has_appended_every_mark_made_before_it_even_with_the_timer_flushing_too()
    {
        // The last flush at a stop found the queue empty (the timer had just taken it) and returned; the process could
        // then exit before the timer's append, and the restarted daemon would let those files be executed.
        string dir = Directory.CreateTempSubdirectory("inspatialfs-written-").FullName;
        try
        {
            string journal = Path.Combine(dir, "written");
            using var marks = new RuntimeWrittenObjects(journalPath: journal);
            using var stop = new CancellationTokenSource();
            var timer = Task.Run(() =>
            {
                while (!stop.IsCancellationRequested) marks.Flush();
            });
            long expected = 0;
            for (ulong i = 1; i <= Marks; i++)
            {
                marks.Add(new InodeIdentity(1, i, 0, Persistent: true));
                marks.Flush();
                expected += $"1 {i} 0\n".Length;
                Assert.That(new FileInfo(journal).Length, Is.EqualTo(expected), $"flush {i}");
            }

            stop.Cancel();
            timer.Wait();
            using var restarted = new RuntimeWrittenObjects(journalPath: journal);
            Assert.That(restarted.Reloaded, Is.EqualTo(Marks));
            Assert.That(restarted.Contains(new InodeIdentity(1, Marks, 0, Persistent: true)), Is.True);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
