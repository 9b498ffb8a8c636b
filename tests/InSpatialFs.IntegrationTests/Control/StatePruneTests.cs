using System.Diagnostics;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Control;

/// <summary>
/// `inspatialfs prune` on real instances: a stopped instance keeps its state directory by design, and every container an
/// engine ever started on the overlay mount program kept one. Prune removes a stopped instance's directory once its
/// overlay layer is gone or it is older than the retention, and never a running one's, a foreign entry, or what a
/// planted symlink points to.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class StatePruneTests
{
    private string _work = "";

    private string Root => Path.Combine(_work, "state");

    [SetUp]
    public void Work()
    {
        DaemonProcess.RequireMountable();
        _work = Directory.CreateTempSubdirectory("isfs-prune-").FullName;
        Directory.CreateDirectory(Path.Combine(_work, "source"));
        Shell.Check($"mkdir -m 0700 '{Root}'");
    }

    [TearDown]
    public void Remove()
    {
        if (_work.Length == 0)
        {
            return; // skipped before SetUp made the work directory: there is nothing of ours to unmount
        }

        Shell.Run($"awk '$2 ~ \"^{_work}/\" {{print $2}}' /proc/mounts | xargs -r -n1 umount -l; rm -rf '{_work}'");
    }

    private DaemonProcess Start(string name) =>
        DaemonProcess.Start(Path.Combine(_work, "mnt-" + name), ["--source", Path.Combine(_work, "source"), "--state-dir", Path.Combine(Root, name),
            "--control", Path.Combine(_work, "ctl-" + name), "--name", "prune-" + name]);

    private static ShellResult Prune(string args) => Shell.Run($"'{DaemonProcess.Binary}' prune {args}", TimeSpan.FromMinutes(1));

    [Test]
    public void Prune_removes_old_stopped_state_and_keeps_running_recent_and_foreign_entries()
    {
        using DaemonProcess running = Start("running");
        using (Start("recent")) { }
        using (DaemonProcess old = Start("old"))
        {
            File.WriteAllText(Path.Combine(old.MountPoint, "written"), "x");
        }

        Assert.That(File.Exists(Path.Combine(Root, "old", "events.jsonl")), Is.True, "a stopped instance keeps its journal");
        Shell.Check($"find '{Root}/old' -exec touch -h -d '10 days ago' {{}} +");
        // Not the daemon's: a directory without instance.lock, and a symlink to a directory that looks like state.
        Shell.Check($"mkdir -m 0700 '{Root}/notours' && echo keep > '{Root}/notours/file' && " +
            $"mkdir -m 0700 '{_work}/target' && : > '{_work}/target/instance.lock' && echo precious > '{_work}/target/data' && " +
            $"find '{_work}/target' -exec touch -h -d '10 days ago' {{}} + && ln -s '{_work}/target' '{Root}/link' && " +
            // Old enough, but open to others (anyone could have planted it), or with its lock a symlink to a file elsewhere.
            $"mkdir -m 0777 '{Root}/open' && : > '{Root}/open/instance.lock' && find '{Root}/open' -exec touch -h -d '10 days ago' {{}} + && " +
            $"mkdir -m 0700 '{Root}/linklock' && ln -s '{_work}/target/data' '{Root}/linklock/instance.lock' && find '{Root}/linklock' -exec touch -h -d '10 days ago' {{}} +");

        ShellResult dry = Prune($"--state-root '{Root}' --dry-run");
        Assert.That(dry.ExitCode, Is.Zero, dry.ToString());
        Assert.That(dry.StdOut, Does.Contain("would remove old (").And.Contain("unchanged for 10d").And.Contain("would remove 1 state directory"), dry.ToString());
        Assert.That(Directory.Exists(Path.Combine(Root, "old")), Is.True, "--dry-run removes nothing");

        ShellResult pruned = Prune($"--state-root '{Root}' -v");
        Assert.That(pruned.ExitCode, Is.Zero, pruned.ToString());
        Assert.That(pruned.StdOut, Does.Contain("removed old (").And.Contain("removed 1 state directory"), pruned.ToString());
        Assert.That(pruned.StdOut, Does.Contain("kept recent: stopped, changed").And.Contain("kept running: locked by a running instance (pid")
            .And.Contain("kept notours: no instance.lock").And.Contain("kept link: not a directory")
            .And.Contain("kept open: owned by uid 0 with mode 777: not the daemon's").And.Contain($"kept linklock: {Root}/linklock/instance.lock is a symbolic link (refused)"), pruned.ToString());
        Assert.That(Directory.Exists(Path.Combine(Root, "old")), Is.False);
        Assert.That(File.ReadAllText(Path.Combine(_work, "target", "data")), Is.EqualTo("precious\n"), "a planted symlink is never followed");
        Assert.That(File.ReadAllText(Path.Combine(Root, "notours", "file")), Is.EqualTo("keep\n"));
        Assert.That(Directory.Exists(Path.Combine(Root, "open")) && Directory.Exists(Path.Combine(Root, "linklock")), Is.True);
        Assert.That(new DirectoryInfo(Path.Combine(Root, "link")).LinkTarget, Is.EqualTo(Path.Combine(_work, "target")));

        // --older-than 0: every stopped instance's state goes; a running one's never does.
        ShellResult all = Prune($"--state-root '{Root}' --older-than 0");
        Assert.That(all.ExitCode, Is.Zero, all.ToString());
        Assert.That(all.StdOut, Does.Contain("removed recent (").And.Contain("kept 1 running"), all.ToString());
        Assert.That(Directory.Exists(Path.Combine(Root, "recent")), Is.False);
        File.WriteAllText(Path.Combine(running.MountPoint, "still-served"), "yes");
        Assert.That(File.Exists(Path.Combine(Root, "running", "events.jsonl")), Is.True, "the running instance still has its journal");
        Assert.That(running.HasExited, Is.False);
    }

    [Test]
    public void A_start_that_waited_while_prune_removed_its_directory_starts_on_a_new_one()
    {
        using (DaemonProcess first = Start("raced"))
        {
            File.WriteAllText(Path.Combine(first.MountPoint, "before"), "x");
        }

        string dir = Path.Combine(Root, "raced");
        Assert.That(File.ReadAllText(Path.Combine(dir, "events.jsonl")), Does.Contain("/before"));
        // Stands in for prune: holds the instance lock, removes the directory, lets go.
        using var holder = Process.Start("flock", [Path.Combine(dir, "instance.lock"), "sh", "-c", $"sleep 2; rm -rf '{dir}'"]);
        Assert.That(ControlFilesEventually(() => Shell.Run($"flock -n '{dir}/instance.lock' true").ExitCode != 0), Is.True, "the lock is held");

        using DaemonProcess again = Start("raced");
        holder.WaitForExit();
        Assert.That(again.Output, Does.Contain($"state directory {dir} was removed by `inspatialfs prune` while this instance started; starting on a new one"));
        File.WriteAllText(Path.Combine(again.MountPoint, "after"), "y");
        Assert.That(ControlFilesEventually(() => File.Exists(Path.Combine(dir, "events.jsonl")) && File.ReadAllText(Path.Combine(dir, "events.jsonl")).Contains("/after", StringComparison.Ordinal)),
            Is.True, "the new directory holds the new journal");
        Assert.That(File.ReadAllText(Path.Combine(dir, "events.jsonl")), Does.Not.Contain("/before"), "not the removed one's");
        Assert.That(Shell.Run($"flock -n '{dir}/instance.lock' true").ExitCode, Is.Not.Zero, "and the instance holds the new directory's lock");
    }

    [Test]
    public void State_of_an_overlay_whose_layer_the_engine_removed_goes_whatever_its_age()
    {
        string id = "isfs-prune-" + Guid.NewGuid().ToString("N")[..8];
        string layer = Path.Combine(_work, "storage", "overlay", id), target = Path.Combine(layer, "merged"), state = Path.Combine("/var/lib/inspatialfs", id);
        foreach (string d in new[] { "lower", "upper", "workdir", target }) Directory.CreateDirectory(Path.Combine(_work, d));
        try
        {
            Shell.Check($"'{DaemonProcess.RepoRoot}/bin/inspatialfs-overlay' -o lowerdir={_work}/lower,upperdir={_work}/upper,workdir={_work}/workdir '{target}'", TimeSpan.FromMinutes(1));
            File.WriteAllText(Path.Combine(target, "made"), "x");
            Shell.Check($"umount '{target}'");
            Assert.That(ControlFilesEventually(() => Shell.Run($"flock -n '{state}/instance.lock' true").ExitCode == 0), Is.True, "the instance stopped");

            ShellResult kept = Prune("-v");
            Assert.That(kept.StdOut, Does.Contain($"kept {id}: stopped, changed"), "its layer is still there (a stopped container): " + kept);

            Directory.Delete(layer, recursive: true); // podman rm
            ShellResult pruned = Prune("");
            Assert.That(pruned.ExitCode, Is.Zero, pruned.ToString());
            Assert.That(pruned.StdOut, Does.Contain($"removed {id} (").And.Contain($"its overlay layer {layer} is gone"), pruned.ToString());
            Assert.That(Directory.Exists(state), Is.False);
        }
        finally
        {
            Shell.Run($"umount -l '{target}' 2>/dev/null; umount -l '/run/inspatialfs/{id}' 2>/dev/null; rm -rf '{state}'");
        }
    }

    [TestCase("--older-than 7x", "--older-than '7x' is not a duration (N followed by s, m, h or d, e.g. 7d)")]
    [TestCase("--older-than 1.5d", "--older-than '1.5d' is not a duration")]
    [TestCase("--state-root relative/dir", "--state-root 'relative/dir' is not an absolute path")]
    public void Bad_arguments_are_usage_errors(string args, string message)
    {
        ShellResult r = Prune(args);
        Assert.That(r.ExitCode, Is.EqualTo(2), r.ToString());
        Assert.That(r.StdErr, Does.StartWith("inspatialfs prune: " + message), r.ToString());
    }

    private static bool ControlFilesEventually(Func<bool> condition) => Security.ControlFiles.Eventually(condition, TimeSpan.FromSeconds(20));
}
