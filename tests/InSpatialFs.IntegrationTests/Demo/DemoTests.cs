using System.Diagnostics;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Demo;

/// <summary>`make run`'s main job (scripts/demo.sh) run as a user would, twice; its summary names every attack.</summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class DemoTests
{
    [Test]
    public void Demo_runs_twice_exits_zero_and_summarises_every_attack()
    {
        DaemonProcess.RequireMountable();
        if (!Shell.Has("runc"))
        {
            Assert.Ignore("runc is not installed");
        }

        for (int run = 1; run <= 2; run++)
        {
            var clock = Stopwatch.StartNew();
            ShellResult r = Shell.Run($"'{DaemonProcess.RepoRoot}/scripts/demo.sh'", TimeSpan.FromMinutes(5));
            Assert.That(r.ExitCode, Is.Zero, $"run {run}: {r}");
            string live = r.StdOut[..r.StdOut.LastIndexOf("summary", StringComparison.Ordinal)];
            Assert.That(live, Does.Contain("INCIDENT  inc-").And.Contain("DENY"), $"run {run}: the live view showed no incident or denial");
            Assert.That(live, Does.Not.Contain(" getattr ").And.Not.Contain(" release "), $"run {run}: the live view shows noise");
            string summary = r.StdOut[r.StdOut.LastIndexOf("summary", StringComparison.Ordinal)..];
            Assert.That(summary, Does.Match(@"operations served\s+[1-9][0-9]*"), $"run {run}");
            Assert.That(summary, Does.Match(@"denials\s+[1-9]"), $"run {run}");
            foreach (string rule in new[]
            {
                "forbidden:/etc/shadow", "Symlink to sensitive path", "Setuid or setgid bit set",
                "Drop and execute from temporary directory", "Mass rename by one process",
            })
            {
                Assert.That(summary, Does.Contain(rule), $"run {run}: no incident for {rule}:\n{summary}");
            }

            Assert.That(summary, Does.Contain("container exit code: 0").And.Contain("daemon exited 0"), $"run {run}");
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromMinutes(1)), $"run {run} took {clock.Elapsed}");
            Assert.That(Mounts.IsFuse("/var/lib/inspatialfs-demo/rootfs"), Is.False, "the demo left its mount behind");
        }
    }
}
