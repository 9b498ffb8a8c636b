using InSpatialFs.Interop;
using InSpatialFs.Security.Policy;

namespace InSpatialFs.Security.Tests.Policy;

/// <summary>The journal of runtime-written objects, which a restarted daemon reloads to keep refusing their exec.</summary>
public sealed class RuntimeWrittenObjectsTests
{
    private const int Marks = 5000;

    [Test]
    public void A_journal_name_planted_as_a_symlink_or_a_hard_link_stops_the_start_and_the_file_it_leads_to_is_untouched()
    {
        string dir = Directory.CreateTempSubdirectory("inspatialfs-written-").FullName;
        try
        {
            string victim = Path.Combine(dir, "victim");
            File.WriteAllText(victim, "precious\n");
            string journal = Path.Combine(dir, "written");
            File.CreateSymbolicLink(journal, victim);
            Assert.Throws<UnsafePathException>(() => new RuntimeWrittenObjects(journalPath: journal).Dispose(), "a symlink");
            File.Delete(journal);
            using (var ln = System.Diagnostics.Process.Start("ln", [victim, journal])) ln.WaitForExit();
            Assert.Throws<UnsafePathException>(() => new RuntimeWrittenObjects(journalPath: journal).Dispose(), "a second name of another file");
            Assert.That(File.ReadAllText(victim), Is.EqualTo("precious\n"));

            File.Delete(journal);
            using (var marks = new RuntimeWrittenObjects(journalPath: journal))
            {
                marks.Add(new InodeIdentity(1, 2, 0, Persistent: true));
            }

            Assert.That(File.GetUnixFileMode(journal), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite), "positive control: a fresh journal, 0600");
            Assert.That(File.ReadAllText(journal), Is.EqualTo("1 2 0\n"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

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

    [Test]
    public void The_timer_saves_marks_within_about_a_second_each_time_it_is_armed_again()
    {
        // The timer runs only when a mark waits (an idle instance never wakes for it): the first mark after each flush
        // arms it again.
        string dir = Directory.CreateTempSubdirectory("inspatialfs-written-").FullName;
        try
        {
            string journal = Path.Combine(dir, "written");
            using var marks = new RuntimeWrittenObjects(journalPath: journal);
            for (ulong round = 1; round <= 3; round++)
            {
                marks.Add(new InodeIdentity(1, round, 0, Persistent: true));
                long expected = Enumerable.Range(1, (int)round).Sum(i => $"1 {i} 0\n".Length);
                var sw = System.Diagnostics.Stopwatch.StartNew();
                while (new FileInfo(journal).Length < expected && sw.Elapsed < TimeSpan.FromSeconds(5)) Thread.Sleep(20);
                Assert.That(new FileInfo(journal).Length, Is.EqualTo(expected), $"round {round}: saved by the timer, without a flush call");
                Assert.That(sw.Elapsed, Is.LessThan(TimeSpan.FromSeconds(3)), $"round {round}");
            }

            marks.Add(new InodeIdentity(1, 99, 0, Persistent: false));
            Thread.Sleep(1500);
            Assert.That(new FileInfo(journal).Length, Is.EqualTo(Enumerable.Range(1, 3).Sum(i => $"1 {i} 0\n".Length)),
                "a mark that does not outlive a restart is never journaled");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
