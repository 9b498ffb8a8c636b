using System.Diagnostics;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Security;

/// <summary>
/// resources.bytes_per_second throttles a container's reads and writes by delaying replies (issue 4): a chrooted
/// process (its root is on the mount, so it is a container member) copies slowly, a host process at full speed,
/// and nothing fails.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class RateLimitTests
{
    private const int FileMiB = 12;

    [Test]
    public void Container_data_transfer_is_delayed_to_the_byte_rate_and_host_processes_are_not()
    {
        DaemonProcess.RequireMountable();
        string work = Path.Combine("/var/tmp", "inspatialfs-rate-" + Guid.NewGuid().ToString("N")[..8]);
        string image = Path.Combine(work, "image"), mount = Path.Combine(work, "rootfs"), control = Path.Combine(work, "control");
        try
        {
            Shell.Check($"'{DaemonProcess.RepoRoot}/scripts/make-rootfs.sh' '{image}' && head -c {FileMiB}M /dev/urandom > '{image}/big'", TimeSpan.FromMinutes(2));
            string config = Path.Combine(work, "rate.yaml");
            File.WriteAllText(config, $$"""
                name: rate-{{Path.GetFileName(work)[^8..]}}
                mountpoint: {{mount}}
                control: {{control}}
                state_dir: {{work}}/state
                mounts:
                  - { path: /, source: {{image}} }
                resources: { bytes_per_second: 8MiB }
                """);
            using DaemonProcess daemon = DaemonProcess.Start(mount, ["--config", config], appendMountPoint: false);
            ControlFiles.WaitUntilServing(control, daemon);

            // Host process: not a member, not throttled.
            var host = Stopwatch.StartNew();
            Shell.Check($"cat '{mount}/big' > /dev/null");
            host.Stop();

            // Container process: 12 MiB read + 12 MiB written at 8 MiB/s (1 s burst) needs well over a second.
            var container = Stopwatch.StartNew();
            ShellResult copy = Shell.Run($"chroot '{mount}' /bin/cp /big /copy", TimeSpan.FromMinutes(1));
            container.Stop();
            Assert.That(copy.ExitCode, Is.Zero, "throttling delays, it never fails: " + copy);
            Assert.That(Shell.Check($"cmp '{image}/big' '{image}/copy' && echo same").Trim(), Is.EqualTo("same"));
            Assert.That(container.Elapsed, Is.GreaterThan(TimeSpan.FromSeconds(1.5)), $"container copy took {container.Elapsed}");
            Assert.That(host.Elapsed, Is.LessThan(container.Elapsed / 2), $"host read took {host.Elapsed}, container copy {container.Elapsed}");
            Assert.That(File.ReadAllText(Path.Combine(control, "status")), Does.Match(@"throttled: [1-9]"));
        }
        finally
        {
            Shell.Run($"umount -l '{control}' 2>/dev/null; umount -l '{mount}' 2>/dev/null; rm -rf '{work}'");
        }
    }
}
