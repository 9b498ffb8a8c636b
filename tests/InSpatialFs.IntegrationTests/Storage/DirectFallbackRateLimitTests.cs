using System.Diagnostics;
using System.Text.RegularExpressions;
using InSpatialFs.IntegrationTests.Security;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Storage;

/// <summary>
/// Spliced DirectFS reads bypass the daemon's memory, not its accounting: resources.bytes_per_second still delays a
/// container's reads of a direct file served by splice(2) (issue 3 with issue 4's limits).
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed partial class DirectFallbackRateLimitTests
{
    private const int FileMiB = 24;

    [GeneratedRegex(@"spliced_reads: (\d+)")]
    private static partial Regex SplicedReads();

    [Test]
    public void A_container_reading_a_spliced_direct_file_is_held_to_the_byte_rate()
    {
        DaemonProcess.RequireMountable();
        string work = Path.Combine("/var/tmp", "inspatialfs-splicerate-" + Guid.NewGuid().ToString("N")[..8]);
        string image = Path.Combine(work, "image"), mount = Path.Combine(work, "rootfs"), control = Path.Combine(work, "control");
        try
        {
            Shell.Check($"'{DaemonProcess.RepoRoot}/scripts/make-rootfs.sh' '{image}' && head -c {FileMiB}M /dev/urandom > '{image}/big'", TimeSpan.FromMinutes(2));
            string config = Path.Combine(work, "rate.yaml");
            File.WriteAllText(config, $$"""
                name: splicerate-{{Path.GetFileName(work)[^8..]}}
                mountpoint: {{mount}}
                control: {{control}}
                state_dir: {{work}}/state
                mounts:
                  - { path: /, source: {{image}}, direct: true }
                resources: { bytes_per_second: 8MiB }
                """);
            using DaemonProcess daemon = DaemonProcess.Start(mount, ["--config", config, "--no-passthrough", "--direct-fallback", "splice"], appendMountPoint: false);
            ControlFiles.WaitUntilServing(control, daemon);
            Assert.That(File.ReadAllText(Path.Combine(control, "status")), Does.Contain("direct: spliced"));

            // 24 MiB at 8 MiB/s with a one-second burst needs well over two seconds.
            var clock = Stopwatch.StartNew();
            ShellResult read = Shell.Run($"chroot '{mount}' /bin/busybox sha256sum /big", TimeSpan.FromMinutes(1));
            clock.Stop();
            Assert.That(read.ExitCode, Is.Zero, "throttling delays, it never fails: " + read);
            Assert.That(read.StdOut.Split(' ')[0], Is.EqualTo(Shell.Check($"sha256sum '{image}/big'").Split(' ')[0]));
            Assert.That(clock.Elapsed, Is.GreaterThan(TimeSpan.FromSeconds(1.8)), $"the container read took {clock.Elapsed}");
            string status = File.ReadAllText(Path.Combine(control, "status"));
            Assert.That(status, Does.Match(@"throttled: [1-9]"));
            Assert.That(long.Parse(SplicedReads().Match(status).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture),
                Is.GreaterThanOrEqualTo(FileMiB * 1024 / 1020), "the throttled reads were spliced");
        }
        finally
        {
            Shell.Run($"umount -l '{control}' 2>/dev/null; umount -l '{mount}' 2>/dev/null; rm -rf '{work}'");
        }
    }
}
