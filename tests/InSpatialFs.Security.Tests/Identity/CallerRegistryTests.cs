using System.Diagnostics;
using InSpatialFs.Security.Identity;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.Security.Tests.Identity;

public sealed class CallerRegistryTests
{
    internal static Process StartSleep(string seconds = "30") =>
        Process.Start(new ProcessStartInfo("sleep", seconds) { UseShellExecute = false })!;

    private static string MyMemoryCgroup() =>
        File.ReadAllLines("/proc/self/cgroup").Select(l => l.Split(':')).First(p => p[1] == "memory")[2];

    [Test]
    public void A_caller_is_pinned_with_name_start_time_and_cgroup()
    {
        using Process child = StartSleep();
        try
        {
            using var reg = new CallerRegistry(mountpoint: null, containerCgroup: null);
            CallerInfo? c = reg.Resolve(child.Id);
            Assert.That(c, Is.Not.Null);
            Assert.That((c!.Name, c.Tgid, c.IsContainerMember), Is.EqualTo(("sleep", child.Id, false)));
            string stat = File.ReadAllText($"/proc/{child.Id}/stat");
            Assert.That(c.StartTime, Is.EqualTo(CallerRegistry.ParseStartTime(stat)));
            Assert.That(c.Cgroups.All, Is.Not.Empty);
            Assert.That(reg.Resolve(child.Id), Is.SameAs(c), "a hit is served from the cache");
            Assert.That(reg.StillSameProcess(c), Is.True);
        }
        finally
        {
            child.Kill();
            child.WaitForExit();
        }
    }

    [Test]
    public void A_request_from_a_thread_other_than_the_main_one_is_pinned_as_its_process()
    {
        // FUSE names the calling thread; pidfd_open refuses a thread that does not lead its group, and the pin falls back
        // to the Tgid of /proc/TID/status. This test host has many threads besides its main one.
        int self = Environment.ProcessId;
        int tid = Directory.EnumerateDirectories($"/proc/{self}/task").Select(d => int.Parse(Path.GetFileName(d), System.Globalization.CultureInfo.InvariantCulture))
            .First(t => t != self);
        using var reg = new CallerRegistry(mountpoint: null, containerCgroup: null);
        CallerInfo? thread = reg.Resolve(tid);
        CallerInfo? leader = reg.Resolve(self);
        Assert.That(thread, Is.Not.Null);
        Assert.Multiple(() =>
        {
            Assert.That((thread!.Pid, thread.Tgid), Is.EqualTo((tid, self)));
            Assert.That(thread.Name, Is.EqualTo(File.ReadAllText($"/proc/{self}/task/{tid}/comm").TrimEnd('\n')), "the thread's own name, as /proc shows it");
            Assert.That((leader!.Pid, leader.Tgid), Is.EqualTo((self, self)), "the main thread leads its group: pinned directly");
            Assert.That(reg.StillSameProcess(thread), Is.True);
        });
    }

