using System.Globalization;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Memory;

/// <summary>
/// A memory mount whose file data lives in the daemon's private detached tmpfs (issue 14, "Memory mounts"): the size
/// limit is ENOSPC for dd, deleting gives the space back, the data never sits in the daemon's heap (VmRSS), bytes
/// written through kernel passthrough read back the same through the daemon, and the tmpfs is in no mount table and
/// under no path. Run with passthrough (reads and writes go kernel to kernel) and without (pread/pwrite in the daemon).
/// </summary>
[TestFixture("passthrough")]
[TestFixture("no-passthrough")]
[NonParallelizable]
[Category("Mount")]
public sealed class MemoryKernelDataMountTests(string mode) : MemoryMountFixture
{
    private const long SizeLimitMiB = 320;

    protected override string[] MountArguments => mode == "passthrough"
        ? ["--memory", "--memory-size", SizeLimitMiB + "MiB"]
        : ["--memory", "--memory-size", SizeLimitMiB + "MiB", "--no-passthrough"];

    [Test]
    public void Dd_past_the_size_limit_gets_ENOSPC_and_the_space_comes_back_after_rm()
    {
        string dir = NewDirectory("enospc");
        long freeBefore = FreeKiB();
        Assert.That(freeBefore, Is.GreaterThan((SizeLimitMiB - 8) * 1024), "an empty mount shows its whole size free");

        ShellResult dd = Shell.Run($"dd if=/dev/zero of='{dir}/fill' bs=1M count={SizeLimitMiB + 64} 2>&1", TimeSpan.FromMinutes(3));
        Assert.That(dd.ExitCode, Is.Not.Zero, dd.ToString());
        Assert.That(dd.Both, Does.Contain("No space left on device"), dd.ToString());
        long written = new FileInfo(Path.Combine(dir, "fill")).Length;
        Assert.That(written, Is.InRange((SizeLimitMiB - 8) << 20, SizeLimitMiB << 20), "filled up to the limit, not beyond");
        Assert.That(FreeKiB(), Is.LessThan(1024), "statfs shows the mount full");

        Shell.Check($"rm '{dir}/fill'");
        Assert.That(FreeKiB(), Is.GreaterThan(freeBefore - 1024), "deleting the file returned its space");
        // Positive control next to the refusal: once freed, the same mount takes data again.
        Shell.Check($"dd if=/dev/zero of='{dir}/again' bs=1M count=64 2>&1 && rm '{dir}/again'", TimeSpan.FromMinutes(1));
        AssertDaemonAlive();
    }

    [Test]
    public void The_daemon_does_not_hold_written_data_in_its_own_memory()
    {
        string dir = NewDirectory("rss");
        long rssBefore = DaemonRssKiB();
        Shell.Check($"dd if=/dev/urandom of='{dir}/big' bs=1M count=256 2>&1", TimeSpan.FromMinutes(3));
        string sum = Shell.Check($"sha256sum < '{dir}/big'").Trim();
        long used = UsedKiB();
        long rssWritten = DaemonRssKiB();
        Assert.That(used, Is.GreaterThan(255 * 1024), "the 256 MiB are counted as used");
        Assert.That(rssWritten - rssBefore, Is.LessThan(64 * 1024), $"VmRSS grew from {rssBefore} to {rssWritten} KiB writing 256 MiB");
        Assert.That(Shell.Check($"sha256sum < '{dir}/big'").Trim(), Is.EqualTo(sum));

        Shell.Check($"rm '{dir}/big'");
        Assert.That(UsedKiB(), Is.LessThan(used - (250 * 1024)), "deleting gave the 256 MiB back");
        Assert.That(DaemonRssKiB() - rssBefore, Is.LessThan(64 * 1024));
        AssertDaemonAlive();
    }

    [Test]
    public void A_program_copied_in_runs_from_the_mount_with_the_same_bytes()
    {
        // cp writes through a passthrough open where the kernel offers it; exec reads through the daemon (an exec open
        // is never passthrough), so the program runs only if both paths see the same bytes.
        string dir = NewDirectory("exec");
        Shell.Check($"cp /bin/echo '{dir}/echo' && chmod 755 '{dir}/echo'");
        Assert.That(Shell.Check($"sha256sum < '{dir}/echo'"), Is.EqualTo(Shell.Check("sha256sum < /bin/echo")));
        Assert.That(Shell.Check($"'{dir}/echo' kernel-memory-ok").Trim(), Is.EqualTo("kernel-memory-ok"));

        // A sparse file: holes read as zeros and SEEK_HOLE/SEEK_DATA see the data in the middle (cp --sparse uses them).
        Shell.Check($"truncate -s 64M '{dir}/sparse' && printf middle | dd of='{dir}/sparse' bs=1 seek=$((32*1024*1024)) conv=notrunc 2>/dev/null");
        Assert.That(Shell.Check($"du -k '{dir}/sparse' | cut -f1").Trim(), Is.EqualTo("4"));
        Shell.Check($"cp --sparse=always '{dir}/sparse' '{dir}/copy' && cmp '{dir}/sparse' '{dir}/copy'");
        Assert.That(Shell.Check($"du -k '{dir}/copy' | cut -f1").Trim(), Is.EqualTo("4"), "the copy found the hole");
        AssertDaemonAlive();
    }

