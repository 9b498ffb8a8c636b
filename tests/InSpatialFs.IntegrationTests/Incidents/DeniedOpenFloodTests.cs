using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using InSpatialFs.IntegrationTests.Membership;
using InSpatialFs.TestKit.Processes;
using static InSpatialFs.IntegrationTests.Security.ControlFiles;

namespace InSpatialFs.IntegrationTests.Incidents;

/// <summary>
/// Issue 10, "floods and grows" / issue 11, "analysis can be blinded": a container floods the mount with denied opens
/// (native/floodops.c, statically linked into the image, run by runc so it is a member). The daemon's memory stays
/// bounded, one incident carries the count, no denial goes uncounted or unanalysed, and another process's stat keeps
/// being answered meanwhile (its latency is reported).
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class DeniedOpenFloodTests : MembershipFixture
{
    protected override string Config => "paths:\n  forbidden: [/etc/secret]\n";

    /// <summary>The open incidents of floodops reading /etc/secret in the container.</summary>
    private List<JsonObject> FloodIncidents() => [.. Rig.Incidents().Where(i =>
        Str(i, "source") == "forbidden:/etc/secret" && Str(i, "process") == "floodops" && Str(i, "status") == "open")];

    private static long Count(List<JsonObject> incidents) => incidents.Sum(i => long.Parse(Str(i, "count"), CultureInfo.InvariantCulture));

    private static long RssKiB(int pid) =>
        long.Parse(File.ReadAllLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1],
            CultureInfo.InvariantCulture);

    private static string HostFloodops()
    {
        string tool = Path.Combine(DaemonProcess.RepoRoot, "native", "build", "floodops");
        Assert.That(File.Exists(tool), Is.True, $"{tool} is missing: `make native` builds it");
        return tool;
    }

    private static Dictionary<string, string> Fields(string line) =>
        line.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(kv => kv.Split('=', 2)).ToDictionary(kv => kv[0], kv => kv[1]);

    /// <summary>Runs the flood containers while a host process stats a file through the mount; samples the daemon's RSS.</summary>
    private (ShellResult[] Floods, Dictionary<string, string> Stat, long PeakRssKiB) Flood(string[] scripts)
    {
        string stop = Path.Combine(Rig.Rootfs.Work, "stop-" + Guid.NewGuid().ToString("N")[..6]);
        Task<ShellResult> stat = Task.Run(() => Shell.Run($"'{HostFloodops()}' stat '{Rig.MountPoint}/etc/hosts' '{stop}' 600", TimeSpan.FromMinutes(11)));
        MembershipRig.Background[] containers = [.. scripts.Select(s => Rig.RunInBackground(s))];
        long peak = 0;
        while (!containers.All(c => c.IsCompleted))
        {
            peak = Math.Max(peak, RssKiB(Rig.Rootfs.Daemon.Pid));
            Thread.Sleep(250);
        }

        File.WriteAllText(stop, "");
        ShellResult[] floods = [.. containers.Select(c => c.Finish(TimeSpan.FromMinutes(10)))];
        Assert.That(stat.Wait(TimeSpan.FromMinutes(1)), Is.True);
        Assert.That(stat.Result.ExitCode, Is.Zero, stat.Result.ToString());
        return (floods, Fields(stat.Result.StdOut), peak);
    }

    private void WaitAnalysed()
    {
        Assert.That(Eventually(() =>
        {
            Dictionary<string, string> s = Rig.Status();
            return MembershipRig.Number(s, "events_processed") >= MembershipRig.Number(s, "events_recorded");
        }, TimeSpan.FromSeconds(60)), Is.True, "the analyser caught up");
    }

    [Test]
    public void A_million_denied_opens_are_one_incident_with_the_count_in_bounded_memory()
    {
        const int Opens = 1_000_000;
        Dictionary<string, string> before = Rig.Status();
        long countBefore = Count(FloodIncidents());
        int flooding = FloodIncidents().Count;
        long rssBefore = RssKiB(Rig.Rootfs.Daemon.Pid);
        var clock = Stopwatch.StartNew();

        (ShellResult[] floods, Dictionary<string, string> stat, long peak) = Flood([$"/bin/floodops open /etc/secret {Opens}"]);
        clock.Stop();
        Dictionary<string, string> flood = Fields(floods[0].StdOut);
        Assert.That(flood["eacces"], Is.EqualTo(Opens.ToString(CultureInfo.InvariantCulture)), floods[0].ToString());
        WaitAnalysed();
        long rssAfter = RssKiB(Rig.Rootfs.Daemon.Pid);

        Dictionary<string, string> after = Rig.Status();
        Assert.That(MembershipRig.Number(after, "denials") - MembershipRig.Number(before, "denials"), Is.EqualTo(Opens), "no denial lost from the count");
        List<JsonObject> incidents = FloodIncidents();
        Assert.That(incidents, Has.Count.EqualTo(flooding + 1), "one incident for the flooding process, not a million");
        Assert.That(Count(incidents) - countBefore, Is.EqualTo(Opens), "the incident carries every denial");
        Assert.That(incidents[0].ContainsKey("container"), Is.True);
        Assert.That(MembershipRig.Number(after, "incident_repeats") - MembershipRig.Number(before, "incident_repeats"), Is.GreaterThanOrEqualTo(Opens - 1), "folded repeats are counted in status");

        Assert.That(stat["errors"], Is.EqualTo("0"));
        Assert.That(long.Parse(stat["stats"], CultureInfo.InvariantCulture), Is.GreaterThan(100), "the other process was served during the flood");
        Assert.That(peak - rssBefore, Is.LessThan(400 * 1024), "RSS growth during the flood stays bounded");
        Assert.That(rssAfter, Is.LessThanOrEqualTo(peak + 16 * 1024));

        TestContext.Out.WriteLine(FormattableString.Invariant(
            $"1,000,000 denied opens in {clock.Elapsed.TotalSeconds:0.0} s (flood {flood["seconds"]} s); daemon RSS before {rssBefore / 1024} MiB, peak during {peak / 1024} MiB, after {rssAfter / 1024} MiB; ") +
            $"second process stat (host, forced GETATTR): {stat["stats"]} stats, p50 {stat["p50_us"]} us, p99 {stat["p99_us"]} us, max {stat["max_us"]} us; " +
            $"status denials +{MembershipRig.Number(after, "denials") - MembershipRig.Number(before, "denials")}, incident count +{Count(incidents) - countBefore}, " +
            $"events_dropped {after["events_dropped"]}, events_waited {after["events_waited"]}");
    }

    [Test]
    public void Three_flooding_processes_lose_no_denial_to_analysis()
    {
        const int Opens = 100_000;
        Dictionary<string, string> before = Rig.Status();
        long countBefore = Count(FloodIncidents());
        int flooding = FloodIncidents().Count;
        string script = $"/bin/floodops open /etc/secret {Opens} & /bin/floodops open /etc/secret {Opens} & /bin/floodops open /etc/secret {Opens} & wait";
        (ShellResult[] floods, Dictionary<string, string> stat, long peak) = Flood([script]);
        Assert.That(floods[0].ExitCode, Is.Zero, floods[0].ToString());
        Assert.That(floods[0].StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => Fields(l)["eacces"]), Is.All.EqualTo(Opens.ToString(CultureInfo.InvariantCulture)));
        WaitAnalysed();

        Dictionary<string, string> after = Rig.Status();
        long denials = MembershipRig.Number(after, "denials") - MembershipRig.Number(before, "denials");
        Assert.That(denials, Is.EqualTo(3 * Opens));
        List<JsonObject> incidents = FloodIncidents();
        long counted = Count(incidents) - countBefore;
        Assert.That(incidents, Has.Count.EqualTo(flooding + 3), "one incident per flooding process");
        Assert.That(counted, Is.EqualTo(3 * Opens), "every denial of the three processes reached analysis and its incident");
        TestContext.Out.WriteLine(FormattableString.Invariant(
            $"3 x {Opens} denied opens: status denials +{denials}, {incidents.Count - flooding} incidents counting +{counted}, ") +
            $"events_dropped {after["events_dropped"]}, events_waited {after["events_waited"]}; peak RSS {peak / 1024} MiB; stat p99 {stat["p99_us"]} us");
    }
}