    [Test]
    public void After_an_exec_open_the_caller_is_re_read_so_the_new_program_name_is_reported()
    {
        // sh waits for a line on stdin, then execs sleep in the same pid (like runc's init exec'ing the container process).
        var info = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, RedirectStandardInput = true };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add("read line; exec sleep 30");
        using Process child = Process.Start(info)!;
        try
        {
            using var reg = new CallerRegistry(mountpoint: null, containerCgroup: null);
            Assert.That(reg.Resolve(child.Id)!.Name, Is.EqualTo("sh"));

            reg.NoteExec(child.Id);
            Assert.That(reg.Resolve(child.Id)!.Name, Is.EqualTo("sh"), "before execve completes the old name stands");
            child.StandardInput.WriteLine("go");
            child.StandardInput.Flush();
            var clock = Stopwatch.StartNew();
            string name = "sh";
            while (name == "sh" && clock.Elapsed < TimeSpan.FromSeconds(1.5))
            {
                name = reg.Resolve(child.Id)!.Name;
                Thread.Sleep(5);
            }

            Assert.That(name, Is.EqualTo("sleep"));
            Assert.That(reg.Resolve(child.Id)!.Tgid, Is.EqualTo(child.Id));
        }
        finally
        {
            child.Kill();
            child.WaitForExit();
        }
    }

    /// <summary>
    /// /bin/sh that waits for a line on stdin, then execs a copy of itself (DIR/sh, so named "sh" as before) which
    /// starts `sleep 30` and waits for it.
    /// </summary>
    private static Process StartShellThatExecsACopyOfItself(out string dir, out string copy)
    {
        dir = Directory.CreateTempSubdirectory("reg-exec-").FullName;
        copy = Path.Combine(dir, "sh");
        File.Copy(File.ResolveLinkTarget("/bin/sh", returnFinalTarget: true)?.FullName ?? "/bin/sh", copy);
        File.SetUnixFileMode(copy, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        var info = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, RedirectStandardInput = true };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add($"read line; exec {copy} -c 'sleep 30; :'");
        return Process.Start(info)!;
    }

    [Test]
    public void After_an_exec_open_of_a_program_with_the_same_name_the_new_image_is_reported()
    {
        // A copy of the shell at another path, named "sh" as the running one is: the exec keeps the comm, so only the
        // image (/proc/PID/exe) shows that another program now runs in this pid.
        using Process child = StartShellThatExecsACopyOfItself(out string dir, out string copy);
        try
        {
            using var reg = new CallerRegistry(mountpoint: null, containerCgroup: null);
            CallerInfo before = reg.Resolve(child.Id)!;
            Assert.That(before.Name, Is.EqualTo("sh"));
            Assert.That(before.Process?.ExePath, Is.Not.EqualTo(copy), "positive control: the shell it started as");

            reg.NoteExec(child.Id);
            child.StandardInput.WriteLine("go");
            child.StandardInput.Flush();
            var clock = Stopwatch.StartNew();
            CallerInfo now = before;
            while (now.Process?.ExePath != copy && clock.Elapsed < TimeSpan.FromSeconds(1.5))
            {
                now = reg.Resolve(child.Id)!;
                Thread.Sleep(5);
            }

            Assert.That(now.Name, Is.EqualTo("sh"), "the same name");
            Assert.That(now.Process?.ExePath, Is.EqualTo(copy), "the new image, not the cached context of the old one");
            Assert.That(now.Process?.Args, Is.EqualTo("-c sleep 30; :"));
            Assert.That(reg.Processes.Resolve(child.Id)?.ExePath, Is.EqualTo(copy), "the context cache holds the new image too");
        }
        finally
        {
            child.Kill();
            child.WaitForExit();
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void A_child_names_its_parent_s_new_image_before_the_parent_makes_a_request_of_its_own()
    {
        // The exec'd copy of the shell starts `sleep` and never asks anything itself: the first the registry hears after
        // the exec is the child's pin, whose ancestry names the parent, cached before the exec under the same key.
        using Process parent = StartShellThatExecsACopyOfItself(out string dir, out string copy);
        try
        {
            using var reg = new CallerRegistry(mountpoint: null, containerCgroup: null, backgroundSweep: false);
            Assert.That(reg.Resolve(parent.Id)!.Process?.ExePath, Is.Not.EqualTo(copy));
            reg.NoteExec(parent.Id);
            parent.StandardInput.WriteLine("go");
            parent.StandardInput.Flush();
            int child = 0;
            var clock = Stopwatch.StartNew();
            while (child == 0 && clock.Elapsed < TimeSpan.FromSeconds(5))
            {
                string children = File.ReadAllText($"/proc/{parent.Id}/task/{parent.Id}/children").Trim();
                child = children.Length > 0 ? int.Parse(children.Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) : 0;
                Thread.Sleep(5);
            }

            Assert.That(child, Is.Not.Zero, "the exec'd shell started sleep");
            Assert.That(File.ReadAllText($"/proc/{child}/comm").Trim(), Is.EqualTo("sleep").Or.EqualTo("sh"));
            CallerInfo sleeper = reg.Resolve(child)!;
            Assert.That(sleeper.Process?.Parent?.ExePath, Is.EqualTo(copy), "proc.pexepath: the parent's new image");
            Assert.That(reg.Cached(parent.Id)?.Process?.ExePath, Is.Not.EqualTo(copy), "the parent's own pin is refreshed by its own requests, or by the sweep");

            Thread.Sleep(CallerRegistry.ExecRefreshWindow + TimeSpan.FromMilliseconds(100));
            reg.Sweep();
            Assert.That(reg.Cached(parent.Id)?.Process?.ExePath, Is.EqualTo(copy), "the sweep that ends the window looks once more");
        }
        finally
        {
            parent.Kill(entireProcessTree: true);
            parent.WaitForExit();
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void An_exec_mark_expires_even_when_the_process_makes_no_further_request()
    {
        using Process child = StartSleep();
        try
        {
            using var reg = new CallerRegistry(mountpoint: null, containerCgroup: null, backgroundSweep: false);
            reg.Resolve(child.Id);
            reg.NoteExec(child.Id);
            Assert.That(reg.PendingExecs, Is.EqualTo(1));
            reg.Sweep();
            Assert.That(reg.PendingExecs, Is.EqualTo(1), "not yet expired");
            Thread.Sleep(CallerRegistry.ExecRefreshWindow + TimeSpan.FromMilliseconds(100));
            reg.Sweep();
            Assert.That(reg.PendingExecs, Is.Zero);
        }
        finally
        {
            child.Kill();
            child.WaitForExit();
        }
    }

    [TestCase(false)]
    [TestCase(true)]
    public void Without_an_exec_open_a_cached_caller_is_re_read_only_once_the_recheck_interval_has_passed(bool intervalPassed)
    {
        // An exec the mount never sees (here sleep from the host's /usr/bin, as a memfd's fexecve or a binary on a bind
        // mount would be): until the interval passes a hit is one dictionary read; after it, the new program is seen.
        var info = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, RedirectStandardInput = true };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add("read line; exec sleep 30");
        using Process child = Process.Start(info)!;
        try
        {
            using var reg = new CallerRegistry(mountpoint: null, containerCgroup: null,
                imageRecheck: intervalPassed ? TimeSpan.FromMilliseconds(50) : TimeSpan.FromHours(1));
            CallerInfo first = reg.Resolve(child.Id)!;
            Assert.That(first.Name, Is.EqualTo("sh"));
            child.StandardInput.WriteLine("go");
            child.StandardInput.Flush();
            var clock = Stopwatch.StartNew();
            while (File.ReadAllText($"/proc/{child.Id}/comm").Trim() != "sleep" && clock.Elapsed < TimeSpan.FromSeconds(5))
            {
                Thread.Sleep(5);
            }

            Thread.Sleep(100);
            CallerInfo now = reg.Resolve(child.Id)!;
            if (intervalPassed)
            {
                Assert.That((now.Name, now.Process?.Args), Is.EqualTo(("sleep", "30")), "the program the process runs now");
                Assert.That(reg.Resolve(child.Id), Is.SameAs(now), "and cached again");
            }
            else
            {
                Assert.That(now, Is.SameAs(first), "within the interval the hit path stays one dictionary read");
            }
        }
        finally
        {
            child.Kill();
            child.WaitForExit();
        }
    }

    [Test]
    public void An_exited_caller_is_evicted_so_its_pid_is_never_misattributed()
    {
        using var reg = new CallerRegistry(mountpoint: null, containerCgroup: null);
        using Process child = StartSleep();
        int pid = child.Id;
        CallerInfo c = reg.Resolve(pid)!;
        child.Kill();
        child.WaitForExit();
        Assert.That(c.HasExited, Is.True);
        Assert.That(reg.StillSameProcess(c), Is.False);
        var sw = Stopwatch.StartNew();
        while (reg.Count > 0 && sw.ElapsedMilliseconds < 2000) Thread.Sleep(5);
        Assert.That(reg.Count, Is.Zero, "the exit watcher dropped the entry");
        Assert.That(reg.Resolve(pid), Is.Null, "a pid with no live process resolves to nobody");
    }

    [Test]
    public void An_idle_registry_does_not_wake_and_still_evicts_an_exit_at_once()
    {
        // The exit watcher waits on its epoll set without a timeout (it woke five times a second to look at a flag), and
        // the background sweep, only a backstop behind it, runs every ten seconds while no exec mark is open.
        using var reg = new CallerRegistry(mountpoint: null, containerCgroup: null);
        using Process child = StartSleep();
        Assert.That(reg.Resolve(child.Id), Is.Not.Null); // starts the watcher
        Thread.Sleep(300);
        long before = ProcessThreads.ContextSwitches(Environment.ProcessId, "caller-exits");
        Thread.Sleep(1500);
        long idle = ProcessThreads.ContextSwitches(Environment.ProcessId, "caller-exits") - before;
        var sw = Stopwatch.StartNew();
        child.Kill();
        child.WaitForExit();
        while (reg.Count > 0 && sw.ElapsedMilliseconds < 2000) Thread.Sleep(5);
        Assert.Multiple(() =>
        {
            Assert.That(idle, Is.LessThanOrEqualTo(1), "context switches of the exit watchers in 1.5 idle seconds");
            Assert.That(reg.Count, Is.Zero, "the exit was still seen");
            Assert.That(sw.ElapsedMilliseconds, Is.LessThan(1000));
        });
        sw.Restart();
        reg.Dispose();
        Assert.That(sw.ElapsedMilliseconds, Is.LessThan(500), "Dispose wakes the watcher instead of waiting out a timeout");
    }

    [Test]
    public void The_background_sweep_still_expires_an_exec_mark_of_a_process_that_makes_no_further_request()
    {
        using Process child = StartSleep();
        try
        {
            using var reg = new CallerRegistry(mountpoint: null, containerCgroup: null);
            reg.Resolve(child.Id);
            reg.NoteExec(child.Id);
            Assert.That(reg.PendingExecs, Is.EqualTo(1));
            var sw = Stopwatch.StartNew();
            while (reg.PendingExecs > 0 && sw.Elapsed < CallerRegistry.SweepBackstop) Thread.Sleep(20);
            Assert.That(reg.PendingExecs, Is.Zero);
            Assert.That(sw.Elapsed, Is.LessThan(CallerRegistry.ExecRefreshWindow + CallerRegistry.SweepWhileMarked + TimeSpan.FromSeconds(1)),
                "an open mark brings the one-second sweep back");
        }
        finally
        {
            child.Kill();
            child.WaitForExit();
        }
    }

    [Test]
    public void The_sweep_slows_down_only_while_every_pin_is_watched_and_no_exec_mark_is_open()
    {
        using Process child = StartSleep();
        try
        {
            using var reg = new CallerRegistry(mountpoint: null, containerCgroup: null);
            reg.Resolve(child.Id);
            Assert.That(reg.SweepPeriod, Is.EqualTo(CallerRegistry.SweepBackstop), "the exit watcher watches every pin");
            reg.NoteExec(child.Id);
            Assert.That(reg.SweepPeriod, Is.EqualTo(CallerRegistry.SweepWhileMarked), "an open exec mark");
            Thread.Sleep(CallerRegistry.ExecRefreshWindow + TimeSpan.FromMilliseconds(100));
            reg.Sweep();
            Assert.That(reg.SweepPeriod, Is.EqualTo(CallerRegistry.SweepBackstop), "the mark expired");

            // What Watch does when epoll refuses a pidfd: that entry's exit would go unseen, so the sweep stays fast.
            reg.ReportUnwatchedPin();
            Assert.That(reg.SweepPeriod, Is.EqualTo(CallerRegistry.SweepWhileMarked));
            reg.NoteExec(child.Id);
            Thread.Sleep(CallerRegistry.ExecRefreshWindow + TimeSpan.FromMilliseconds(100));
            reg.Sweep();
            Assert.That(reg.SweepPeriod, Is.EqualTo(CallerRegistry.SweepWhileMarked), "no slowing down once a pin went unwatched");
        }
        finally
        {
            child.Kill();
            child.WaitForExit();
        }
    }

    [Test]
    public void Sweep_drops_exited_callers_without_the_background_watcher()
    {
        using var reg = new CallerRegistry(null, null, backgroundSweep: false);
        using Process a = StartSleep();
        using Process b = StartSleep();
        reg.Resolve(a.Id);
        reg.Resolve(b.Id);
        a.Kill();
        a.WaitForExit();
        Assert.That(reg.Sweep(), Is.EqualTo(1));
        Assert.That(reg.Snapshot().Single().Pid, Is.EqualTo(b.Id));
        b.Kill();
        b.WaitForExit();
    }

    [Test]
    public void The_stat_start_time_survives_hostile_command_names()
    {
        string stat = "4242 (a) b) (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 10000 100 18446744073709551615";
        Assert.That(CallerRegistry.ParseStartTime(stat), Is.EqualTo(987654UL));
    }

    [Test]
    public void Membership_comes_from_the_configured_cgroup_or_the_root_below_the_mountpoint()
    {
        string mine = MyMemoryCgroup();
        using var byCgroup = new CallerRegistry(null, mine);
        Assert.That(byCgroup.Resolve(Environment.ProcessId)!.IsContainerMember, Is.True);

        using var byRoot = new CallerRegistry("/srv/rootfs", null);
        Assert.Multiple(() =>
        {
            Assert.That(byRoot.Container.RootIsOnMount("/proc/self", "/srv/rootfs"), Is.True);
            Assert.That(byRoot.Container.RootIsOnMount("/proc/self", "/srv/rootfs/sub"), Is.True);
            Assert.That(byRoot.Container.RootIsOnMount("/proc/self", "/srv/rootfs2"), Is.False);
            Assert.That(byRoot.Container.RootIsOnMount("/proc/self", "/"), Is.False, "a host process");
            Assert.That(byRoot.Resolve(Environment.ProcessId)!.IsContainerMember, Is.False);
            Assert.That(byRoot.Resolve(0), Is.Null, "pid 0 is the kernel, never a member");
        });
    }

    [Test]
    public void Cgroup_file_parsing_finds_the_freezer_and_unified_paths()
    {
        CgroupPaths p = CgroupPaths.Parse("9:name=systemd:/a\n6:freezer:/ctr/web-1\n4:memory,cpu:/m\n0::/u/web-1\n");
        Assert.That((p.Freezer, p.Unified, p.All.Count), Is.EqualTo(("/ctr/web-1", "/u/web-1", 4)));
    }

    [Test]
    public void A_cgroup_file_read_again_gives_the_same_paths_and_a_different_one_its_own_after_it()
    {
        const string web = "6:freezer:/ctr/web-1\n0::/u/web-1\n", db = "6:freezer:/ctr/db-1\n0::/u/db-1\n";
        CgroupPaths first = CgroupPaths.Parse(web), again = CgroupPaths.Parse(string.Concat("6:freezer:/ctr/web-1\n", "0::/u/web-1\n"));
        Assert.That((again.Freezer, again.Unified), Is.EqualTo(("/ctr/web-1", "/u/web-1")), "an equal text (not the same string) gives the same paths");
        Assert.That(again.All, Is.EqualTo(first.All));
        CgroupPaths other = CgroupPaths.Parse(db);
        Assert.That((other.Freezer, other.Unified), Is.EqualTo(("/ctr/db-1", "/u/db-1")), "the next process's own cgroups, not the last one's");
        Assert.That((CgroupPaths.Parse(web).Freezer, CgroupPaths.Parse(web).Unified), Is.EqualTo(("/ctr/web-1", "/u/web-1")));
    }
}
