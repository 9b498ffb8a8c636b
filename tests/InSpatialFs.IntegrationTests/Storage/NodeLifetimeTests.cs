using System.Diagnostics;
using InSpatialFs.Storage.Host;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Storage;

/// <summary>
/// No leaked nodes (issue 2) and no descriptor per node (issue 3): walking a large tree makes the kernel look up
/// every entry; once it drops its caches it FORGETs them all and `live_nodes` falls back to the root. A host tree of
/// 100,000 files walks with the daemon's descriptors bounded by its cache, far below the 20,000 open-file limit.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class NodeLifetimeTests
{
    /// <summary>The root, plus the odd node a concurrent kernel path may still hold for a moment.</summary>
    private const long Settled = 3;

    /// <summary>Descriptors the daemon may hold beyond its baseline: the host backend's descriptor cache plus slack.</summary>
    private const int FdBound = HostFileSystem.DefaultDescriptorCacheCapacity + 512;

    [Test]
    public void A_memory_tree_of_20000_files_leaves_no_node_behind_after_find_and_drop_caches()
    {
        using ControlledMount m = ControlledMount.Start("/var/tmp", withSource: false, "--memory", "--memory-size", "1GiB");
        Shell.Check(TreeScript(m.MountPoint, directories: 100, filesPerDirectory: 200), TimeSpan.FromMinutes(2));

        long before = m.DropCachesUntilLiveNodesAtMost(Settled, TimeSpan.FromSeconds(30));
        Assert.That(before, Is.LessThanOrEqualTo(Settled), "after creating the tree and dropping caches");
        Assert.That(Shell.Check($"find '{m.MountPoint}' | wc -l").Trim(), Is.EqualTo("20101"));
        long walked = m.LiveNodes;
        Assert.That(walked, Is.GreaterThanOrEqualTo(20_000), "find made the kernel look up every entry");

        long after = m.DropCachesUntilLiveNodesAtMost(Settled, TimeSpan.FromSeconds(30));
        TestContext.Out.WriteLine($"memory: live_nodes {before} before find, {walked} after find, {after} after drop_caches");
        Assert.That(after, Is.LessThanOrEqualTo(Settled), "every looked-up node was forgotten");
        m.AssertAlive();
        Assert.That(m.Stop(), Is.Zero);
    }

    [Test]
    public void A_host_tree_of_100000_files_walks_without_EMFILE_with_bounded_descriptors_and_no_leaked_nodes()
    {
        // tmpfs source, built directly on the host (not through the mount) so the walk meets 100,000 unseen files.
        using ControlledMount m = ControlledMount.Start("/dev/shm", withSource: true);
        Shell.Check(TreeScript(m.Source, directories: 500, filesPerDirectory: 200), TimeSpan.FromMinutes(2));
        int baselineFds = m.DaemonFdCount;

        int maxFds = 0;
        using var stop = new CancellationTokenSource();
        var sampler = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    maxFds = Math.Max(maxFds, m.DaemonFdCount);
                }
                catch (IOException)
                {
                }

                Thread.Sleep(5);
            }
        });

        var clock = Stopwatch.StartNew();
        ShellResult names = Shell.Run($"find '{m.MountPoint}' | wc -l", TimeSpan.FromSeconds(60));
        long walked = m.LiveNodes;
        ShellResult stats = Shell.Run($"find '{m.MountPoint}' -type f -print0 | xargs -0 stat -c %s | wc -l", TimeSpan.FromSeconds(60));
        ShellResult du = Shell.Run($"du -s --inodes '{m.MountPoint}'", TimeSpan.FromSeconds(60));
        TimeSpan walkTime = clock.Elapsed;
        stop.Cancel();
        sampler.Wait();

        Assert.Multiple(() =>
        {
            Assert.That(names.ExitCode, Is.Zero, names.ToString());
            Assert.That(names.StdOut.Trim(), Is.EqualTo("100501"), "every file and directory listed");
            Assert.That(stats.ExitCode, Is.Zero, stats.ToString());
            Assert.That(stats.StdOut.Trim(), Is.EqualTo("100000"), "every file stat()ed");
            Assert.That(du.ExitCode, Is.Zero, du.ToString());
            Assert.That(du.StdOut, Does.StartWith("100501"));
            Assert.That(names.StdErr + stats.StdErr + du.StdErr, Does.Not.Contain("Too many open files"));
            Assert.That(m.Daemon.Output, Does.Not.Contain("EMFILE").And.Not.Contain("Too many open files"));
        });
        Assert.That(walked, Is.GreaterThanOrEqualTo(100_000), "the walk held a node per entry");
        Assert.That(maxFds - baselineFds, Is.LessThanOrEqualTo(FdBound), $"descriptors grew from {baselineFds} to {maxFds}");

        long after = m.DropCachesUntilLiveNodesAtMost(Settled, TimeSpan.FromSeconds(30));
        int fdsAfter = m.DaemonFdCount;
        TestContext.Out.WriteLine($"host: walk {walkTime.TotalSeconds:0.0}s, live_nodes {walked} after find, {after} after drop_caches; " +
                                  $"daemon fds {baselineFds} baseline, {maxFds} max during the walk, {fdsAfter} after");
        Assert.That(after, Is.LessThanOrEqualTo(Settled), "every looked-up node was forgotten");
        Assert.That(fdsAfter - baselineFds, Is.LessThanOrEqualTo(16), "forgotten nodes gave their descriptors back");
        m.AssertAlive();
        Assert.That(m.Stop(), Is.Zero);
    }

    /// <summary>A bash script making DIRECTORIES directories of FILES empty files each under ROOT (one touch per directory).</summary>
    private static string TreeScript(string root, int directories, int filesPerDirectory) =>
        $"set -e; cd '{root}'; mkdir $(seq -f d%g 0 {directories - 1}); " +
        $"for i in $(seq 0 {directories - 1}); do (cd d$i && touch $(seq -f f%g 0 {filesPerDirectory - 1})); done";
}
