using System.Globalization;
using InSpatialFs.IntegrationTests.Security;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Control;

/// <summary>
/// A burst of work leaves the GC with far more memory committed than it holds live, and a quiet container would keep it
/// resident for its life, as it would the nodes the kernel lets go of later. The server gives it back once it is quiet
/// (IdleMemoryReturn): RSS measured on the real server after tens of thousands of files were created and looked up
/// through it, after it went quiet, and after the kernel dropped its inodes.
/// </summary>
public sealed class IdleMemoryReturnTests
{
    private const int Files = 50_000;
    private const int Directories = 100;
    private string _work = "";

    [SetUp]
    public void CreateWorkDirectory()
    {
        DaemonProcess.RequireMountable();
        _work = Path.Combine("/var/tmp", "inspatialfs-idlemem-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Path.Combine(_work, "source"));
    }

    [TearDown]
    public void Cleanup()
    {
        foreach (string m in new[] { "mnt", "control" }) Mounts.ForceUnmount(Path.Combine(_work, m));
        Shell.Run($"rm -rf '{_work}'", TimeSpan.FromMinutes(2));
    }

    [Test]
    public void A_quiet_server_gives_back_what_a_burst_of_lookups_left_committed_and_what_forgotten_nodes_held()
    {
        string mnt = Path.Combine(_work, "mnt"), control = Path.Combine(_work, "control");
        using DaemonProcess daemon = DaemonProcess.Start(mnt,
            ["--source", Path.Combine(_work, "source"), "--state-dir", Path.Combine(_work, "state"), "--control", control, "--name", "idlemem"]);
        ControlFiles.WaitUntilServing(control, daemon);
        int server = daemon.ServerPid;
        long idle = AnonKiB(server);

        for (int d = 0; d < Directories; d++) Directory.CreateDirectory(Path.Combine(mnt, D(d)));
        for (int i = 0; i < Files; i++) File.Create(FileAt(mnt, i)).Dispose();
        for (int i = 0; i < Files; i++) Assert.That(File.Exists(FileAt(mnt, i)), Is.True);
        long burst = AnonKiB(server) - idle;
        // Control: the burst did leave memory resident, or the rest proves nothing.
        Assert.That(burst, Is.GreaterThan(40 * 1024), $"anonymous RSS grew only {burst} KiB over {Files} files");

        Assert.That(ControlFiles.Eventually(() => Returns(control) >= 1, TimeSpan.FromSeconds(20)), Is.True,
            $"no memory return within 20 s of the burst; status:\n{File.ReadAllText(Path.Combine(control, "status"))}");
        long after = AnonKiB(server) - idle;
        Dictionary<string, string> status = ControlFiles.Status(control);
        Assert.Multiple(() =>
        {
            Assert.That(after, Is.LessThan(burst / 2), $"anonymous RSS over idle: {burst} KiB after the burst, {after} KiB once quiet");
            Assert.That(long.Parse(status["live_nodes"], CultureInfo.InvariantCulture), Is.GreaterThanOrEqualTo(Files), "the nodes stay");
            Assert.That(long.Parse(status["gc_committed_kib"], CultureInfo.InvariantCulture), Is.GreaterThan(0));
            Assert.That(File.Exists(FileAt(mnt, Files - 1)), Is.True);
        });

        // Quiet and not grown since: no further collection.
        Thread.Sleep(TimeSpan.FromSeconds(5));
        Assert.Multiple(() =>
        {
            Assert.That(Returns(control), Is.EqualTo(1));
            string metrics = File.ReadAllText(Path.Combine(control, "metrics"));
            Assert.That(metrics, Does.Contain("\ninspatialfs_memory_returns_total{name=\"idlemem\"} 1\n"), metrics);
            Assert.That(metrics, Does.Match("\ninspatialfs_resident_memory_bytes\\{name=\"idlemem\"\\} [1-9][0-9]*\n"));
        });

        // The other side: the kernel lets go of its inodes (here drop_caches; on a host, memory pressure). The nodes
        // become garbage a quiet server would keep resident; it collects once more.
        File.WriteAllText("/proc/sys/vm/drop_caches", "2");
        Assert.That(ControlFiles.Eventually(() => Returns(control) >= 2, TimeSpan.FromSeconds(20)), Is.True,
            $"no second memory return within 20 s of the kernel dropping its inodes; status:\n{File.ReadAllText(Path.Combine(control, "status"))}");
        long forgotten = AnonKiB(server) - idle;
        Assert.Multiple(() =>
        {
            Assert.That(long.Parse(ControlFiles.Status(control)["live_nodes"], CultureInfo.InvariantCulture), Is.LessThan(Files / 2), "the kernel let go");
            Assert.That(forgotten, Is.LessThan(after / 2), $"anonymous RSS over idle: {after} KiB with the nodes, {forgotten} KiB once they were forgotten");
            Assert.That(File.Exists(FileAt(mnt, 7)), Is.True, "a forgotten name is looked up again");
        });
    }

    private static string D(int d) => "d" + d.ToString("D3", CultureInfo.InvariantCulture);

    private static string FileAt(string mnt, int i) => Path.Combine(mnt, D(i % Directories), "f" + i.ToString("D6", CultureInfo.InvariantCulture));

    private static long Returns(string control) =>
        ControlFiles.Status(control).TryGetValue("memory_returns", out string? n) ? long.Parse(n, CultureInfo.InvariantCulture) : -1;

    private static long AnonKiB(int pid)
    {
        string line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("RssAnon:", StringComparison.Ordinal));
        return long.Parse(line["RssAnon:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
    }
}
