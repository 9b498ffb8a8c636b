using System.Diagnostics;
using System.Globalization;
using InSpatialFs.Security.Identity;

namespace InSpatialFs.Security.Tests.Identity;

/// <summary>
/// Membership is proven by cgroup, pid namespace or pinned ancestry; the root directory counts only as a fallback,
/// and never for a process in a user namespace of its own. Real processes throughout: unshare, setpriv, chroot.
/// The "mount" here is the filesystem of "/" (its device given to the registry), so every host process's root lies on it,
/// which is exactly what `chroot MOUNTPOINT` gives an attacker.
/// </summary>
[NonParallelizable]
public sealed class MembershipProofTests
{
    private readonly List<Process> _children = [];
    private string _jail = "";

    [TearDown]
    public void TearDown()
    {
        foreach (Process p in _children)
        {
            try
            {
                p.Kill(entireProcessTree: true);
                p.WaitForExit(5000);
            }
            catch (InvalidOperationException)
            {
            }

            p.Dispose();
        }

        _children.Clear();
        if (_jail.Length != 0) Directory.Delete(_jail, recursive: true);
        _jail = "";
    }

    /// <summary>A registry whose "container mount" is the filesystem of / (so the root-directory fallback applies to any host process).</summary>
    private static CallerRegistry OnRootDevice(string? cgroup = null)
    {
        var reg = new CallerRegistry("/nonexistent-root", cgroup, backgroundSweep: false);
        string[] dev = Run("stat", "-L", "-c", "%Hd:%Ld", "/proc/self/root").Split(':');
        reg.SetMountDevice(uint.Parse(dev[0], CultureInfo.InvariantCulture), uint.Parse(dev[1], CultureInfo.InvariantCulture));
        return reg;
    }

    private Process Start(string program, params string[] args)
    {
        var info = new ProcessStartInfo(program) { UseShellExecute = false, RedirectStandardInput = true };
        foreach (string a in args) info.ArgumentList.Add(a);
        Process p = Process.Start(info)!;
        _children.Add(p);
        return p;
    }

    private static string Run(string program, params string[] args)
    {
        var info = new ProcessStartInfo(program) { UseShellExecute = false, RedirectStandardOutput = true };
        foreach (string a in args) info.ArgumentList.Add(a);
        using Process p = Process.Start(info)!;
        string output = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        return output;
    }

    /// <summary>The pid of the first process below <paramref name="parent"/> whose comm is <paramref name="comm"/> (waits for it to appear).</summary>
    private static int Descendant(int parent, string comm) => Below(parent, comm, maxDepth: 10);

    /// <summary>A direct child of <paramref name="parent"/> whose comm is <paramref name="comm"/> (waits for it to appear).</summary>
    private static int Child(int parent, string comm) => Below(parent, comm, maxDepth: 1);

