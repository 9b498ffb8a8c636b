using System.Globalization;
using InSpatialFs.TestKit.Processes;
using static InSpatialFs.IntegrationTests.Security.ControlFiles;

namespace InSpatialFs.IntegrationTests.Security;

/// <summary>
/// `events:` in the config, through a real instance: `journal: false` writes no events.jsonl (an operator whose events
/// go to alert outputs or the event stream, and who does not want them on the state disk too) while the decisions,
/// the events control file and incidents go on; `rotate_bytes` and `keep` rotate it by size and bound the files kept.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class EventJournalConfigTests
{
    private static string Journal(SecuredMount mount) => Path.Combine(mount.StateDirectory, "events.jsonl");

    [Test]
    public void Journal_false_writes_no_event_journal_and_the_events_file_and_incidents_go_on()
    {
        using SecuredMount mount = SecuredMount.Start("standard", "events: { journal: false }\n");
        ShellResult work = mount.Sh("for i in $(seq 1 50); do echo x > \"$M/tmp/f$i\"; done; \"$FSOP\" read \"$M/etc/shadow\"");
        Assert.That(work.StdOut.Trim(), Is.EqualTo("EACCES"), work.ToString());
        Assert.That(Eventually(() => long.Parse(mount.Status()["events_processed"], CultureInfo.InvariantCulture) >= 51, TimeSpan.FromSeconds(10)), Is.True);
        mount.WaitForIncident(i => Str(i, "source") == "forbidden:/etc/shadow", "the forbidden read");
        Assert.That(mount.Events().Count(e => Str(e, "fs.path").StartsWith("/tmp/f", StringComparison.Ordinal)), Is.GreaterThanOrEqualTo(50),
            "the events control file still has them");
        Assert.That(File.Exists(Journal(mount)) ? new FileInfo(Journal(mount)).Length : 0, Is.Zero, "nothing on the state disk");
    }

    [Test]
    public void Rotate_bytes_and_keep_rotate_the_event_journal_and_bound_its_files()
    {
        using SecuredMount mount = SecuredMount.Start("standard", "events: { rotate_bytes: 16KiB, keep: 2 }\n");
        ShellResult work = mount.Sh("for i in $(seq 1 300); do echo x > \"$M/tmp/f$i\"; done");
        Assert.That(work.ExitCode, Is.Zero, work.ToString());
        Assert.That(Eventually(() => File.Exists(Journal(mount) + ".2"), TimeSpan.FromSeconds(10)), Is.True, "300 creates are far more than 3 × 16 KiB of events");
        // The consumer may still be writing (and rotating: .1 is renamed to .2 before the journal becomes .1): wait until
        // the files stay as they are.
        string Files() => string.Join(' ', Enumerable.Range(0, 4).Select(n => n == 0 ? Journal(mount) : Journal(mount) + "." + n)
            .Select(f => File.Exists(f) ? new FileInfo(f).Length.ToString(System.Globalization.CultureInfo.InvariantCulture) : "-"));
        string settled = "";
        Assert.That(Eventually(() =>
        {
            string now = Files();
            bool same = now == settled;
            settled = now;
            Thread.Sleep(300);
            return same && File.Exists(Journal(mount) + ".1");
        }, TimeSpan.FromSeconds(20)), Is.True, "the journal settles");
        Assert.Multiple(() =>
        {
            Assert.That(File.Exists(Journal(mount) + ".3"), Is.False, "keep: 2");
            Assert.That(new FileInfo(Journal(mount) + ".1").Length, Is.InRange(16 << 10, 20 << 10), "rotated just past 16 KiB");
        });
    }
}
