using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Storage;

/// <summary>
/// Issue 10, "Bounded memory for every input": an open directory handle used to hold a full copy of the listing, so
/// 40 handles on a 100,000-entry directory cost the daemon about 1.1 GB. Listings are now streamed from the host.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class ListingMemoryTests
{
    [Test]
    public void Forty_open_handles_on_a_100000_entry_directory_cost_the_daemon_no_listing_copies()
    {
        DaemonProcess.RequireMountable();
        string work = Path.Combine("/var/tmp", "inspatialfs-listing-" + Guid.NewGuid().ToString("N")[..8]);
        string source = Path.Combine(work, "source"), mount = Path.Combine(work, "mnt"), big = Path.Combine(source, "big");
        Directory.CreateDirectory(big);
        try
        {
            Shell.Check($"cd '{big}' && seq -f 'entry-with-a-long-enough-name-%06g' 1 100000 | xargs touch", TimeSpan.FromMinutes(3));
            using DaemonProcess daemon = DaemonProcess.Start(mount, ["--source", source, "--no-control", "--state-dir", Path.Combine(work, "state"), "--name", Path.GetFileName(work)]);
            Assert.That(Shell.Check($"ls -f '{mount}/big' | wc -l", TimeSpan.FromMinutes(2)).Trim(), Is.EqualTo("100002"), "positive control: the whole listing, . and .. included");
            long before = RssKiB(daemon.Pid);

            // 40 holders of the directory open at once, each having read part of it: what the old code copied 40 times.
            ShellResult hold = Shell.Run($"for i in $(seq 1 40); do (exec 3<'{mount}/big'; ls '{mount}/big' | head -1 >/dev/null; sleep 20) & done; sleep 8; " +
                $"grep VmRSS /proc/{daemon.Pid}/status; wait", TimeSpan.FromMinutes(2));
            long during = long.Parse(hold.StdOut.Split(':')[1].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
            TestContext.Out.WriteLine($"daemon RSS: {before} KiB before, {during} KiB with 40 open handles");
            Assert.That(during - before, Is.LessThan(150 * 1024), $"RSS grew by {(during - before) / 1024} MiB");
        }
        finally
        {
            Shell.Run($"umount -l '{mount}' 2>/dev/null; rm -rf '{work}'", TimeSpan.FromMinutes(2));
        }
    }

    private static long RssKiB(int pid) =>
        long.Parse(File.ReadAllLines($"/proc/{pid}/status").Single(l => l.StartsWith("VmRSS:", StringComparison.Ordinal))[6..].Trim().Split(' ')[0],
            System.Globalization.CultureInfo.InvariantCulture);
}
