using System.Diagnostics;
using System.Globalization;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Storage;

/// <summary>
/// Where the container mount's /dev/fuse readers run, seen as an operator would: each reader thread's
/// Cpus_allowed_list and status `readers`. On a machine with idle CPUs they are pinned one per CPU; a CPU-bound process
/// on one CPU lets them go while requests keep coming, and they are pinned again once it ends; --no-pin-readers leaves
/// them alone. The control mount's readers (ctl-reader-N) are never pinned.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class ReaderPlacementTests
{
    private static string Readers(ControlledMount m) =>
        m.Status().Split('\n').First(l => l.StartsWith("readers: ", StringComparison.Ordinal))["readers: ".Length..];

    /// <summary>Lookups of names that do not exist, from one process: each is a request (round makes the names new).</summary>
    private static void Lookups(ControlledMount m, int round, int count = 600) =>
        Shell.Run($"cd '{m.MountPoint}' && stat -c %i $(seq -f 'r{round}-%g' {count}) > /dev/null 2>&1");

    private static void RequireFewCpus()
    {
        if (Environment.ProcessorCount < 2 || Environment.ProcessorCount > InSpatialFs.Fuse.ProtocolServerOptions.DefaultReaderThreads)
        {
            Assert.Ignore($"{Environment.ProcessorCount} CPUs: pinning needs 2 CPUs or more, and a reader for each (the default is {InSpatialFs.Fuse.ProtocolServerOptions.DefaultReaderThreads})");
        }
    }

    [Test]
    public void Readers_are_pinned_one_per_cpu_let_go_while_a_cpu_is_busy_and_pinned_again_after()
    {
        RequireFewCpus();
        using ControlledMount m = ControlledMount.Start("/var/tmp", withSource: true);
        int pid = m.Daemon.ServerPid;
        string all = ProcessThreads.Cpus(pid, pid);
        Lookups(m, 0, 50);

        string[] Pinned() => ProcessThreads.Of(pid).Where(t => t.Name.StartsWith("fuse-reader-", StringComparison.Ordinal)).Select(t => t.Cpus).ToArray();
        string Shown() => ProcessThreads.Describe(pid);
        Assert.That(SpinWait.SpinUntil(() => Pinned().Length == Environment.ProcessorCount, TimeSpan.FromSeconds(10)), Is.True, Shown());
        Assert.That(Pinned(), Is.Unique.And.All.Not.Contain('-').And.All.Not.Contain(','), "one CPU each, each its own: " + Shown());
        Assert.That(Readers(m), Does.StartWith("pinned, one per CPU"));
        Assert.That(ProcessThreads.Of(pid).Where(t => t.Name.StartsWith("ctl-reader-", StringComparison.Ordinal)).Select(t => t.Cpus),
            Is.Not.Empty.And.All.EqualTo(all), "the control mount's readers: " + Shown());

        // A CPU-bound process on the first CPU: while requests come, a sample finds that CPU without idle time.
        int cpu = int.Parse(Pinned().Min()!, CultureInfo.InvariantCulture);
        using var hog = Process.Start(new ProcessStartInfo("taskset", ["-c", cpu.ToString(CultureInfo.InvariantCulture), "sh", "-c", "while :; do :; done"]))!;
        try
        {
            int round = 1;
            bool free = SpinWait.SpinUntil(() =>
            {
                Lookups(m, round++);
                return Pinned().All(c => c == all) && Readers(m).StartsWith("on any CPU", StringComparison.Ordinal);
            }, TimeSpan.FromSeconds(30));
            Assert.That(free, Is.True, $"readers under a busy CPU {cpu}: {Readers(m)}; " + Shown());
            Assert.That(Readers(m), Does.Contain($"CPU {cpu} was idle"));
        }
        finally
        {
            hog.Kill();
            hog.WaitForExit();
        }

        int again = 100;
        bool pinned = SpinWait.SpinUntil(() =>
        {
            Lookups(m, again++);
            return Pinned().Distinct().Count() == Environment.ProcessorCount && Readers(m).StartsWith("pinned", StringComparison.Ordinal);
        }, TimeSpan.FromSeconds(30));
        Assert.That(pinned, Is.True, $"readers after the busy CPU went idle: {Readers(m)}; " + Shown());
        Assert.That(m.Stop(), Is.Zero, m.Daemon.Output);
    }

    [Test]
    public void No_pin_readers_leaves_them_to_the_scheduler()
    {
        RequireFewCpus();
        using ControlledMount m = ControlledMount.Start("/var/tmp", withSource: true, "--no-pin-readers");
        int pid = m.Daemon.ServerPid;
        string all = ProcessThreads.Cpus(pid, pid);
        for (int round = 0; round < 3; round++)
        {
            Lookups(m, round);
        }

        (string Name, string Cpus)[] readers = ProcessThreads.Of(pid).Where(t => t.Name.StartsWith("fuse-reader-", StringComparison.Ordinal)).ToArray();
        Assert.That(readers.Select(t => t.Cpus), Is.Not.Empty.And.All.EqualTo(all), ProcessThreads.Describe(pid));
        Assert.That(Readers(m), Is.EqualTo("on any CPU (--no-pin-readers)"));
        Assert.That(m.Stop(), Is.Zero, m.Daemon.Output);
    }
}