    [Test]
    public void The_private_tmpfs_is_in_no_mount_table_and_under_no_path()
    {
        string dir = NewDirectory("hidden");
        string marker = "inspatialfs-marker-" + Guid.NewGuid().ToString("N");
        File.WriteAllText(Path.Combine(dir, "secret"), marker);
        Assert.That(File.ReadAllText(Path.Combine(dir, "secret")), Is.EqualTo(marker));

        string daemonMounts = File.ReadAllText($"/proc/{Daemon.Pid}/mountinfo");
        string hostMounts = File.ReadAllText("/proc/self/mountinfo");
        // Positive control: the daemon's own FUSE mount is listed, so the table is the one it sees.
        Assert.That(daemonMounts, Does.Contain(MountPoint));
        string size = "size=" + (SizeLimitMiB * 1024).ToString(CultureInfo.InvariantCulture) + "k";
        foreach (string table in new[] { daemonMounts, hostMounts })
        {
            Assert.That(table.Split('\n').Where(l => l.Contains(" tmpfs ", StringComparison.Ordinal) && l.Contains(size, StringComparison.Ordinal)), Is.Empty);
        }

        // Every tmpfs the daemon can see by path: the marker file is in none of them. The same search finds a copy
        // planted on one of those tmpfs mounts (positive control).
        string[] tmpfsMounts = daemonMounts.Split('\n')
            .Select(l => l.Split(' '))
            .Where(f => f.Length > 9 && Array.IndexOf(f, "-") is int dash && dash > 0 && f[dash + 1] == "tmpfs")
            .Select(f => f[4].Replace("\\040", " ", StringComparison.Ordinal))
            .Where(Directory.Exists)
            .Distinct(StringComparer.Ordinal)
            .ToArray();
        Assert.That(tmpfsMounts, Is.Not.Empty);
        string planted = Path.Combine(tmpfsMounts.Contains("/dev/shm") ? "/dev/shm" : tmpfsMounts[0], "planted-" + Guid.NewGuid().ToString("N")[..8]);
        File.WriteAllText(planted, marker);
        try
        {
            string found = Shell.Run(string.Join(" ; ", tmpfsMounts.Select(m => $"find '{m}' -xdev -type f -size {marker.Length}c -exec grep -lF '{marker}' {{}} + 2>/dev/null"))).StdOut;
            Assert.That(found.Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(new[] { planted }));
        }
        finally
        {
            File.Delete(planted);
        }
    }

    private long FreeKiB() => long.Parse(Shell.Check($"df -k --output=avail '{MountPoint}' | tail -1").Trim(), CultureInfo.InvariantCulture);

    private long UsedKiB() => long.Parse(Shell.Check($"df -k --output=used '{MountPoint}' | tail -1").Trim(), CultureInfo.InvariantCulture);

    private long DaemonRssKiB()
    {
        string line = File.ReadAllLines($"/proc/{Daemon.Pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
    }
}

/// <summary>
/// File capabilities live in the memory backend's metadata, not on the data file. A write through a passthrough open
/// still drops them: the kernel removes security.capability through the FUSE inode (a REMOVEXATTR to the daemon)
/// before it hands the write to the data file. Measured on 6.18; this test keeps it true.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class MemoryKernelDataCapabilityTests : MemoryMountFixture
{
    protected override string[] MountArguments => ["--memory", "--memory-size", "64MiB", "--relax", "xattrs"];

    [Test]
    public void A_write_through_passthrough_drops_file_capabilities()
    {
        if (!Shell.Has("setfattr") || !Shell.Has("getfattr"))
        {
            Assert.Ignore("setfattr/getfattr are not installed (attr package)");
        }

        string dir = NewDirectory("cap");
        string file = Path.Combine(dir, "tool");
        string plain = Path.Combine(dir, "plain");
        Shell.Check($"cp /bin/true '{file}' && cp /bin/true '{plain}'");
        const string cap = "0x0100000200200000000000000000000000000000";
        Shell.Check($"setfattr -n security.capability -v {cap} '{file}'");
        Assert.That(Shell.Check($"getfattr -e hex -n security.capability '{file}'"), Does.Contain(cap), "positive control: the capability is set");

        Shell.Check($"printf x | dd of='{file}' bs=1 seek=100 conv=notrunc 2>/dev/null");
        ShellResult after = Shell.Run($"getfattr -e hex -n security.capability '{file}'");
        Assert.That(after.Both, Does.Not.Contain(cap), "the write dropped security.capability");
        Assert.That(after.Both, Does.Contain("No such attribute"), after.ToString());

        // The same write on a file without capabilities is served (and changes the byte) either way.
        Shell.Check($"printf x | dd of='{plain}' bs=1 seek=100 conv=notrunc 2>/dev/null");
        Assert.That(Shell.Check($"dd if='{plain}' bs=1 skip=100 count=1 2>/dev/null").Trim(), Is.EqualTo("x"));
        Assert.That(Shell.Check($"dd if='{file}' bs=1 skip=100 count=1 2>/dev/null").Trim(), Is.EqualTo("x"));
    }
}