    private static int Below(int parent, string comm, int maxDepth)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            foreach (string dir in Directory.EnumerateDirectories("/proc"))
            {
                if (!int.TryParse(Path.GetFileName(dir), out int pid) || pid == parent) continue;
                try
                {
                    if (File.ReadAllText(Path.Combine(dir, "comm")).Trim() != comm) continue;
                    for (int p = pid, depth = 0; p > 1 && depth < maxDepth; depth++)
                    {
                        string stat = File.ReadAllText($"/proc/{p}/stat");
                        p = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1], CultureInfo.InvariantCulture);
                        if (p == parent) return pid;
                    }
                }
                catch (IOException)
                {
                }
            }

            Thread.Sleep(20);
        }

        throw new AssertionException($"no {comm} below {parent}");
    }

    /// <summary>Waits until <paramref name="pid"/> runs <paramref name="comm"/> (its exec completed).</summary>
    private static int WaitComm(int pid, string comm)
    {
        var clock = Stopwatch.StartNew();
        while (File.ReadAllText($"/proc/{pid}/comm").Trim() != comm)
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(10)) throw new AssertionException($"{pid} never ran {comm}");
            Thread.Sleep(10);
        }

        return pid;
    }

    /// <summary>Waits until <paramref name="pid"/>'s root directory is <paramref name="root"/> (its chroot happened).</summary>
    private static int WaitRoot(int pid, string root)
    {
        var clock = Stopwatch.StartNew();
        while (new FileInfo($"/proc/{pid}/root").LinkTarget != root)
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(10)) throw new AssertionException($"{pid} never chrooted to {root}");
            Thread.Sleep(10);
        }

        return pid;
    }

    /// <summary>A directory on another filesystem (tmpfs) holding a static busybox, for chroot.</summary>
    private string Jail()
    {
        _jail = Path.Combine("/dev/shm", "isfs-jail-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_jail);
        File.Copy("/bin/busybox", Path.Combine(_jail, "busybox"));
        File.SetUnixFileMode(Path.Combine(_jail, "busybox"), (UnixFileMode)0x1ED); // 0755
        return _jail;
    }

    [Test]
    [Category("Mount")]
    public void A_host_process_in_its_own_user_namespace_is_never_a_member_even_with_its_root_on_the_mount()
    {
        using CallerRegistry reg = OnRootDevice();
        Process plain = Start("sleep", "60");
        Process asRootInUserNs = Start("unshare", "-Ur", "sleep", "60");
        Process asNobodyInUserNs = Start("setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", "unshare", "-Ur", "sleep", "60");
        // setpriv and unshare exec in place: the started process becomes the sleep inside the user namespace.
        int rootChild = WaitComm(asRootInUserNs.Id, "sleep"), nobodyChild = WaitComm(asNobodyInUserNs.Id, "sleep");

        CallerInfo control = reg.Resolve(plain.Id)!;
        Assert.That((control.RootOnMount, control.Membership), Is.EqualTo((true, Membership.RootOnMount)),
            "positive control: with nothing better configured, root on the mount in the initial user namespace is the fallback proof");
        CallerInfo root = reg.Resolve(rootChild)!, nobody = reg.Resolve(nobodyChild)!;
        Assert.Multiple(() =>
        {
            Assert.That(root.RootOnMount && nobody.RootOnMount, Is.True, "their roots lie on the mount too");
            Assert.That(root.UserNamespace, Is.Not.EqualTo(reg.Container.HostUserNamespace));
            Assert.That(root.Membership, Is.EqualTo(Membership.Host), "unshare -Ur as root");
            Assert.That(nobody.Membership, Is.EqualTo(Membership.Host), "unshare -Ur as nobody");
        });
    }

    [Test]
    [Category("Mount")]
    public void A_process_in_the_inits_pid_namespace_is_a_member_wherever_its_root_is()
    {
        using var reg = new CallerRegistry("/nonexistent-root", null, backgroundSweep: false);
        reg.SetMountDevice(0, 1); // no process's root lies on this "mount"
        string jail = Jail();
        // unshare forks the container's init (pid 1 of a new pid namespace); the init starts a process chrooted elsewhere.
        Process container = Start("unshare", "--pid", "--fork", "sh", "-c", $"busybox chroot '{jail}' /busybox sleep 60 & exec sleep 60");
        int init = Child(container.Id, "sleep");
        int chrooted = WaitRoot(Descendant(init, "busybox"), jail);
        Process host = Start("sleep", "60");

        Assert.That(reg.Resolve(chrooted)!.Membership, Is.EqualTo(Membership.Host), "before the init is known nothing proves it");
        Assert.That(reg.RecordInit(init), Is.Null);
        Assert.That(reg.Container.PidNamespace, Is.Not.EqualTo(reg.Container.HostPidNamespace));
        Assert.Multiple(() =>
        {
            Assert.That(reg.Resolve(chrooted)!.Membership, Is.EqualTo(Membership.PidNamespace), "re-decided when the init was recorded");
            Assert.That(reg.Resolve(chrooted)!.Root, Is.EqualTo(jail), "its root is not the container's");
            Assert.That(reg.Resolve(init)!.IsContainerMember, Is.True);
            Assert.That(reg.Resolve(host.Id)!.Membership, Is.EqualTo(Membership.Host), "a host process beside it");
        });
    }

    [Test]
    [Category("Mount")]
    public void A_nested_pid_namespace_of_the_container_is_still_the_container()
    {
        using var reg = new CallerRegistry("/nonexistent-root", null, backgroundSweep: false);
        Process container = Start("unshare", "--pid", "--fork", "sh", "-c", "unshare --pid --fork sleep 60 & exec sleep 60");
        int init = Child(container.Id, "sleep");
        Assert.That(reg.RecordInit(init), Is.Null);
        int nested = Child(Child(init, "unshare"), "sleep");
        CallerInfo c = reg.Resolve(nested)!;
        Assert.That(c.PidNamespace, Is.Not.EqualTo(reg.Container.PidNamespace), "a pid namespace of its own");
        Assert.That(c.Membership, Is.EqualTo(Membership.PidNamespace), "found as a descendant through NS_GET_PARENT");
    }

    [Test]
    public void With_an_init_in_the_host_pid_namespace_only_its_descendants_are_members()
    {
        using var reg = new CallerRegistry("/nonexistent-root", null, backgroundSweep: false);
        Process init = Start("sh", "-c", "sleep 60 & wait");
        int child = Descendant(init.Id, "sleep");
        Process stranger = Start("sleep", "60");
        Assert.That(reg.RecordInit(init.Id), Is.Null);
        Assert.Multiple(() =>
        {
            Assert.That(reg.Container.PidNamespace.IsKnown, Is.False, "the host pid namespace proves nothing");
            Assert.That(reg.Resolve(child)!.Membership, Is.EqualTo(Membership.InitAncestry));
            Assert.That(reg.Resolve(init.Id)!.Membership, Is.EqualTo(Membership.InitAncestry), "the init itself");
            Assert.That(reg.Resolve(stranger.Id)!.Membership, Is.EqualTo(Membership.Host));
            Assert.That(reg.Container.Describe(), Does.Contain($"init {init.Id} ancestry"));
        });
    }

    [Test]
    [Category("Mount")]
    public void A_member_that_chroots_elsewhere_keeps_membership_for_itself_and_its_children()
    {
        using CallerRegistry reg = OnRootDevice();
        string jail = Jail();
        // The member is pinned first (root on the mount); then it forks a child that chroots away from the mount.
        Process member = Start("sh", "-c", $"read go; busybox chroot '{jail}' /busybox sleep 60 & wait");
        Assert.That(reg.Resolve(member.Id)!.Membership, Is.EqualTo(Membership.RootOnMount));
        member.StandardInput.WriteLine("go");
        member.StandardInput.Flush();
        int chrooted = WaitRoot(Descendant(member.Id, "busybox"), jail);
        Process strangerInJail = Start("busybox", "chroot", jail, "/busybox", "sleep", "60");
        int stranger = WaitRoot(strangerInJail.Id, jail);

        CallerInfo c = reg.Resolve(chrooted)!;
        Assert.Multiple(() =>
        {
            Assert.That(c.RootOnMount, Is.False, "its root is on tmpfs, not on the mount");
            Assert.That(c.Membership, Is.EqualTo(Membership.MemberAncestry), "forked by a pinned member");
            Assert.That(reg.Resolve(stranger)!.Membership, Is.EqualTo(Membership.Host), "the same chroot by a host process proves nothing");
        });
    }

    [Test]
    public void Recording_an_init_takes_the_fallback_membership_from_a_host_process_that_chrooted_onto_the_mount()
    {
        using CallerRegistry reg = OnRootDevice();
        Process operatorShell = Start("sleep", "60");
        Assert.That(reg.Resolve(operatorShell.Id)!.Membership, Is.EqualTo(Membership.RootOnMount), "fallback: looks like the container");
        Process init = Start("sh", "-c", "sleep 60 & wait");
        int child = Descendant(init.Id, "sleep");
        Assert.That(reg.RecordInit(init.Id), Is.Null);
        Assert.That(reg.Container.HasProof, Is.True);
        Assert.That(reg.Resolve(operatorShell.Id)!.Membership, Is.EqualTo(Membership.Host), "with a proof in force the root directory counts for nothing");
        Assert.That(reg.Resolve(child)!.Membership, Is.EqualTo(Membership.InitAncestry));
    }

    [Test]
    public void A_bad_init_is_refused_and_changes_nothing()
    {
        using var reg = new CallerRegistry("/nonexistent-root", null, backgroundSweep: false);
        Assert.That(reg.RecordInit(1), Does.Contain("not a container init"));
        Assert.That(reg.RecordInit(Environment.ProcessId), Does.Contain("the daemon"));
        Assert.That(reg.RecordInit(int.MaxValue - 1), Does.StartWith("container-init"));
        Assert.That(reg.Container.HasProof, Is.False);
    }

    [Test]
    public void The_ancestry_walk_stops_at_the_first_ancestor_older_than_every_member_and_is_skipped_without_members()
    {
        using var reg = new CallerRegistry("/nonexistent-root", null, backgroundSweep: false);
        Process shell = Start("sh", "-c", "sleep 60 & wait");
        int child = Descendant(shell.Id, "sleep");
        CallerInfo c = reg.Pin(child)!;
        CallerInfo parent = reg.Pin(shell.Id)!;
        CallerInfo self = reg.Pin(Environment.ProcessId)!;
        var facts = new ProcessFacts(c.Pid, c.Tgid, c.StartTime, c.ProcessStartTime, c.ParentPid, c.Cgroups, c.Root, c.RootOnMount, c.PidNamespace, c.UserNamespace);
        string dir = $"/proc/{child}";
        Assert.That(c.ParentPid, Is.EqualTo(shell.Id));

        (Membership, int) Classify(Func<int, ulong, bool> isMember, ulong oldest)
        {
            var reads = new StatReads("/proc");
            return (reg.Container.Classify(facts, dir, isMember, () => oldest, reads), reads.Reads);
        }

        Assert.Multiple(() =>
        {
            Assert.That(Classify((_, _) => false, ulong.MaxValue), Is.EqualTo((Membership.Host, 0)), "no init and no member: no ancestor is read");
            Assert.That(Classify((_, _) => false, parent.ProcessStartTime + 1), Is.EqualTo((Membership.Host, 1)),
                "the parent started before every member: the walk ends there");
            Assert.That(Classify((pid, start) => pid == self.Tgid && start == self.ProcessStartTime, self.ProcessStartTime), Is.EqualTo((Membership.MemberAncestry, 2)),
                "positive control: a member two levels up is found by the walk");
            Assert.That(Classify((pid, start) => pid == shell.Id && start == parent.ProcessStartTime, parent.ProcessStartTime), Is.EqualTo((Membership.MemberAncestry, 1)),
                "the parent as the oldest member (equal start times are still checked)");
        });
        c.Dispose();
        parent.Dispose();
        self.Dispose();
    }
}
