using System.Globalization;
using System.Text.RegularExpressions;
using InSpatialFs.IntegrationTests.Containers;
using InSpatialFs.TestKit.Containers;
using InSpatialFs.TestKit.Processes;
using static InSpatialFs.IntegrationTests.Security.ControlFiles;

namespace InSpatialFs.IntegrationTests.PolicyIntegrity;

/// <summary>
/// Issue 11, "Charge everything, exactly": a container on a host mount with an 8 MiB disk quota and a 1 MiB memory
/// mount tries to allocate past its quota, get refunds for what it never paid, and keep charges it freed.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed partial class ChargeExactlyTests
{
    private ContainerRootfs _rootfs = null!;
    private string _data = "";

    [GeneratedRegex(@"^quota: /data bytes=(-?\d+)/\d+ inodes=(-?\d+)/")]
    private static partial Regex DataQuota();

    [OneTimeSetUp]
    public void Mount()
    {
        if (RuncBundle.WhyCannotRun() is string why) Assert.Ignore(why);
        _data = Path.Combine("/var/tmp", "inspatialfs-charge-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_data);
        File.WriteAllBytes(Path.Combine(_data, "image-file"), new byte[4 << 20]); // part of the image: never charged
        _rootfs = ContainerRootfs.Start("resources: { disk: 8MiB, inodes: 1000 }",
            extraMounts: $"  - {{ path: /data, source: {_data} }}\n  - {{ path: /small, memory: {{ size: 1MiB }} }}");
        WaitUntilServing(_rootfs.ControlDirectory, _rootfs.Daemon);
    }

    [OneTimeTearDown]
    public void Unmount()
    {
        _rootfs?.Dispose();
        Shell.Run($"rm -rf '{_data}'");
    }

    private ShellResult RunInContainer(string script)
    {
        using RuncBundle bundle = RuncBundle.Create(_rootfs.MountPoint, ["/bin/sh", "-c", script]);
        return bundle.Run(TimeSpan.FromSeconds(180));
    }

    private (long Bytes, long Inodes) DataCharge()
    {
        string line = File.ReadAllLines(Path.Combine(_rootfs.ControlDirectory, "status")).Single(l => l.StartsWith("quota: /data ", StringComparison.Ordinal));
        Match m = DataQuota().Match(line);
        Assert.That(m.Success, Is.True, line);
        return (long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), long.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture));
    }

    [Test]
    [Order(1)]
    public void Fallocate_with_keep_size_is_charged_as_the_blocks_it_allocates()
    {
        // busybox's fallocate has no KEEP_SIZE: the static fsop test tool, copied into the image, makes the call.
        File.Copy(Path.Combine(DaemonProcess.RepoRoot, "native", "build", "fsop"), Path.Combine(_rootfs.Image, "bin", "fsop"), overwrite: true);
        ShellResult run = RunInContainer("""
            touch /data/f
            echo "keep-size=$(fsop fallocate-keep /data/f 209715200)"
            echo "plain=$(fsop fallocate /data/f 209715200)"
            echo "small=$(fsop fallocate-keep /data/f 1048576)"
            echo "size=$(stat -c %s /data/f)"
            rm /data/f
            """);
        string[] lines = run.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Is.SupersetOf(new[] { "keep-size=EDQUOT", "plain=EDQUOT" }), run.ToString());
        Assert.That(lines, Is.SupersetOf(new[] { "small=OK", "size=0" }), "positive control: an allocation that fits, and KEEP_SIZE kept the size: " + run);
        Assert.That(DataCharge(), Is.EqualTo((0L, 0L)), "everything freed with the file");
    }

    [Test]
    [Order(2)]
    public void Deleting_an_image_file_refunds_nothing_that_was_never_charged()
    {
        ShellResult run = RunInContainer("""
            rm /data/image-file; echo "rm=$?"
            dd if=/dev/zero of=/data/big bs=1M count=10 2>/dev/null; echo "dd=$?"
            rm -f /data/big
            dd if=/dev/zero of=/data/fits bs=1M count=6 2>/dev/null; echo "fits=$?"
            rm -f /data/fits
            """);
        string[] lines = run.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Is.SupersetOf(new[] { "rm=0", "dd=1", "fits=0" }), "10 MiB never fits an 8 MiB quota, whatever was deleted before; 6 MiB does: " + run);
        Assert.That(DataCharge(), Is.EqualTo((0L, 0L)));
    }

    [Test]
    [Order(3)]
    public void A_file_renamed_over_gives_back_its_charge()
    {
        ShellResult run = RunInContainer("""
            dd if=/dev/zero of=/data/d bs=1K count=600 2>/dev/null
            dd if=/dev/zero of=/data/e bs=1K count=300 2>/dev/null
            mv /data/e /data/d; echo "mv=$?"
            """);
        Assert.That(run.StdOut, Does.Contain("mv=0"), run.ToString());
        (long bytes, long inodes) = DataCharge();
        Assert.That(inodes, Is.EqualTo(1), "one file is left");
        Assert.That(bytes, Is.InRange(300 << 10, (300 << 10) + 8192), "only the surviving 300 KiB stay charged");
        RunInContainer("rm /data/d");
        Assert.That(DataCharge(), Is.EqualTo((0L, 0L)), "and nothing once it is gone too");
    }

    [Test]
    [Order(5)]
    public void The_quota_survives_a_daemon_restart()
    {
        RunInContainer("dd if=/dev/zero of=/data/kept bs=1K count=500 2>/dev/null");
        (long bytes, long inodes) before = DataCharge();
        Assert.That(before.inodes, Is.EqualTo(1));
        Assert.That(before.bytes, Is.InRange(500 << 10, (500 << 10) + 8192));
        _rootfs.Restart();
        WaitUntilServing(_rootfs.ControlDirectory, _rootfs.Daemon);
        Assert.That(DataCharge(), Is.EqualTo(before), "the ledger was saved and read back");
        ShellResult run = RunInContainer("dd if=/dev/zero of=/data/more bs=1M count=8 2>/dev/null; echo \"dd=$?\"; rm -f /data/more /data/kept");
        Assert.That(run.StdOut, Does.Contain("dd=1"), "8 MiB more no longer fits: " + run);
        Assert.That(DataCharge(), Is.EqualTo((0L, 0L)), "and deleting the file from before the restart refunds it");
    }

    [Test]
    [Order(4)]
    public void Hard_links_on_a_memory_mount_are_charged_and_hit_ENOSPC()
    {
        ShellResult run = RunInContainer("""
            mkdir /small/src && cd /small/src && i=0
            while [ $i -lt 100 ]; do touch "file-with-a-longish-name-$i"; i=$((i+1)); done
            n=0; while cp -al /small/src "/small/copy$n" 2>/dev/null; do n=$((n+1)); [ $n -ge 400 ] && break; done
            echo "copies=$n"
            rm -rf /small/copy*; echo "cleanup=$?"
            cp -al /small/src /small/again; echo "again=$?"
            """);
        string[] lines = run.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        int copies = int.Parse(lines.Single(l => l.StartsWith("copies=", StringComparison.Ordinal))[7..], CultureInfo.InvariantCulture);
        Assert.That(copies, Is.LessThan(400), "100 names per copy cannot go on in 1 MiB: " + run);
        Assert.That(copies, Is.GreaterThan(10), "positive control: links fit until the space is used: " + run);
        Assert.That(lines, Is.SupersetOf(new[] { "cleanup=0", "again=0" }), "the names' space comes back: " + run);
    }
}
