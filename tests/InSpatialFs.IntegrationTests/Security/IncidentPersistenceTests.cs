using System.Text.Json.Nodes;
using static InSpatialFs.IntegrationTests.Security.ControlFiles;

namespace InSpatialFs.IntegrationTests.Security;

/// <summary>
/// Issue 4, "Tests": incidents survive a kill -9 of the daemon. A new daemon on the same config (same state_dir)
/// lists every incident reported before, with its status, and numbers new ones after them.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class IncidentPersistenceTests
{
    [Test]
    public void A_new_daemon_lists_every_incident_reported_before_a_kill_9()
    {
        using SecuredMount mount = SecuredMount.Start("enhanced");
        string[] attempts = ["read $M/secret/key", "read $M/etc/shadow", "write $M/usr/bin/tool", "chmod $M/data/p 04755", "mknod $M/data/dev chr", "create $M/opt/x 0644"];
        Assert.That(mount.Sh("touch data/p").ExitCode, Is.Zero);
        foreach (string attempt in attempts)
        {
            Assert.That(mount.Fsop(attempt), Is.Not.EqualTo("OK"), attempt);
        }

        Assert.That(Eventually(() => mount.Incidents().Count(IsPolicyDenial) == attempts.Length, TimeSpan.FromSeconds(10)), Is.True,
            "one policy incident per refused attempt: " + string.Join("\n", mount.Incidents().Select(i => i.ToJsonString())));
        List<JsonObject> before = mount.Incidents();
        string acknowledged = Str(before[0], "id");
        Assert.That(Ctl(mount.ControlDirectory, "ack " + acknowledged).ExitCode, Is.Zero);

        // "Reported" means on disk (appended and fsynced per batch): wait for that, then kill without any chance to flush.
        string journal = Path.Combine(mount.StateDirectory, "incidents.jsonl");
        Assert.That(Eventually(() => File.Exists(journal) && before.All(i => File.ReadAllText(journal).Contains(Str(i, "id"), StringComparison.Ordinal)), TimeSpan.FromSeconds(10)),
            Is.True, "incidents reach incidents.jsonl");
        mount.KillDaemon();
        Assert.That(TestKit.Processes.Mounts.IsFuse(mount.MountPoint), Is.False);

        mount.StartDaemon();
        List<JsonObject> after = mount.Incidents();
        Assert.That(after, Has.Count.GreaterThanOrEqualTo(before.Count), "nothing lost");
        after = after.Take(before.Count).ToList();
        Assert.That(after.Select(i => Str(i, "id")), Is.EqualTo(before.Select(i => Str(i, "id"))), "every incident id, in order");
        Assert.That(after.Select(i => (Str(i, "source"), Str(i, "severity"), Str(i, "pid"), Str(i, "output"))),
            Is.EqualTo(before.Select(i => (Str(i, "source"), Str(i, "severity"), Str(i, "pid"), Str(i, "output")))));
        Assert.That(Str(after.Single(i => Str(i, "id") == acknowledged), "status"), Is.EqualTo("acknowledged"));
        Assert.That(after.Where(i => Str(i, "id") != acknowledged).Select(i => Str(i, "status")), Is.All.EqualTo("open"));

        // The new daemon numbers on after the reloaded incidents.
        Assert.That(mount.Fsop("read $M/secret/key"), Is.EqualTo("EACCES"));
        JsonObject fresh = mount.WaitForIncident(i => before.All(b => Str(b, "id") != Str(i, "id")), "a new incident after the restart");
        Assert.That(string.CompareOrdinal(Str(fresh, "id"), Str(before[^1], "id")), Is.GreaterThan(0), $"{Str(fresh, "id")} follows {Str(before[^1], "id")}");
    }

    private static bool IsPolicyDenial(JsonObject incident) =>
        Str(incident, "process") == "fsop" && Str(incident, "source").Split(':')[0] is "forbidden" or "readonly" or "default" or "privilege";
}
