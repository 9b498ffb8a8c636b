using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Security;

/// <summary>
/// resources.disk and resources.inodes on a host mount (issue 4): what the container adds beyond the quota is
/// refused with EDQUOT and nothing is half-applied; removing data gives the quota back.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class HostQuotaTests
{
    [TestCase(false)]
    [TestCase(true)]
    public void Growth_past_the_disk_and_inode_quota_gets_EDQUOT_and_removal_frees_it(bool direct)
    {
        DaemonProcess.RequireMountable();
        string work = Path.Combine("/var/tmp", "inspatialfs-quota-" + Guid.NewGuid().ToString("N")[..8]);
        string source = Path.Combine(work, "source"), mount = Path.Combine(work, "rootfs"), control = Path.Combine(work, "control");
        Directory.CreateDirectory(source);
        File.WriteAllBytes(Path.Combine(source, "existing"), new byte[4 << 20]); // the image is never charged
        try
        {
            string config = Path.Combine(work, "quota.yaml");
            File.WriteAllText(config, $$"""
                name: quota-{{Path.GetFileName(work)[^8..]}}
                mountpoint: {{mount}}
                control: {{control}}
                state_dir: {{work}}/state
                mounts:
                  - { path: /, source: {{source}}, direct: {{(direct ? "true" : "false")}} }
                resources: { disk: 1MiB, inodes: 5 }
                """);
            using DaemonProcess daemon = DaemonProcess.Start(mount, ["--config", config], appendMountPoint: false);
            ControlFiles.WaitUntilServing(control, daemon);

            ShellResult big = Shell.Run($"head -c 2M /dev/zero > '{mount}/big'");
            Assert.That(big.ExitCode, Is.Not.Zero);
            Assert.That(big.StdErr, Does.Contain("quota exceeded").IgnoreCase, big.ToString());
            Assert.That(new FileInfo(Path.Combine(source, "big")).Length, Is.LessThanOrEqualTo(1 << 20), "nothing past the quota reached the host");

            // Disk quotas count allocated blocks: a sparse size costs nothing, an allocation does (KEEP_SIZE too).
            Shell.Check($"truncate -s 3M '{mount}/sparse'");
            ShellResult allocate = Shell.Run($"fallocate -l 3M '{mount}/sparse'");
            Assert.That(allocate.StdErr, Does.Contain("quota exceeded").IgnoreCase, "fallocate is charged: " + allocate);
            ShellResult keepSize = Shell.Run($"fallocate -n -l 3M '{mount}/sparse'");
            Assert.That(keepSize.StdErr, Does.Contain("quota exceeded").IgnoreCase, "FALLOC_FL_KEEP_SIZE is charged too: " + keepSize);
            Assert.That(Shell.Check($"stat -c %b '{source}/sparse'").Trim(), Is.EqualTo("0"), "nothing was allocated on the host");
            Shell.Check($"rm '{mount}/sparse'");

            // "big" holds one inode: four more names fit, the fifth does not.
            string created = Shell.Run($"n=0; for i in 1 2 3 4 5 6; do touch '{mount}/n'$i 2>/dev/null && n=$((n+1)); done; echo $n").StdOut.Trim();
            Assert.That(created, Is.EqualTo("4"));
            Assert.That(File.Exists(Path.Combine(source, "n5")), Is.False);

            Shell.Check($"rm '{mount}/big' '{mount}/n1'");
            Shell.Check($"head -c 900K /dev/zero > '{mount}/after-free' && touch '{mount}/one-more'");
            Assert.That(new FileInfo(Path.Combine(source, "after-free")).Length, Is.EqualTo(900 << 10));
        }
        finally
        {
            Shell.Run($"umount -l '{control}' 2>/dev/null; umount -l '{mount}' 2>/dev/null; rm -rf '{work}'");
        }
    }
}
