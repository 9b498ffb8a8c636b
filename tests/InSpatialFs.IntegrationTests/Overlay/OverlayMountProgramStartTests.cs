using System.Diagnostics;
using System.Globalization;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Overlay;

/// <summary>
/// How `inspatialfs-overlay` starts (issue 14): native/keeper/early-detach.c forks before the .NET runtime starts, so the
/// mount program and its server are one process and one runtime start. Driven as containers/storage drives it: the
/// program's stdout and stderr are pipes read to end of file, and it must return once the mount serves.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class OverlayMountProgramStartTests
{
    private string _work = "";
    private string _id = "";

    private string Target => Path.Combine(_work, _id, "merged");

    private string StateDir => Path.Combine("/var/lib/inspatialfs", _id);

    private static string Program => Path.Combine(DaemonProcess.RepoRoot, "bin", "inspatialfs-overlay");

    [SetUp]
    public void Layers()
    {
        DaemonProcess.RequireMountable();
        _work = Directory.CreateTempSubdirectory("isfs-ovstart-").FullName;
        _id = "isfs-ovstart-" + Guid.NewGuid().ToString("N")[..8];
        foreach (string d in new[] { "lower", "upper", "work", Path.Combine(_id, "merged") }) Directory.CreateDirectory(Path.Combine(_work, d));
        File.WriteAllText(Path.Combine(_work, "lower", "from-the-image"), "lower\n");
    }

    [TearDown]
    public void Unmount()
    {
        // A server killed unkept (the io_uring test) cannot remove its control directory: the teardown does.
        Shell.Run($"umount '{Target}' 2>/dev/null; for i in $(seq 1 100); do grep -q ' /run/inspatialfs/{_id} ' /proc/mounts || break; sleep 0.05; done; " +
            $"umount -l '/run/inspatialfs/{_id}' 2>/dev/null; rmdir '/run/inspatialfs/{_id}' 2>/dev/null; rm -rf '{_work}' '{StateDir}'");
    }

    /// <summary>Runs the mount program with piped stdout and stderr, read to end of file (as containers/storage reads them).</summary>
    private (int Exit, string Output, TimeSpan Took) MountProgram(string options, string? profile = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo(Program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.Environment["INSPATIALFS_OVERLAY_CONFIG"] = profile ?? Path.Combine(_work, "no-profile.yaml");
        foreach ((string key, string value) in environment ?? new Dictionary<string, string>()) info.Environment[key] = value;
        foreach (string a in new[] { "-o", options, Target }) info.ArgumentList.Add(a);
        var clock = Stopwatch.StartNew();
        using var process = System.Diagnostics.Process.Start(info)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync(), stderr = process.StandardError.ReadToEndAsync();
        // End of file on both pipes, not only the exit: a server still holding them would keep its engine waiting.
        bool ended = Task.WaitAll([stdout, stderr], TimeSpan.FromSeconds(60));
        Assert.That(ended, Is.True, "the caller's pipes reached end of file");
        if (!process.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            process.Kill();
            Assert.Fail("the mount program did not return (it serves in its caller's foreground)");
        }

        return (process.ExitCode, stdout.Result + stderr.Result, clock.Elapsed);
    }

    [Test]
    public void The_mount_program_becomes_the_keeper_of_its_server_and_returns_once_it_serves()
    {
        string options = $"lowerdir={_work}/lower,upperdir={_work}/upper,workdir={_work}/work";
        (int exit, string output, _) = MountProgram(options);

        Assert.That(exit, Is.Zero, output);
        Assert.That(output, Is.Empty, "a successful start prints nothing; the server's lines are in its log");
        Assert.That(File.ReadAllText(Path.Combine(Target, "from-the-image")), Is.EqualTo("lower\n"), "serving when it returned");

        // The mount program's own process (forked before the runtime) became the keeper (exec before the runtime started,
        // same pid), which runs the server as `inspatialfs overlay-mount` with the same options: one runtime start, and a
        // dead server is restarted under the live mount, as for `inspatialfs mount`.
        int keeper = int.Parse(File.ReadAllText(Path.Combine(StateDir, "instance.pid")).Trim(), CultureInfo.InvariantCulture);
        string bin = Path.GetDirectoryName(DaemonProcess.Binary)!;
        string[] serverCommand = [Path.Combine(bin, "inspatialfs"), "overlay-mount", "-o", options, Target];
        Assert.That(File.ReadAllText($"/proc/{keeper}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries),
            Is.EqualTo((string[])[Path.Combine(bin, "inspatialfs-keeper"), "--", .. serverCommand]));
        int server = int.Parse(Shell.Check($"pgrep -P {keeper}").Trim(), CultureInfo.InvariantCulture);
        Assert.That(File.ReadAllText($"/proc/{server}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(serverCommand));
        Assert.That(File.ReadAllText(Path.Combine("/run/inspatialfs", _id, "status")), Does.Contain("restart_mode: keeper"));
        foreach (int pid in new[] { keeper, server })
        {
            Assert.That(File.ReadAllText($"/proc/{pid}/stat").Split(' ')[5], Is.EqualTo(keeper.ToString(CultureInfo.InvariantCulture)), "its own session, led by the keeper");
            Assert.That(new FileInfo($"/proc/{pid}/fd/0").LinkTarget, Is.EqualTo("/dev/null"));
            Assert.That(new FileInfo($"/proc/{pid}/fd/1").LinkTarget, Is.EqualTo(Path.Combine(StateDir, "daemon.log")));
            Assert.That(new FileInfo($"/proc/{pid}/fd/2").LinkTarget, Is.EqualTo(Path.Combine(StateDir, "daemon.log")));
            // The caller's pipes ended (above). Of the other pipes, the runtime's own hold both ends, and one inherited
            // from the test host is open here too; a readiness pipe left open would be neither.
            HashSet<string> inherited = [.. PipesOf("self")];
            string[] leftover = [.. PipesOf(pid.ToString(CultureInfo.InvariantCulture)).GroupBy(p => p).Where(g => g.Count() == 1 && !inherited.Contains(g.Key)).Select(g => g.Key)];
            Assert.That(leftover, Is.Empty, "the readiness pipe is closed once used");
            Assert.That(File.ReadAllText($"/proc/{pid}/environ"), Does.Not.Contain("INSPATIALFS_EARLY_DETACHED"));
        }

        Assert.That(File.ReadAllText($"/proc/{server}/environ"), Does.Not.Contain("INSPATIALFS_READY_FD"), "the keeper reports the mount, not the server");
        Assert.That(File.ReadAllText(Path.Combine(StateDir, "daemon.log")), Does.Contain($"serving {Target}"), "its log went to STATE_DIR/daemon.log");

        // A crash: the keeper starts the same command again on the live mount, and says so in the log (its stdio is the
        // log the server handed it, not the caller's pipes).
        Shell.Check($"kill -9 {server}");
        WaitForStatus("restarts: 1");
        Assert.That(File.ReadAllText(Path.Combine(Target, "from-the-image")), Is.EqualTo("lower\n"));
        int successor = int.Parse(Shell.Check($"pgrep -P {keeper}").Trim(), CultureInfo.InvariantCulture);
        Assert.That(File.ReadAllText($"/proc/{successor}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(serverCommand));
        Assert.That(File.ReadAllText(Path.Combine(StateDir, "daemon.log")), Does.Contain($"inspatialfs-keeper: server pid {server} killed by signal 9; restart 1"));

        // An upgrade (the server hands over and exits 75): the same command again, on the same live mount.
        using (FileStream open = File.OpenRead(Path.Combine(Target, "from-the-image")))
        {
            Shell.Check($"timeout -s KILL 10 sh -c 'echo upgrade > /run/inspatialfs/{_id}/control'");
            WaitForStatus("restarts: 2");
            var buffer = new byte[6];
            Assert.That(open.Read(buffer), Is.EqualTo(6), "a file open before the upgrade reads after it");
            Assert.That(buffer, Is.EqualTo("lower\n"u8.ToArray()));
        }

        int upgraded = int.Parse(Shell.Check($"pgrep -P {keeper}").Trim(), CultureInfo.InvariantCulture);
        Assert.That(upgraded, Is.Not.EqualTo(successor));
        Assert.That(File.ReadAllText($"/proc/{upgraded}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(serverCommand));
    }

    /// <summary>Waits (up to 30 s) until the instance's status file holds <paramref name="line"/>; returns the status.</summary>
    private string WaitForStatus(string line)
    {
        string status = "";
        for (var clock = Stopwatch.StartNew(); clock.Elapsed < TimeSpan.FromSeconds(30); Thread.Sleep(50))
        {
            try
            {
                if ((status = File.ReadAllText(Path.Combine("/run/inspatialfs", _id, "status"))).Contains(line, StringComparison.Ordinal)) return status;
            }
            catch (IOException)
            {
                // between two servers
            }
        }

        Assert.Fail($"status never showed '{line}':\n{status}");
        return status;
    }

    [Test]
    public void A_restarted_server_serves_the_config_it_was_started_with_not_a_profile_edited_since()
    {
        string profile = Path.Combine(_work, "profile.yaml");
        File.WriteAllText(profile, "isolation: standard\n");
        string options = $"lowerdir={_work}/lower,upperdir={_work}/upper,workdir={_work}/work";
        (int exit, string output, _) = MountProgram(options, profile);
        Assert.That(exit, Is.Zero, output);
        Assert.That(WaitForStatus("restarts: 0"), Does.Contain("isolation: standard"));

        // The operator tightens the profile for new containers; this container's server then crashes.
        File.WriteAllText(profile, "isolation: maximum\n");
        int keeper = int.Parse(File.ReadAllText(Path.Combine(StateDir, "instance.pid")).Trim(), CultureInfo.InvariantCulture);
        Shell.Check($"kill -9 $(pgrep -P {keeper})");
        Assert.That(WaitForStatus("restarts: 1"), Does.Contain("isolation: standard"), "a takeover is not a reconfiguration");
        Assert.That(File.ReadAllText(Path.Combine(StateDir, "overlay-instance.yaml")), Does.Contain("isolation: standard"));

        // Positive control: the next container's mount program reads the edited profile.
        Shell.Check($"umount '{Target}'; for i in $(seq 1 100); do kill -0 {keeper} 2>/dev/null || break; sleep 0.05; done");
        (exit, output, _) = MountProgram(options, profile);
        Assert.That(exit, Is.Zero, output);
        Assert.That(WaitForStatus("restarts: 0"), Does.Contain("isolation: maximum"));
    }

    [Test]
    public void A_profile_that_asks_for_io_uring_is_served_unkept_and_its_keeper_ends_with_it()
    {
        using FuseIoUringSwitch on = FuseIoUringSwitch.Set(on: true);
        string profile = Path.Combine(_work, "profile.yaml");
        File.WriteAllText(profile, "io_uring: true\n");
        (int exit, string output, _) = MountProgram($"lowerdir={_work}/lower,upperdir={_work}/upper,workdir={_work}/work", profile);
        Assert.That(exit, Is.Zero, output);
        string status = WaitForStatus("restarts: 0");
        Assert.That(status, Does.Contain("transport: io_uring (").And.Contain("restart_mode: off (--io-uring"), status);

        // Requests held on the rings cannot be resent: the dead server is not replaced, and its keeper does not linger.
        int keeper = int.Parse(File.ReadAllText(Path.Combine(StateDir, "instance.pid")).Trim(), CultureInfo.InvariantCulture);
        Shell.Check($"kill -9 $(pgrep -P {keeper}); for i in $(seq 1 200); do kill -0 {keeper} 2>/dev/null || break; sleep 0.05; done");
        Assert.That(Directory.Exists($"/proc/{keeper}"), Is.False, "the keeper ended with its unkept server");
        Assert.That(File.ReadAllText(Path.Combine(StateDir, "daemon.log")), Does.Contain("not restarting (no stored descriptors)"));
    }

    [Test]
    public void The_keeper_is_execd_before_the_runtime_starts_so_the_runtime_starts_once()
    {
        // From an strace of the whole instance's life: the process that execs the keeper (the child the mount program
        // forked in its constructor) made no thread before, that is, started no runtime; the only runtime is the server's.
        string trace = Path.Combine(_work, "trace");
        ShellResult run = Shell.Run($"""
            strace -f -qq -e trace=execve,clone,clone3 -o '{trace}' '{Program}' -o 'lowerdir={_work}/lower,upperdir={_work}/upper,workdir={_work}/work' '{Target}' </dev/null >/dev/null 2>&1 &
            for i in $(seq 1 400); do grep -q ' {Target} fuse' /proc/mounts && break; sleep 0.05; done
            cat '{Target}/from-the-image'
            umount '{Target}'
            wait
            """, TimeSpan.FromSeconds(90));
        Assert.That(run.StdOut, Does.Contain("lower"), run.ToString());
        string[] lines = File.ReadAllLines(trace);
        string? execsKeeper = lines.FirstOrDefault(l => l.Contains("execve(\"", StringComparison.Ordinal) && l.Contains("/inspatialfs-keeper\"", StringComparison.Ordinal));
        Assert.That(execsKeeper, Is.Not.Null, "a process became the keeper:\n" + string.Join("\n", lines.Take(8)));
        string pid = execsKeeper!.Split(' ')[0] + " ";
        string[] before = [.. lines.Where(l => l.StartsWith(pid, StringComparison.Ordinal)).TakeWhile(l => l != execsKeeper)];
        Assert.That(before.Count(l => l.Contains("clone", StringComparison.Ordinal)), Is.Zero, string.Join("\n", before));
        Assert.That(lines.Count(l => l.Contains("execve(\"", StringComparison.Ordinal) && !l.Contains("= -1", StringComparison.Ordinal)), Is.EqualTo(3),
            "three programs ran: the mount program, the keeper and the server:\n" + string.Join("\n", lines.Where(l => l.Contains("execve", StringComparison.Ordinal))));
    }

    [Test]
    public void A_caller_whose_environment_names_a_keeper_that_is_not_its_parent_still_gets_a_detached_kept_mount()
    {
        // A keeper's variables inherited further down (a caller started somewhere under a kept server) do not make the
        // mount program take itself for that keeper's server: it would serve in the caller's foreground and never return.
        (int exit, string output, _) = MountProgram($"lowerdir={_work}/lower,upperdir={_work}/upper,workdir={_work}/work", environment: new Dictionary<string, string>
        {
            ["NOTIFY_SOCKET"] = "@inspatialfs-keeper-1-0000000000000000",
            ["INSPATIALFS_KEEPER_PID"] = "1",
        });

        Assert.That(exit, Is.Zero, output);
        Assert.That(File.ReadAllText(Path.Combine(Target, "from-the-image")), Is.EqualTo("lower\n"));
        int keeper = int.Parse(File.ReadAllText(Path.Combine(StateDir, "instance.pid")).Trim(), CultureInfo.InvariantCulture);
        Assert.That(File.ReadAllText($"/proc/{keeper}/cmdline"), Does.StartWith(Path.Combine(Path.GetDirectoryName(DaemonProcess.Binary)!, "inspatialfs-keeper")));
        Assert.That(WaitForStatus("restart_mode: keeper"), Does.Contain("restarts: 0"));
    }

    [Test]
    public void With_no_keeper_the_mount_program_is_its_own_server_one_runtime_start()
    {
        string options = $"lowerdir={_work}/lower,upperdir={_work}/upper,workdir={_work}/work,no_keeper";
        (int exit, string output, _) = MountProgram(options);

        Assert.That(exit, Is.Zero, output);
        Assert.That(File.ReadAllText(Path.Combine(Target, "from-the-image")), Is.EqualTo("lower\n"), "serving when it returned");
        int server = int.Parse(File.ReadAllText(Path.Combine(StateDir, "instance.pid")).Trim(), CultureInfo.InvariantCulture);
        // The server is the mount program's own process (forked before the runtime), not a keeper's child.
        Assert.That(File.ReadAllText($"/proc/{server}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries),
            Is.EqualTo(new[] { Program, "-o", options, Target }));
        Assert.That(Shell.Run($"pgrep -P {server}").StdOut.Trim(), Is.Empty, "no keeper, no second server");
        Assert.That(File.ReadAllText(Path.Combine("/run/inspatialfs", _id, "status")), Does.Contain("restart_mode: off"));
        Assert.That(File.ReadAllText($"/proc/{server}/environ"), Does.Not.Contain("INSPATIALFS_EARLY_DETACHED").And.Not.Contain("INSPATIALFS_READY_FD"));
    }

    private static IEnumerable<string> PipesOf(string pid) =>
        Directory.GetFiles($"/proc/{pid}/fd").Select(fd => new FileInfo(fd).LinkTarget ?? "").Where(t => t.StartsWith("pipe:", StringComparison.Ordinal));

    [Test]
    public void A_server_that_cannot_mount_tells_the_caller_why_with_its_exit_code()
    {
        (int exit, string output, _) = MountProgram($"lowerdir={_work}/no-such-layer,upperdir={_work}/upper,workdir={_work}/work");

        Assert.That(exit, Is.EqualTo(2), output);
        Assert.That(output, Does.Contain($"the server exited before {Target} was mounted"));
        Assert.That(output, Does.Contain($"lower directory {_work}/no-such-layer does not exist"), "the server's own reason, from its log");
        Assert.That(File.ReadAllText("/proc/mounts"), Does.Not.Contain(Target));
        // Positive control for the same layers, named rightly.
        Assert.That(MountProgram($"lowerdir={_work}/lower,upperdir={_work}/upper,workdir={_work}/work").Exit, Is.Zero);
    }

    [Test]
    public void A_symlink_planted_as_its_log_is_not_followed()
    {
        // The detached server opens its own log now: a link at STATE_DIR/daemon.log must not lead its output elsewhere.
        // (Positive control: the first test, where the same start logs to STATE_DIR/daemon.log.)
        string victim = Path.Combine(_work, "victim");
        File.WriteAllText(victim, "untouched\n");
        Directory.CreateDirectory(StateDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.CreateSymbolicLink(Path.Combine(StateDir, "daemon.log"), victim);

        (int exit, string output, _) = MountProgram($"lowerdir={_work}/lower,upperdir={_work}/upper,workdir={_work}/work");

        Assert.That(exit, Is.Not.Zero, output);
        Assert.That(output, Does.Contain("cannot prepare the log"));
        Assert.That(File.ReadAllText(victim), Is.EqualTo("untouched\n"));
        Assert.That(File.ReadAllText("/proc/mounts"), Does.Not.Contain(Target), "nothing serves without its log");
    }

    [Test]
    public void Overlapping_layers_are_refused_and_nothing_is_written_into_the_image()
    {
        Directory.CreateDirectory(Path.Combine(_work, "lower", "up"));
        Directory.CreateDirectory(Path.Combine(_work, "upper", "w"));
        foreach (string options in new[]
        {
            $"lowerdir={_work}/lower,upperdir={_work}/lower/up,workdir={_work}/work", // the container would write into the image
            $"lowerdir={_work}/lower,upperdir={_work}/upper,workdir={_work}/upper/w", // the container would see the work area
        })
        {
            (int exit, string output, _) = MountProgram(options);
            Assert.That(exit, Is.EqualTo(2), options + ": " + output);
            Assert.That(output, Does.Contain("overlap").And.Contain("separate directory trees"), options);
            Assert.That(File.ReadAllText("/proc/mounts"), Does.Not.Contain(Target), options);
        }

        Assert.That(Directory.GetFileSystemEntries(Path.Combine(_work, "lower", "up")), Is.Empty, "the image is untouched");
        Assert.That(MountProgram($"lowerdir={_work}/lower,upperdir={_work}/upper,workdir={_work}/work").Exit, Is.Zero, "positive control: separate layers mount");
    }

    [Test]
    public void Layer_paths_are_taken_exactly_as_given_spaces_and_line_breaks_included()
    {
        // A layer whose name holds a line break, and one that ends in a space: the instance config the mount program writes
        // must name exactly these directories (folded or trimmed, they would name others: "odd lower" exists as a decoy).
        string odd = Path.Combine(_work, "odd\n  lower"), decoy = Path.Combine(_work, "odd lower"), spaced = Path.Combine(_work, "upper ");
        foreach (string d in new[] { odd, decoy, spaced }) Directory.CreateDirectory(d);
        File.WriteAllText(Path.Combine(odd, "which"), "odd\n");
        File.WriteAllText(Path.Combine(decoy, "which"), "decoy\n");

        (int exit, string output, _) = MountProgram($"lowerdir={odd},upperdir={spaced},workdir={_work}/work");

        Assert.That(exit, Is.Zero, output);
        Assert.That(File.ReadAllText(Path.Combine(Target, "which")), Is.EqualTo("odd\n"), "the layer named, not the decoy");
        File.WriteAllText(Path.Combine(Target, "written"), "x");
        Assert.That(File.Exists(Path.Combine(spaced, "written")), Is.True, "the upper directory named, trailing space and all");
        Assert.That(File.Exists(Path.Combine(_work, "upper", "written")), Is.False);
    }

    [Test]
    public void A_bad_command_line_is_refused_before_anything_detaches()
    {
        (int exit, string output, _) = MountProgram($"upperdir={_work}/upper,workdir={_work}/work");

        Assert.That(exit, Is.EqualTo(2));
        Assert.That(output, Does.Contain("-o lowerdir=DIR[:DIR...] is required"));
        Assert.That(Directory.Exists(StateDir), Is.False, "no instance was prepared");
    }

    [Test]
    public void With_io_uring_the_container_mount_takes_its_requests_over_the_rings()
    {
        using FuseIoUringSwitch on = FuseIoUringSwitch.Set(on: true);
        (int exit, string output, _) = MountProgram($"lowerdir={_work}/lower,upperdir={_work}/upper,workdir={_work}/work,io_uring");
        Assert.That(exit, Is.Zero, output);

        File.WriteAllText(Path.Combine(Target, "copied-up"), "upper\n");
        Assert.That(File.ReadAllText(Path.Combine(Target, "from-the-image")), Is.EqualTo("lower\n"));
        Assert.That(File.ReadAllText(Path.Combine(_work, "upper", "copied-up")), Is.EqualTo("upper\n"));
        string status = File.ReadAllText(Path.Combine("/run/inspatialfs", _id, "status"));
        Assert.That(status, Does.Contain("transport: io_uring ("), status);
        Assert.That(status, Does.Match(@"ring_requests: [1-9]"), status);
    }

    [Test]
    public void With_io_uring_on_a_kernel_with_the_switch_off_the_caller_learns_why_and_nothing_is_mounted()
    {
        using FuseIoUringSwitch off = FuseIoUringSwitch.Set(on: false);
        (int exit, string output, _) = MountProgram($"lowerdir={_work}/lower,upperdir={_work}/upper,workdir={_work}/work,io_uring");

        Assert.That(exit, Is.Not.Zero, output);
        Assert.That(output, Does.Contain("FUSE over io_uring is off"));
        Assert.That(File.ReadAllText("/proc/mounts"), Does.Not.Contain(Target));
    }
}
