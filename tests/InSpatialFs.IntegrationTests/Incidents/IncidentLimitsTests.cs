using System.Globalization;
using System.Text.Json.Nodes;
using InSpatialFs.IntegrationTests.Security;
using InSpatialFs.TestKit.Processes;
using static InSpatialFs.IntegrationTests.Security.ControlFiles;

namespace InSpatialFs.IntegrationTests.Incidents;

/// <summary>
/// Issue 10, "incidents that stay useful under attack", through a real instance and its config: a source over its
/// rate limit counts what it suppressed in status, metrics and its incident; incidents.jsonl rotates by size, keeps
/// the configured number of files, and a restarted instance lists the open incidents and continues the ids.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class IncidentLimitsTests
{
    private SecuredMount _mount = null!;

    [OneTimeSetUp]
    public void Mount() => _mount = SecuredMount.Start("standard", """
        incidents: { rate: 0.01, max_burst: 5, rotate_bytes: 4KiB, keep: 2 }
        """);

    [OneTimeTearDown]
    public void Unmount() => _mount?.Dispose();

    private string IncidentFile => Path.Combine(_mount.StateDirectory, "incidents.jsonl");

    [Test]
    public void A_source_over_its_rate_limit_is_counted_as_suppressed_and_the_file_rotates_and_survives_a_restart()
    {
        // 40 distinct forbidden files (/secret/** is one policy source), one process each: 40 would-be incidents.
        ShellResult reads = _mount.Sh("for i in $(seq 1 40); do \"$FSOP\" read \"$M/secret/key$i\"; done");
        Assert.That(reads.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries), Has.Length.EqualTo(40).And.All.EqualTo("EACCES"), reads.ToString());
        Assert.That(Eventually(() => _mount.Status()["incidents_suppressed"] == "35", TimeSpan.FromSeconds(20)), Is.True,
            "status: " + string.Join(", ", _mount.Status().Where(kv => kv.Key.StartsWith("incident", StringComparison.Ordinal))));

        List<JsonObject> opened = [.. _mount.Incidents().Where(i => Str(i, "source") == "forbidden:/secret/**")];
        Assert.That(opened, Has.Count.EqualTo(5), "max_burst: 5");
        Assert.That(Str(opened[^1], "suppressed"), Is.EqualTo("35"), "the source's latest incident carries the count");
        string metrics = File.ReadAllText(Path.Combine(_mount.ControlDirectory, "metrics"));
        Assert.That(metrics, Does.Contain($"inspatialfs_incidents_suppressed_total{{name=\"{_mount.Name}\"}} 35"));

        // Positive control: another source is not held by this one's limit, and a repeat is folded, not suppressed.
        Assert.That(_mount.Fsop("read $M/etc/shadow"), Is.EqualTo("EACCES"));
        JsonObject shadow = _mount.WaitForIncident(i => Str(i, "source") == "forbidden:/etc/shadow", "another source");
        Assert.That(Str(shadow, "count"), Is.EqualTo("1"));

        // Rotation: 4 KiB holds a few incidents; the status lines and the updates of the suppressed count push past it.
        string id = Str(shadow, "id");
        for (int i = 0; i < 12; i++)
        {
            // ack then resolve each incident in turn (a resolved one is not acknowledged back), then resolve again.
            Assert.That(Ctl(_mount.ControlDirectory, (i % 2 == 0 && i < 10 ? "ack " : "resolve ") + Str(opened[i / 2 % 5], "id")).ExitCode, Is.Zero);
        }

        Assert.That(Eventually(() => File.Exists(IncidentFile + ".1"), TimeSpan.FromSeconds(10)), Is.True, "incidents.jsonl rotated");
        long total = long.Parse(_mount.Status()["incidents"], CultureInfo.InvariantCulture);
        Assert.That(File.Exists(IncidentFile + ".3"), Is.False, "keep: 2");
        Assert.That(File.ReadLines(IncidentFile).First(), Does.Contain("\"type\":\"snapshot\""), "a rotated-in file starts with the snapshot");

        _mount.Daemon.Dispose();
        _mount.StartDaemon();
        Dictionary<string, string> status = _mount.Status();
        Assert.That(status["incidents"], Is.EqualTo(total.ToString(CultureInfo.InvariantCulture)), "the counter survives rotation and restart");
        List<JsonObject> after = _mount.Incidents();
        Assert.That(after.Select(i => Str(i, "id")), Does.Contain(id), "the open incident is back");
        Assert.That(_mount.Fsop("read $M/etc/shadow"), Is.EqualTo("EACCES"));
        JsonObject next = _mount.WaitForIncident(i => Str(i, "source") == "forbidden:/etc/shadow" && Str(i, "id") != id, "a new incident after the restart");
        Assert.That(Str(next, "id"), Is.EqualTo($"inc-{total + 1:D6}"), "ids continue");
    }
}

/// <summary>Issue 10: `exec.runtime_written: alert` was accepted and behaved as allow. It now allows the exec and raises an incident.</summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class RuntimeWrittenAlertTests
{
    private SecuredMount _mount = null!;

    [OneTimeSetUp]
    public void Mount() => _mount = SecuredMount.Start("standard", "exec: { runtime_written: alert }");

    [OneTimeTearDown]
    public void Unmount() => _mount?.Dispose();

    [Test]
    public void An_exec_of_a_file_written_at_run_time_runs_and_raises_an_alert_incident()
    {
        Assert.That(_mount.Sh("cp /bin/true \"$M/tmp/dropped\" && chmod 0755 \"$M/tmp/dropped\"").ExitCode, Is.Zero);
        Assert.That(_mount.Fsop("exec $M/tmp/dropped"), Is.EqualTo("OK"), "alert allows");
        JsonObject incident = _mount.WaitForIncident(i => Str(i, "source") == "alert:exec_runtime_written", "the alert");
        Assert.That((Str(incident, "response"), Str(incident["evidence"]?[0], "fs.path")), Is.EqualTo(("alert", "/tmp/dropped")));

        // Positive control: a file of the image (never written at run time) runs without an alert.
        Assert.That(_mount.Fsop("exec $M/usr/bin/tool"), Is.EqualTo("OK"));
        Thread.Sleep(500);
        Assert.That(_mount.Incidents().Count(i => Str(i, "source") == "alert:exec_runtime_written"), Is.EqualTo(1));
    }
}
