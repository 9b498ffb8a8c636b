using System.Diagnostics;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Storage;

/// <summary>
/// Issue 2, "Done when": the memory mount survives `stress-ng --class filesystem --all 1 -t 30s` on the mount with
/// the daemon still up, the mount still working, and no leaked nodes. Stressors that FUSE (or the standard level's
/// policy) does not support skip or fail on their own; that is logged, not asserted — the daemon must survive.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class StressLoadTests
{
    [Test]
    public void The_memory_mount_survives_the_stress_ng_filesystem_class_and_leaks_no_nodes()
    {
        if (!Shell.Has("stress-ng"))
        {
            Assert.Ignore("stress-ng is not installed (the Makefile's deps install it)");
        }

        // Known outcome on this mount: iomix stops at once ("out of system resources") because it fallocates 1 GiB up
        // front and gets ENOSPC from the size limit (also at 2 GiB, next to the other stressors' files); binderfs,
        // fiemap and verity skip themselves (no binderfs, no FIEMAP or fs-verity on FUSE).
        using ControlledMount m = ControlledMount.Start("/var/tmp", withSource: false, "--memory", "--memory-size", "1GiB");
        long baseline = m.DropCachesUntilLiveNodesAtMost(3, TimeSpan.FromSeconds(10));

        var clock = Stopwatch.StartNew();
        ShellResult run = Shell.Run($"stress-ng --class filesystem --all 1 -t 30s --temp-path '{m.MountPoint}' --metrics-brief", TimeSpan.FromSeconds(150));
        TestContext.Out.WriteLine($"stress-ng exit {run.ExitCode} after {clock.Elapsed.TotalSeconds:0}s (0 ok, 2 a stressor failed, 3 out of resources); warnings and failures:");
        foreach (string line in run.Both.Split('\n').Where(l => l.Contains("fail", StringComparison.OrdinalIgnoreCase)
                     || l.Contains("warn", StringComparison.Ordinal) || l.Contains("skipping", StringComparison.Ordinal)))
        {
            TestContext.Out.WriteLine("  " + line.Trim());
        }

        Assert.That(run.ExitCode, Is.Not.EqualTo(124), "stress-ng hung on the mount:\n" + run);
        m.AssertAlive();
        Assert.That(Mounts.IsFuse(m.MountPoint), Is.True, "still mounted");

        string probe = Path.Combine(m.MountPoint, "after-stress");
        File.WriteAllText(probe, "still works\n");
        Assert.That(File.ReadAllText(probe), Is.EqualTo("still works\n"));
        File.Delete(probe);

        long after = m.DropCachesUntilLiveNodesAtMost(baseline + 3, TimeSpan.FromSeconds(30));
        TestContext.Out.WriteLine($"live_nodes {baseline} before, {after} after stress-ng and drop_caches; open_handles {m.StatusValue("open_handles")}");
        Assert.That(after, Is.LessThanOrEqualTo(baseline + 3), "no nodes leaked by the load");
        Assert.That(m.StatusValue("open_handles"), Is.Zero, "every handle was released");
        Assert.That(m.Stop(), Is.Zero, "clean exit after the load:\n" + m.Daemon.Output);
    }
}
