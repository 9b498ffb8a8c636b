using System.Globalization;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Storage;

/// <summary>
/// `inspatialfs mount --io-uring` as an operator runs it: coreutils on the mount get their answers through the ring
/// entries (status says so and counts them), policy and events hold as on /dev/fuse, the instance is not kept (the
/// kernel cannot resend what a dead server held on a ring), and a kernel with the switch off refuses the start.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class IoUringTransportTests
{
    private static string Field(string status, string key) =>
        status.Split('\n').First(l => l.StartsWith(key + ": ", StringComparison.Ordinal))[(key.Length + 2)..];

    /// <summary>Runs <paramref name="test"/> in a fresh work directory, removed after.</summary>
    private static void InWorkDirectory(string prefix, Action<string> test)
    {
        DaemonProcess.RequireMountable();
        string work = Directory.CreateTempSubdirectory(prefix).FullName;
        try
        {
            test(work);
        }
        finally
        {
            Shell.Run($"rm -rf '{work}'");
        }
    }

    [Test]
    public void Coreutils_on_an_io_uring_mount_are_served_by_the_rings_under_the_same_policy()
    {
        DaemonProcess.RequireMountable();
        using FuseIoUringSwitch on = FuseIoUringSwitch.Set(on: true);
        using ControlledMount m = ControlledMount.Start("/var/tmp", withSource: true, "--io-uring", "--forbid", "/secret/**", "--readonly", "/etc/**");
        Directory.CreateDirectory(Path.Combine(m.Source, "secret"));
        File.WriteAllText(Path.Combine(m.Source, "secret", "key"), "hidden");
        Directory.CreateDirectory(Path.Combine(m.Source, "etc"));
        File.WriteAllText(Path.Combine(m.Source, "etc", "conf"), "kept");

        // The rings take over once every queue has an entry: a few requests first.
        string status = m.Status();
        for (int i = 0; i < 200 && long.Parse(Field(status, "ring_requests"), CultureInfo.InvariantCulture) == 0; i++)
        {
            Shell.Check($"stat '{m.MountPoint}' > /dev/null");
            status = m.Status();
        }

        Assert.That(Field(status, "transport"), Does.StartWith("io_uring ("), status);
        Assert.That(Field(status, "restart_mode"), Does.StartWith("off (--io-uring"), status);
        Assert.That(File.ReadAllText($"/proc/{m.Daemon.Pid}/comm").Trim(), Is.EqualTo("inspatialfs"), "served without the keeper");

        long before = m.StatusValue("ring_requests");
        string mnt = m.MountPoint;
        Shell.Check($"mkdir -p '{mnt}/work/a/b' && dd if=/dev/urandom of='{mnt}/work/blob' bs=64k count=64 status=none && "
            + $"cp '{mnt}/work/blob' '{mnt}/work/a/b/copy' && cmp '{mnt}/work/blob' '{mnt}/work/a/b/copy' && "
            + $"mv '{mnt}/work/a/b/copy' '{mnt}/work/moved' && ln -s moved '{mnt}/work/link' && "
            + $"test \"$(readlink '{mnt}/work/link')\" = moved && ls -lR '{mnt}/work' > /dev/null && "
            + $"for i in $(seq 100); do echo $i > '{mnt}/work/a/f'$i; done && test $(ls '{mnt}/work/a' | wc -l) = 101 && "
            + $"rm -r '{mnt}/work/a' && test ! -e '{mnt}/work/a'");
        Assert.That(File.ReadAllBytes(Path.Combine(m.Source, "work", "moved")), Is.EqualTo(File.ReadAllBytes(Path.Combine(m.Source, "work", "blob"))));

        // The policy is the proxy's, whatever carries the request.
        (int readSecret, _, string secretErr) = Shell.Run($"cat '{mnt}/secret/key'");
        Assert.That(readSecret, Is.Not.Zero);
        Assert.That(secretErr, Does.Contain("Permission denied"));
        (int writeEtc, _, string etcErr) = Shell.Run($"echo x > '{mnt}/etc/conf'");
        Assert.That(writeEtc, Is.Not.Zero);
        Assert.That(etcErr, Does.Contain("Read-only file system"));
        Assert.That(File.ReadAllText(Path.Combine(m.Source, "etc", "conf")), Is.EqualTo("kept"));

        long served = m.StatusValue("ring_requests") - before;
        Assert.That(served, Is.GreaterThan(300), "the work above went through the rings:\n" + m.Status());
        // And so are the events: the refused read is recorded as on any mount.
        static bool RefusedSecret(System.Text.Json.JsonElement e) =>
            e.GetProperty("evt.decision").GetString() == "deny" && e.GetProperty("fs.path").GetString()!.StartsWith("/secret", StringComparison.Ordinal);
        List<System.Text.Json.JsonElement> events = m.WaitForEvents(es => es.Any(RefusedSecret), TimeSpan.FromSeconds(10));
        Assert.That(events.Any(RefusedSecret), Is.True, "a deny event for the refused read");

        Assert.That(m.Stop(), Is.Zero, m.Daemon.Output);
        Assert.That(Mounts.IsFuse(m.MountPoint), Is.False);
    }

    [Test]
    public void A_thread_started_on_a_ring_reader_may_run_on_every_cpu_the_daemon_may()
    {
        DaemonProcess.RequireMountable();
        if (Environment.ProcessorCount < 2) Assert.Ignore("one CPU: a pinned thread and a free one look alike");
        using FuseIoUringSwitch on = FuseIoUringSwitch.Set(on: true);
        using ControlledMount m = ControlledMount.Start("/var/tmp", withSource: true, "--io-uring");
        File.WriteAllText(Path.Combine(m.Source, "f"), "x");
        // Every request after INIT waits for the rings, so the first caller the mount pins (the start's own check, or this
        // cat) is pinned on a ring reader, and that reader starts the exit watcher: a thread that inherits its one CPU.
        Shell.Check($"cat '{m.MountPoint}/f' > /dev/null");

        int pid = m.Daemon.Pid;
        SpinWait.SpinUntil(() => ProcessThreads.Of(pid).Any(t => t.Name == "caller-exits"), TimeSpan.FromSeconds(10));

        string main = ProcessThreads.Cpus(pid, pid);
        (string Name, string Cpus)[] threads = ProcessThreads.Of(pid);
        string all = string.Join(", ", threads.Select(t => $"{t.Name}: {t.Cpus}"));
        Assert.That(threads.Where(t => t.Name.StartsWith("fuse-ring-", StringComparison.Ordinal)).Select(t => t.Cpus),
            Is.Not.Empty.And.All.Not.EqualTo(main), "each ring reader runs on its queue's CPU: " + all);
        Assert.That(threads.Single(t => t.Name == "caller-exits").Cpus, Is.EqualTo(main), "the exit watcher: " + all);
        Assert.That(m.Stop(), Is.Zero, m.Daemon.Output);
    }

    [Test]
    public void Io_uring_on_a_kernel_with_the_switch_off_refuses_to_start_and_mounts_nothing() =>
        InWorkDirectory("inspatialfs-uring-off-", work =>
        {
            using FuseIoUringSwitch off = FuseIoUringSwitch.Set(on: false);
            string mnt = Path.Combine(work, "mnt");
            var failure = Assert.Throws<InvalidOperationException>(() =>
                DaemonProcess.Start(mnt, ["--memory", "--io-uring", "--no-control", "--state-dir", Path.Combine(work, "state")], TimeSpan.FromSeconds(20)).Dispose());
            Assert.That(failure!.Message, Does.Contain("exited: True"));
            Assert.That(failure.Message, Does.Contain("enable_uring is N"));
            Assert.That(failure.Message, Does.Contain("echo Y > /sys/module/fuse/parameters/enable_uring"));
            Assert.That(Mounts.IsFuse(mnt), Is.False);
        });

    [Test]
    public void The_mount_option_io_uring_is_the_flag() =>
        InWorkDirectory("inspatialfs-uring-opt-", work =>
        {
            using FuseIoUringSwitch off = FuseIoUringSwitch.Set(on: false);
            (int exit, _, string err) = Shell.Run($"'{DaemonProcess.Binary}' mount --memory -o io_uring --no-control --state-dir '{work}/state' '{work}/mnt'");
            Assert.That(exit, Is.Not.Zero);
            Assert.That(err, Does.Contain("--io-uring: FUSE over io_uring is off"));
        });

    [Test]
    public void The_config_key_io_uring_is_the_flag_for_an_instance_started_from_its_file() =>
        InWorkDirectory("inspatialfs-uring-config-", work =>
        {
            using FuseIoUringSwitch on = FuseIoUringSwitch.Set(on: true);
            Directory.CreateDirectory(Path.Combine(work, "source"));
            string config = Path.Combine(work, "instance.yaml");
            File.WriteAllText(config, $"name: uring-config\nmountpoint: {work}/mnt\ncontrol: {work}/ctl\nstate_dir: {work}/state\n" +
                $"mounts:\n  - {{ path: /, source: {work}/source }}\nio_uring: true\n");
            using DaemonProcess daemon = DaemonProcess.Start(Path.Combine(work, "mnt"), ["--config", config], appendMountPoint: false);
            File.WriteAllText(Path.Combine(work, "mnt", "f"), "x");
            string status = File.ReadAllText(Path.Combine(work, "ctl", "status"));
            for (int i = 0; i < 100 && !Field(status, "transport").StartsWith("io_uring", StringComparison.Ordinal); i++)
            {
                Thread.Sleep(50); // the rings start right after INIT, on the thread that answered it
                status = File.ReadAllText(Path.Combine(work, "ctl", "status"));
            }

            Assert.That(Field(status, "transport"), Does.StartWith("io_uring ("), status);
            Assert.That(Field(status, "restart_mode"), Does.StartWith("off (--io-uring"), status);
            Assert.That(daemon.Stop(), Is.Zero, daemon.Output);
        });

    [Test]
    public void Where_the_host_refuses_io_uring_the_mount_serves_on_dev_fuse_and_status_says_why() =>
        InWorkDirectory("inspatialfs-uring-refused-", work =>
        {
            const string Disabled = "/proc/sys/kernel/io_uring_disabled";
            if (!File.Exists(Disabled)) Assert.Ignore($"no {Disabled} on this kernel");
            using FuseIoUringSwitch on = FuseIoUringSwitch.Set(on: true);
            string before = File.ReadAllText(Disabled).Trim();
            File.WriteAllText(Disabled, "2"); // io_uring_setup fails with EPERM for every process, as under a seccomp filter
            try
            {
                Directory.CreateDirectory(Path.Combine(work, "source"));
                using DaemonProcess daemon = DaemonProcess.Start(Path.Combine(work, "mnt"),
                    ["--source", Path.Combine(work, "source"), "--io-uring", "--control", Path.Combine(work, "ctl"), "--state-dir", Path.Combine(work, "state")]);
                File.WriteAllText(Path.Combine(work, "mnt", "f"), "still served");
                Assert.That(File.ReadAllText(Path.Combine(work, "source", "f")), Is.EqualTo("still served"));
                string status = File.ReadAllText(Path.Combine(work, "ctl", "status"));
                for (int i = 0; i < 100 && !Field(status, "transport").StartsWith("/dev/fuse (", StringComparison.Ordinal); i++)
                {
                    Thread.Sleep(50);
                    status = File.ReadAllText(Path.Combine(work, "ctl", "status"));
                }

                Assert.That(Field(status, "transport"), Does.StartWith("/dev/fuse (io_uring not used: cannot make an io_uring").And.Contain("EPERM"), status);
                Assert.That(Field(status, "ring_requests"), Is.EqualTo("0"));
                Assert.That(daemon.Stop(), Is.Zero, daemon.Output);
            }
            finally
            {
                File.WriteAllText(Disabled, before);
            }
        });
}
