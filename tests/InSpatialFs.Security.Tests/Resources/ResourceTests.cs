using System.Diagnostics;
using InSpatialFs.Interop;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Policy;
using InSpatialFs.Security.Resources;

namespace InSpatialFs.Security.Tests.Resources;

public sealed class ResourceTests
{
    [Test]
    public void Rate_limiter_allows_a_burst_then_delays_in_proportion()
    {
        var r = new RateLimiter(100);
        long now = Stopwatch.GetTimestamp();
        for (int i = 0; i < 100; i++) Assert.That(r.Take(1, now), Is.EqualTo(TimeSpan.Zero), $"token {i} is within the burst");
        TimeSpan d = r.Take(50, now);
        Assert.That(d.TotalMilliseconds, Is.EqualTo(500).Within(15));
    }

    [Test]
    public void Throttle_charges_bytes_only_for_data_ops()
    {
        var g = new ResourceGovernor(new ResourceLimits { BytesPerSecond = 1000 });
        long now = Stopwatch.GetTimestamp();
        Assert.That(g.Throttle(FsOp.Write, 1000, now), Is.EqualTo(TimeSpan.Zero));
        Assert.That(g.Throttle(FsOp.GetAttr, 1_000_000, now), Is.EqualTo(TimeSpan.Zero));
        Assert.That(g.Throttle(FsOp.Read, 2000, now).TotalSeconds, Is.EqualTo(2).Within(0.05));
        Assert.That(g.ThrottledOps, Is.EqualTo(1));
    }

    [Test]
    public void Open_files_past_the_cap_get_EMFILE_until_one_closes()
    {
        var g = new ResourceGovernor(new ResourceLimits { OpenFiles = 2 });
        Assert.That(new[] { g.TryOpenFile(), g.TryOpenFile(), g.TryOpenFile() }, Is.EqualTo(new[] { Errno.OK, Errno.OK, Errno.EMFILE }));
        g.FileClosed();
        Assert.That(g.TryOpenFile(), Is.EqualTo(Errno.OK));
        Assert.That(g.OpenFiles, Is.EqualTo(2));
    }

    [Test]
    public void Quotas_refuse_growth_past_the_limit_and_charge_nothing()
    {
        var g = new ResourceGovernor(new ResourceLimits { DiskBytes = 100, Inodes = 2, MemoryBytes = 10 });
        QuotaAccount disk = g.Account("/data");
        Assert.That(disk.TryCharge(60, 1), Is.EqualTo(Errno.OK));
        Assert.That(disk.TryCharge(60, 0), Is.EqualTo(Errno.EDQUOT));
        Assert.That(disk.TryCharge(10, 2), Is.EqualTo(Errno.EDQUOT));
        Assert.That((disk.Bytes, disk.Inodes), Is.EqualTo((60L, 1L)));
        Assert.That(disk.TryCharge(-60, -1), Is.EqualTo(Errno.OK));
        QuotaAccount mem = g.Account("/tmp", inMemory: true);
        Assert.That(mem.TryCharge(11, 0), Is.EqualTo(Errno.ENOSPC));
        Assert.That(g.Account("/data"), Is.SameAs(disk));
    }

    [Test]
    public void A_ledger_save_that_returns_has_written_what_was_charged_before_it_even_with_the_timer_saving_too()
    {
        // The daemon's last save at a stop raced the 2-second timer's: it found the ledger clean (the timer had taken the
        // flag), returned, and the process exited before the timer's write was renamed into place.
        string dir = Directory.CreateTempSubdirectory("inspatialfs-ledger-").FullName;
        try
        {
            using var g = new ResourceGovernor(new ResourceLimits { DiskBytes = 1L << 40 }, dir);
            QuotaAccount data = g.Account("/data");
            using var stop = new CancellationTokenSource();
            var timer = Task.Run(() =>
            {
                while (!stop.IsCancellationRequested) g.SaveQuotas();
            });
            for (ulong i = 1; i <= 300; i++)
            {
                var obj = new InodeIdentity(1, i, 0, Persistent: true);
                data.Created(obj);
                data.Settle(obj, 4096, 0);
                g.SaveQuotas();
                using var next = new ResourceGovernor(new ResourceLimits { DiskBytes = 1L << 40 }, dir);
                Assert.That(next.Account("/data").Bytes, Is.EqualTo(4096 * (long)i), $"save {i}");
            }

            stop.Cancel();
            timer.Wait();
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void A_charge_whose_reservation_matched_exactly_is_still_saved()
    {
        // A WRITE reserves its size and the file grows by just that: the total does not move at the settle, but the
        // object's charge in the ledger does, and a restart reads the ledger, not the total.
        string dir = Directory.CreateTempSubdirectory("inspatialfs-ledger-").FullName;
        try
        {
            using var g = new ResourceGovernor(new ResourceLimits { DiskBytes = 1L << 40 }, dir);
            QuotaAccount data = g.Account("/data");
            var obj = new InodeIdentity(1, 9, 0, Persistent: true);
            data.Created(obj);
            data.Settle(obj, 4096, 0);
            g.SaveQuotas();
            Assert.That(data.TryCharge(262144, 0), Is.EqualTo(Errno.OK), "the reservation of the next write");
            data.Settle(obj, 4096 + 262144, 262144);
            g.SaveQuotas();
            using var next = new ResourceGovernor(new ResourceLimits { DiskBytes = 1L << 40 }, dir);
            Assert.That(next.Account("/data").Bytes, Is.EqualTo(4096 + 262144L), "what was charged before the restart");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void A_ledger_save_that_failed_is_made_again_by_the_next_one()
    {
        string dir = Directory.CreateTempSubdirectory("inspatialfs-ledger-").FullName;
        try
        {
            using var g = new ResourceGovernor(new ResourceLimits { DiskBytes = 1L << 40 });
            QuotaAccount data = g.Account("/data");
            var obj = new InodeIdentity(1, 7, 0, Persistent: true);
            data.Created(obj);
            data.Settle(obj, 8192, 0);
            Assert.Throws<DirectoryNotFoundException>(() => data.Save(Path.Combine(dir, "missing", "ledger")));
            string ledger = Path.Combine(dir, "ledger");
            data.Save(ledger);
            Assert.That(File.ReadAllText(ledger), Is.EqualTo("1 7 0 0 8192 1\n"), "the change is still owed to the disk after a failed save");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void Container_ops_over_the_rate_are_delayed_not_failed()
    {
        string mine = File.ReadAllLines("/proc/self/cgroup").Select(l => l.Split(':')).First(p => p[1] == "memory")[2];
        using var sm = new SecurityManager(new SecurityOptions
        {
            Level = IsolationLevel.Standard,
            ContainerCgroup = mine,
            Resources = new ResourceLimits { OpsPerSecond = 10 },
        });
        TimeSpan last = TimeSpan.Zero;
        for (int i = 0; i < 15; i++)
        {
            Verdict v = sm.Decide(new FsEvent { Op = FsOp.GetAttr, Path = "/x", Pid = Environment.ProcessId });
            Assert.That(v.IsDenied, Is.False);
            last = v.Delay;
        }

        Assert.That(last.TotalMilliseconds, Is.GreaterThan(300));
        Assert.That(sm.Decide(new FsEvent { Op = FsOp.GetAttr, Path = "/x", Pid = 0 }).Delay, Is.EqualTo(TimeSpan.Zero), "host requests are not the container's budget");
    }
}
