using InSpatialFs.IntegrationTests.Security;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Control;

/// <summary>
/// Issue 13, "the usual FUSE tool conventions": `mount -t fuse.inspatialfs`, an fstab line, `-o` options and a
/// background start that returns once the mount is live. Driven through the real mount(8), which runs
/// /sbin/mount.fuse.inspatialfs; the fixture points that link at the tree under test and puts back what was there.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class MountHelperTests
{
    private const string Helper = "/sbin/mount.fuse.inspatialfs";
    private string? _previousTarget;
    private string _work = "";

    [OneTimeSetUp]
    public void LinkHelper()
    {
        DaemonProcess.RequireMountable();
        _previousTarget = new FileInfo(Helper).LinkTarget; // null: nothing there (make install links it)
        Shell.Check($"ln -sfn '{DaemonProcess.RepoRoot}/bin/mount.fuse.inspatialfs' {Helper}");
    }

    [OneTimeTearDown]
    public void RestoreHelper() =>
        Shell.Run(_previousTarget != null ? $"ln -sfn '{_previousTarget}' {Helper}" : $"rm -f {Helper}");

    [SetUp]
    public void CreateWorkDirectory()
    {
        _work = Path.Combine("/var/tmp", "isfs-mnthelper-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Path.Combine(_work, "src", "etc"));
        Directory.CreateDirectory(Path.Combine(_work, "mnt"));
        File.WriteAllText(Path.Combine(_work, "src", "etc", "hostname"), "box\n");
        File.WriteAllText(Path.Combine(_work, "src", "etc", "secret"), "classified\n");
    }

    [TearDown]
    public void Cleanup()
    {
        Shell.Run($"umount '{_work}/mnt' 2>/dev/null");
        Mounts.ForceUnmount(Path.Combine(_work, "mnt"));
        Shell.Run($"rm -rf '{_work}' /var/lib/inspatialfs/{Name} /run/inspatialfs/{Name}");
    }

    private string Name => "mh-" + Path.GetFileName(_work)[^8..];

    /// <summary>The instance's pid (its keeper's, when kept), from the instance.pid the daemon writes in its state directory.</summary>
    private int InstancePid(string stateDir) => int.Parse(File.ReadAllText(Path.Combine(stateDir, "instance.pid")).Trim(), System.Globalization.CultureInfo.InvariantCulture);

    [Test]
    public void Mount_t_with_a_config_file_returns_once_serving_applies_o_overrides_and_umount_ends_the_server()
    {
        string state = Path.Combine(_work, "state");
        string config = Path.Combine(_work, "instance.yaml");
        File.WriteAllText(config, $"""
            name: {Name}
            mountpoint: {_work}/mnt
            state_dir: {state}
            mounts:
              - {"{"} path: /, source: {_work}/src {"}"}
            paths:
              forbidden: [/etc/secret]
            """);

        ShellResult mounted = Shell.Run($"timeout 60 mount -t fuse.inspatialfs '{config}' '{_work}/mnt' -o isolation=enhanced,nofail", TimeSpan.FromSeconds(90));
        Assert.That(mounted.ExitCode, Is.Zero, mounted.ToString());
        // Returned only once live: the very next operation is served (no wait loop here on purpose).
        Assert.That(Mounts.IsFuse(Path.Combine(_work, "mnt")), Is.True, "mounted by the time mount(8) returned");
        Assert.That(File.ReadAllText(Path.Combine(_work, "mnt", "etc", "hostname")), Is.EqualTo("box\n"), "positive control: served");
        ShellResult secret = Shell.Run($"cat '{_work}/mnt/etc/secret'");
        Assert.That(secret.ExitCode, Is.Not.Zero);
        Assert.That(secret.StdErr, Does.Contain("Permission denied"), "the config's policy applies");
        string status = Shell.Check($"'{DaemonProcess.Binary}' ctl {Name} status");
        Assert.That(status, Does.Contain("isolation: enhanced"), "-o isolation= overrides the file: " + status);

        int pid = InstancePid(state);
        Assert.That(Directory.Exists($"/proc/{pid}"), Is.True, "the server runs detached after mount(8) returned");
        Shell.Check($"umount '{_work}/mnt'");
        Assert.That(ControlFiles.Eventually(() => !Directory.Exists($"/proc/{pid}"), TimeSpan.FromSeconds(20)), Is.True, "umount ends the server");
        Assert.That(File.ReadAllText(Path.Combine(state, "daemon.log")), Does.Contain("unmounted"), "its log went to STATE_DIR/daemon.log");
    }

    [Test]
    public void An_fstab_line_with_a_directory_mounts_it_read_only_and_generic_options_are_accepted()
    {
        string fstab = Path.Combine(_work, "fstab");
        File.WriteAllText(fstab, $"{_work}/src  {_work}/mnt  fuse.inspatialfs  ro,nofail,_netdev,x-test.marker=1,name={Name},no_control  0 0\n");
        ShellResult mounted = Shell.Run($"timeout 60 mount -T '{fstab}' '{_work}/mnt'", TimeSpan.FromSeconds(90));
        Assert.That(mounted.ExitCode, Is.Zero, mounted.ToString());
        Assert.That(File.ReadAllText(Path.Combine(_work, "mnt", "etc", "hostname")), Is.EqualTo("box\n"), "positive control: the directory is served");
        ShellResult write = Shell.Run($"echo x > '{_work}/mnt/etc/new'");
        Assert.That(write.StdErr, Does.Contain("Read-only file system"), "ro from the fstab line: " + write);
        Assert.That(File.Exists(Path.Combine(_work, "src", "etc", "new")), Is.False);
        Assert.That(Directory.Exists($"/run/inspatialfs/{Name}") && Mounts.IsFuse($"/run/inspatialfs/{Name}"), Is.False, "no_control: no control mount");
    }

    [Test]
    public void Policy_options_of_an_fstab_line_take_effect_as_their_flags_do()
    {
        string fstab = Path.Combine(_work, "fstab");
        File.WriteAllText(fstab, $"{_work}/src  {_work}/mnt  fuse.inspatialfs  " +
            $"forbid=/etc/secret,readonly=/etc/hostname,memory_at=/scratch:1MiB,resource=inodes=1000,name={Name},no_control  0 0\n");
        ShellResult mounted = Shell.Run($"timeout 60 mount -T '{fstab}' '{_work}/mnt'", TimeSpan.FromSeconds(90));
        Assert.That(mounted.ExitCode, Is.Zero, mounted.ToString());
        Assert.That(File.ReadAllText(Path.Combine(_work, "mnt", "etc", "hostname")), Is.EqualTo("box\n"), "positive control: an allowed read");
        Assert.That(Shell.Run($"cat '{_work}/mnt/etc/secret'").StdOut, Does.Not.Contain("classified"), "forbid= applies");
        Assert.That(Shell.Run($"echo x >> '{_work}/mnt/etc/hostname'").ExitCode, Is.Not.Zero, "readonly= applies");
        Shell.Check($"echo fits > '{_work}/mnt/scratch/small'");
        Assert.That(Shell.Run($"head -c 2M /dev/zero > '{_work}/mnt/scratch/big'").StdErr, Does.Contain("No space left"), "memory_at= mounts a 1 MiB memory mount");
        Assert.That(File.Exists(Path.Combine(_work, "src", "scratch", "small")), Is.False, "the scratch files are not in the host directory");
    }

    [Test]
    public void An_unknown_option_or_a_bad_config_is_refused_on_the_terminal_and_nothing_is_mounted()
    {
        ShellResult typo = Shell.Run($"timeout 60 mount -t fuse.inspatialfs '{_work}/src' '{_work}/mnt' -o isolaton=maximum", TimeSpan.FromSeconds(90));
        Assert.That(typo.ExitCode, Is.Not.Zero);
        Assert.That(typo.Both, Does.Contain("unknown option 'isolaton'"), typo.ToString());
        Assert.That(Mounts.IsFuse(Path.Combine(_work, "mnt")), Is.False);

        string config = Path.Combine(_work, "bad.yaml");
        File.WriteAllText(config, $"name: {Name}\nmountpoint: {_work}/mnt\nmounts:\n  - {{ path: /, source: {_work}/src }}\nisolation: paranoid\n");
        ShellResult bad = Shell.Run($"timeout 60 '{DaemonProcess.Binary}' mount --background --config '{config}'", TimeSpan.FromSeconds(90));
        Assert.That(bad.ExitCode, Is.EqualTo(2), bad.ToString());
        Assert.That(bad.StdErr, Does.Contain("bad.yaml:5:").And.Contain("nothing was mounted"), "the config error is positioned, on this terminal");
        Assert.That(Mounts.IsFuse(Path.Combine(_work, "mnt")), Is.False);

        // Positive control: the same command line with the option spelled right mounts.
        ShellResult good = Shell.Run($"timeout 60 mount -t fuse.inspatialfs '{_work}/src' '{_work}/mnt' -o isolation=maximum,name={Name},no_control", TimeSpan.FromSeconds(90));
        Assert.That(good.ExitCode, Is.Zero, good.ToString());
        Assert.That(Mounts.IsFuse(Path.Combine(_work, "mnt")), Is.True);
    }

    [Test]
    public void A_background_start_returns_when_served_and_the_server_is_detached_with_nothing_of_its_starter()
    {
        string state = Path.Combine(_work, "state");
        // A starter that itself runs under systemd: the detached server must not report to the starter's manager.
        string notify = Path.Combine(_work, "notify.sock");
        using var manager = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Unspecified);
        manager.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(notify));

        ShellResult started = Shell.Run(
            $"NOTIFY_SOCKET='{notify}' timeout 60 '{DaemonProcess.Binary}' mount --background --name {Name} --state-dir '{state}' --source '{_work}/src' '{_work}/mnt' </dev/null",
            TimeSpan.FromSeconds(90));
        Assert.That(started.ExitCode, Is.Zero, started.ToString());
        Assert.That(File.ReadAllText(Path.Combine(_work, "mnt", "etc", "hostname")), Is.EqualTo("box\n"), "served the moment the starter returned");

        // A host mount is kept: the starter started inspatialfs-keeper (its own NOTIFY_SOCKET does not keep it from that:
        // the detached server never sees it), which leads the new session and starts the server in it (see
        // Restart/LiveRestartTests). instance.pid names the keeper: the process to stop.
        string keeper = InstancePid(state).ToString(System.Globalization.CultureInfo.InvariantCulture);
        Assert.That(File.ReadAllText($"/proc/{keeper}/comm").Trim(), Is.EqualTo("inspatialfs-kee"), "instance.pid names the keeper");
        int pid = int.Parse(Shell.Check($"pgrep -P {keeper}").Trim(), System.Globalization.CultureInfo.InvariantCulture);
        string[] stat = File.ReadAllText($"/proc/{pid}/stat").Split(' ');
        Assert.That(stat[3], Is.EqualTo(keeper), "the server's parent is the keeper");
        Assert.That(stat[5], Is.EqualTo(keeper), "the keeper leads the server's own session");
        Assert.That(File.ReadAllText($"/proc/{keeper}/stat").Split(' ')[5], Is.EqualTo(keeper));
        Assert.That(new FileInfo($"/proc/{pid}/fd/0").LinkTarget, Is.EqualTo("/dev/null"));
        Assert.That(new FileInfo($"/proc/{pid}/fd/1").LinkTarget, Is.EqualTo(Path.Combine(state, "daemon.log")));
        Assert.That(File.Exists($"/proc/{pid}/fd/3") && new FileInfo($"/proc/{pid}/fd/3").LinkTarget!.StartsWith("pipe:", StringComparison.Ordinal), Is.False,
            "the readiness pipe is closed once used");
        string environment = File.ReadAllText($"/proc/{pid}/environ");
        Assert.That(environment, Does.Contain("PATH="), "positive control: the environment is readable");
        Assert.That(environment, Does.Not.Contain($"NOTIFY_SOCKET={notify}"), "not the starter's manager");
        Assert.That(environment, Does.Contain("NOTIFY_SOCKET=@inspatialfs-keeper-"), "but its keeper");
        Assert.That(manager.Available, Is.Zero, "nothing reached the starter's notification socket");
    }

    [Test]
    public void A_background_servers_log_past_its_cap_moves_to_daemon_log_1_and_starts_again()
    {
        string state = Path.Combine(_work, "state");
        string log = Path.Combine(state, "daemon.log"), rotated = log + ".1";
        Directory.CreateDirectory(state);
        string start = $"timeout 60 '{DaemonProcess.Binary}' mount --background --name {Name} --state-dir '{state}' --source '{_work}/src' '{_work}/mnt' </dev/null";

        // Positive control: a log under the cap (16 MiB) is appended to.
        File.WriteAllBytes(log, new byte[1 << 20]);
        ShellResult first = Shell.Run(start, TimeSpan.FromSeconds(90));
        Assert.That(first.ExitCode, Is.Zero, first.ToString());
        Assert.That(File.Exists(rotated), Is.False, "nothing rotated under the cap");
        Shell.Check($"umount '{_work}/mnt'");
        Assert.That(WaitUntil(() => !File.Exists($"/proc/{InstancePid(state)}")), Is.True, "the first server ended");

        // Lines left by earlier runs (or provoked by a container) past the cap: the server moves them aside as it starts.
        using (FileStream f = File.Open(log, FileMode.Append))
        {
            f.Write(new byte[17 << 20]);
        }

        long before = new FileInfo(log).Length;
        ShellResult second = Shell.Run(start, TimeSpan.FromSeconds(90));
        Assert.That(second.ExitCode, Is.Zero, second.ToString());
        Assert.That(File.ReadAllText(Path.Combine(_work, "mnt", "etc", "hostname")), Is.EqualTo("box\n"), "it serves");
        Assert.That(WaitUntil(() => File.Exists(rotated) && new FileInfo(rotated).Length >= before), Is.True, "the lines so far are in daemon.log.1");
        Assert.That(WaitUntil(() => File.ReadAllText(log).Contains("moved to daemon.log.1", StringComparison.Ordinal)), Is.True,
            "the log started again and says where the earlier lines went: " + File.ReadAllText(log));
        Assert.That(new FileInfo(log).Length, Is.LessThan(1 << 20), "the log started again");
        Assert.That(Convert.ToString((int)File.GetUnixFileMode(rotated), 8), Is.EqualTo("600"), "daemon.log.1 is the daemon's own file");
    }

    private static bool WaitUntil(Func<bool> condition)
    {
        for (int i = 0; i < 200 && !condition(); i++) Thread.Sleep(50);
        return condition();
    }

    [Test]
    public void A_kept_foreground_mount_becomes_the_keeper_before_the_runtime_starts()
    {
        // The quick form (DirectFS too) and --config exec inspatialfs-keeper from native/keeper/early-keeper.c, linked
        // into the binary, before the .NET runtime has made its first thread. Positive control: the same host mount from
        // a response file is decided by the managed code, after the runtime started (and still gets its keeper).
        string state = Path.Combine(_work, "state");
        string config = Path.Combine(_work, "instance.yaml");
        File.WriteAllText(config, $"name: {Name}\nmountpoint: {_work}/mnt\nmounts:\n  - path: /\n    source: {_work}/src\n");
        Assert.That(ThreadsBeforeTheKeeper(["--source", $"{_work}/src", "--name", Name, "--state-dir", state, $"{_work}/mnt"]), Is.Zero);
        Assert.That(ThreadsBeforeTheKeeper(["--config", config, "--state-dir", state]), Is.Zero);
        // mount --background (mount(8), fstab) with mount(8)'s -o: detached and the keeper exec'd before the runtime too.
        Assert.That(ThreadsBeforeTheKeeper(["--background", "--source", $"{_work}/src", "--name", Name, "--state-dir", state, "-o", "isolation=enhanced", $"{_work}/mnt"]), Is.Zero);
        Assert.That(ThreadsBeforeTheKeeper(["--source", $"{_work}/src", "--direct", "--name", Name, "--state-dir", state, $"{_work}/mnt"]), Is.Zero);
        string responses = Path.Combine(_work, "args.rsp");
        File.WriteAllLines(responses, ["--source", $"{_work}/src", "--name", Name, "--state-dir", state, $"{_work}/mnt"]);
        Assert.That(ThreadsBeforeTheKeeper([$"@{responses}"]), Is.GreaterThan(0));
    }

    /// <summary>
    /// Threads made before the keeper was exec'd, from an strace of a whole mount's life: by the process that exec'd it,
    /// and by the first process when that was another (`--background` detaches by a fork, which is no thread).
    /// </summary>
    private int ThreadsBeforeTheKeeper(string[] mountArgs)
    {
        string trace = Path.Combine(_work, "trace");
        string output = Path.Combine(_work, "out");
        string args = string.Join(' ', mountArgs.Select(a => $"'{a}'"));
        ShellResult run = Shell.Run($"""
            strace -f -qq -e trace=execve,clone,clone3 -o '{trace}' '{DaemonProcess.Binary}' mount {args} </dev/null >'{output}' 2>&1 &
            for i in $(seq 1 400); do grep -q ' {_work}/mnt fuse' /proc/mounts && break; sleep 0.05; done
            cat '{_work}/mnt/etc/hostname'
            umount '{_work}/mnt'
            wait
            """, TimeSpan.FromSeconds(90));
        Assert.That(run.StdOut, Does.Contain("box"), run + File.ReadAllText(output));
        string[] lines = File.ReadAllLines(trace);
        string? execsKeeper = lines.FirstOrDefault(l => l.Contains("execve(\"", StringComparison.Ordinal) && l.Contains("/inspatialfs-keeper\"", StringComparison.Ordinal));
        Assert.That(execsKeeper, Is.Not.Null, "a process became the keeper:\n" + string.Join("\n", lines.Take(8)));
        string[] pids = [lines[0].Split(' ')[0] + " ", execsKeeper!.Split(' ')[0] + " "];
        string[] before = [.. lines.TakeWhile(l => l != execsKeeper).Where(l => pids.Any(p => l.StartsWith(p, StringComparison.Ordinal)))];
        return before.Count(l => l.Contains("CLONE_THREAD", StringComparison.Ordinal));
    }
}
