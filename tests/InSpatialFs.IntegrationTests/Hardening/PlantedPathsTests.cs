using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Hardening;

/// <summary>
/// Issue 10, "Writes its state world-writable, following symlinks (critical)". As `nobody`, plant a symlink or a file of
/// one's own at every path the daemon creates or writes (state directory and its files, control directory, mountpoint,
/// the base directories), then start the instance as root: the start is refused (exit 1, nothing mounted) or the path
/// is repaired, and nothing outside is touched: the target file keeps its content and mode, the target directory its
/// mode and listing. Each case first proves the attack is real (the plant is in place as nobody) and ends with a positive
/// control: once the plant is removed, the very same command line mounts.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class PlantedPathsTests
{
    private const string AsNobody = "setpriv --reuid nobody --regid nogroup --clear-groups";

    private string _work = "";

    private string Base => Path.Combine(_work, "base");

    private string TargetFile => Path.Combine(_work, "target-file");

    private string TargetDir => Path.Combine(_work, "target-dir");

    [SetUp]
    public void SetUp()
    {
        DaemonProcess.RequireMountable();
        _work = Path.Combine("/var/tmp", "isfs-plant-" + Guid.NewGuid().ToString("N")[..8]);
        Shell.Check($"mkdir -m 0755 '{_work}' '{Base}' '{TargetDir}' && echo keep > '{TargetDir}/keep' && echo original > '{TargetFile}' && chmod 0644 '{TargetFile}'");
    }

    [TearDown]
    public void TearDown()
    {
        foreach (string m in new[] { "mnt", "base/mnt", "ctl", "base/ctl" })
        {
            Mounts.ForceUnmount(Path.Combine(_work, m));
        }

        Shell.Run($"rm -rf '{_work}'");
    }

    /// <summary>Plants as nobody while the base is open (0777, as earlier versions left their base directories).</summary>
    private void PlantAsNobody(string script)
    {
        Shell.Check($"chmod 0777 '{Base}'");
        ShellResult planted = Shell.Run($"{AsNobody} sh -c '{script}'", environment: Env());
        Shell.Check($"chmod 0755 '{Base}'"); // then the base is closed again: only what nobody planted remains
        Assert.That(planted.ExitCode, Is.Zero, "the plant itself (the attack is real): " + planted);
    }

    private Dictionary<string, string> Env() => new() { ["B"] = Base, ["F"] = TargetFile, ["D"] = TargetDir };

    private static readonly object[] NobodyPlants =
    [
        new object[] { "state directory is a symlink", "ln -s $D $B/state", "state", "is a symbolic link" },
        new object[] { "state directory of nobody, instance.pid -> file", "mkdir $B/state && ln -s $F $B/state/instance.pid", "state", "owned by uid" },
        new object[] { "state directory of nobody, events.jsonl -> file", "mkdir $B/state && ln -s $F $B/state/events.jsonl", "state", "owned by uid" },
        new object[] { "state directory of nobody, incidents.jsonl -> file", "mkdir $B/state && ln -s $F $B/state/incidents.jsonl", "state", "owned by uid" },
        new object[] { "state directory of nobody, instance.lock -> file", "mkdir $B/state && ln -s $F $B/state/instance.lock", "state", "owned by uid" },
        new object[] { "control directory is a symlink", "ln -s $D $B/ctl", "control", "is a symbolic link" },
        new object[] { "control directory of nobody", "mkdir $B/ctl", "control", "owned by uid" },
        new object[] { "mountpoint is a symlink", "ln -s $D $B/mnt", "mountpoint", "is a symbolic link" },
        new object[] { "mountpoint of nobody", "mkdir $B/mnt", "mountpoint", "owned by uid" },
    ];

    [TestCaseSource(nameof(NobodyPlants))]
    public void A_path_planted_by_nobody_refuses_the_start_and_nothing_outside_is_touched(string what, string plant, string setting, string reason)
    {
        PlantAsNobody(plant);
        string state = setting == "state" ? Path.Combine(Base, "state") : Path.Combine(_work, "state");
        string control = setting == "control" ? Path.Combine(Base, "ctl") : Path.Combine(_work, "ctl");
        string mountpoint = setting == "mountpoint" ? Path.Combine(Base, "mnt") : Path.Combine(_work, "mnt");
        string planted = setting == "state" ? state : setting == "control" ? control : mountpoint;
        Shell.Check($"mkdir -p '{Path.Combine(_work, "mnt")}'");
        TestContext.Out.WriteLine($"tried: {what}: {planted} ({Shell.Run($"ls -la '{planted}' 2>&1; ls -la '{planted}/' 2>&1").StdOut.Trim()})");

        string command = $"timeout -s KILL 60 '{DaemonProcess.Binary}' mount --memory --name plant-{_work[^8..]} --state-dir '{state}' --control '{control}' '{mountpoint}'";
        ShellResult refused = Shell.Run(command, TimeSpan.FromSeconds(90));
        Assert.Multiple(() =>
        {
            Assert.That(refused.ExitCode, Is.EqualTo(1), refused.ToString());
            Assert.That(refused.Both, Does.Contain(planted).And.Contain(reason), "the error names the path and why");
            Assert.That(Mounts.IsFuse(mountpoint) || Mounts.IsFuse(control) || Mounts.IsFuse(TargetDir), Is.False, "nothing was mounted");
            AssertTargetsUntouched();
        });

        // Positive control: the same command mounts once the plant is gone.
        Shell.Check($"rm -rf '{planted}'");
        using DaemonProcess daemon = DaemonProcess.Start(mountpoint, ["--memory", "--name", $"plant-{_work[^8..]}", "--state-dir", state, "--control", control], appendMountPoint: true);
        Assert.That(Shell.Check($"stat -c '%a %U' '{state}' '{state}/instance.pid' '{state}/events.jsonl' '{state}/incidents.jsonl'").Split('\n', StringSplitOptions.RemoveEmptyEntries),
            Is.EqualTo(new[] { "700 root", "600 root", "600 root", "600 root" }), "state directory 0700, its files 0600");
        Assert.That(daemon.Stop(), Is.Zero, daemon.Output);
    }

    [Test]
    public void A_base_directory_writable_by_others_that_is_not_a_default_base_is_refused()
    {
        Shell.Check($"chmod 0777 '{Base}'");
        string state = Path.Combine(Base, "state");
        ShellResult refused = Shell.Run($"timeout -s KILL 60 '{DaemonProcess.Binary}' mount --memory --no-control --name open-{_work[^8..]} --state-dir '{state}' '{_work}/mnt'", TimeSpan.FromSeconds(90));
        Assert.That(refused.ExitCode, Is.EqualTo(1), refused.ToString());
        Assert.That(refused.Both, Does.Contain($"{Base} is writable by group or others (mode 0777"));
        Assert.That(Directory.Exists(state), Is.False, "nothing was created below it");

        Shell.Check($"chmod 0755 '{Base}'"); // positive control: closed, the same start mounts
        using DaemonProcess daemon = DaemonProcess.Start(Path.Combine(_work, "mnt"), ["--memory", "--no-control", "--name", $"open-{_work[^8..]}", "--state-dir", state]);
        Assert.That(daemon.Stop(), Is.Zero, daemon.Output);
    }

    private static readonly object[] RootPlants =
    [
        new object[] { "events.jsonl -> file", "ln -s \"$F\" \"$S/events.jsonl\"", "symbolic link" },
        new object[] { "incidents.jsonl -> file", "ln -s \"$F\" \"$S/incidents.jsonl\"", "symbolic link" },
        new object[] { "instance.pid -> file", "ln -s \"$F\" \"$S/instance.pid\"", "symbolic link" },
        new object[] { "instance.pid hard link of file", "ln \"$F\" \"$S/instance.pid\"", "hard links" },
        new object[] { "runtime-written.marks -> file", "ln -s \"$F\" \"$S/runtime-written.marks\"", "symbolic link" },
        new object[] { "runtime-written.marks hard link of file", "ln \"$F\" \"$S/runtime-written.marks\"", "hard links" },
        new object[] { "incidents.jsonl is a fifo", "mkfifo \"$S/incidents.jsonl\"", "fifo" },
        new object[] { "incidents.jsonl writable by others", "echo x > \"$S/incidents.jsonl\" && chmod 0666 \"$S/incidents.jsonl\"", "writable by group or others" },
    ];

    /// <summary>Defence in depth: even inside a root-owned 0700 state directory, files are opened without following links.</summary>
    [TestCaseSource(nameof(RootPlants))]
    public void A_state_file_that_is_not_a_plain_file_of_ours_refuses_the_start(string what, string plant, string reason)
    {
        string state = Path.Combine(_work, "state");
        Shell.Check($"mkdir -m 0700 '{state}' && {plant}", environment: new Dictionary<string, string> { ["S"] = state, ["F"] = TargetFile });
        TestContext.Out.WriteLine($"tried: {what} in {state}");
        ShellResult refused = Shell.Run($"mkdir -p '{_work}/mnt' && timeout -s KILL 60 '{DaemonProcess.Binary}' mount --memory --no-control --name rootplant-{_work[^8..]} --state-dir '{state}' '{_work}/mnt'", TimeSpan.FromSeconds(90));
        Assert.Multiple(() =>
        {
            Assert.That(refused.ExitCode, Is.EqualTo(1), refused.ToString());
            Assert.That(refused.Both, Does.Contain(reason), refused.ToString());
            Assert.That(Mounts.IsFuse(Path.Combine(_work, "mnt")), Is.False);
            Assert.That(File.ReadAllText(TargetFile), Is.EqualTo("original\n"));
        });
    }

    private void AssertTargetsUntouched()
    {
        Assert.That(File.ReadAllText(TargetFile), Is.EqualTo("original\n"), "the target file's content");
        Assert.That(Shell.Check($"stat -c '%a %U' '{TargetFile}' '{TargetDir}'").Split('\n', StringSplitOptions.RemoveEmptyEntries),
            Is.EqualTo(new[] { "644 root", "755 root" }), "the targets' modes (an earlier version chmod-ed a symlinked control directory to 0700)");
        Assert.That(Directory.GetFileSystemEntries(TargetDir).Select(Path.GetFileName), Is.EqualTo(new[] { "keep" }), "nothing was created in the target directory");
    }
}
