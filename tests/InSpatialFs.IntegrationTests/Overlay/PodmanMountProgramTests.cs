using System.Text.Json.Nodes;
using InSpatialFs.IntegrationTests.Security;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Overlay;

/// <summary>
/// Issue 13, end to end with the real engine: podman with InSpatialFs as its overlay mount_program (the path
/// fuse-overlayfs takes), on a private podman storage, with images built offline (podman import of a busybox rootfs,
/// plus a second layer made with podman commit).
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class PodmanMountProgramTests
{
    private string _work = "";
    private string _profile = "";

    private string Podman => $"podman --root '{_work}/storage' --runroot '{_work}/run' --storage-driver overlay " +
        $"--storage-opt overlay.mount_program='{DaemonProcess.RepoRoot}/bin/inspatialfs-overlay' --cgroup-manager cgroupfs --events-backend file";

    private const string RunFlags = "--runtime runc --ulimit nofile=20000:20000 --ulimit nproc=4096:4096 --network none";

    private ShellResult P(string args, TimeSpan? timeout = null) =>
        Shell.Run($"INSPATIALFS_OVERLAY_CONFIG='{_profile}' {Podman} {args}", timeout ?? TimeSpan.FromMinutes(2));

    private string PCheck(string args)
    {
        ShellResult r = P(args);
        Assert.That(r.ExitCode, Is.Zero, $"podman {args}\n{r}");
        return r.StdOut;
    }

    /// <summary>The instance name of a container's mount: containers/storage's id of its layer (the directory above "merged").</summary>
    private string InstanceOf(string container) =>
        Path.GetFileName(Path.GetDirectoryName(PCheck($"inspect -f '{{{{.GraphDriver.Data.MergedDir}}}}' {container}").Trim())!)!;

    /// <summary>The same for a stopped container, which has no MergedDir: its upper directory is the layer's "diff".</summary>
    private string LayerOf(string container) =>
        Path.GetFileName(Path.GetDirectoryName(PCheck($"inspect -f '{{{{.GraphDriver.Data.UpperDir}}}}' {container}").Trim())!)!;

    [OneTimeSetUp]
    public void Images()
    {
        DaemonProcess.RequireMountable();
        if (!Shell.Has("podman")) Assert.Ignore("podman is not installed (make deps installs it)");
        _work = Path.Combine("/var/tmp", "isfs-podman-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_work);
        _profile = Path.Combine(_work, "overlay.yaml");
        File.WriteAllText(_profile, """
            isolation: standard
            paths:
              forbidden: [/etc/secret]
            """);
        Shell.Check($"'{DaemonProcess.RepoRoot}/scripts/make-rootfs.sh' '{_work}/rootfs' && echo classified > '{_work}/rootfs/etc/secret' && tar -C '{_work}/rootfs' -cf '{_work}/busybox.tar' .", TimeSpan.FromMinutes(3));
        PCheck($"import '{_work}/busybox.tar' localhost/isfs-test:1");
        // A second layer: files and a directory the workload will change.
        PCheck($"run --name layer2 {RunFlags} localhost/isfs-test:1 sh -c 'mkdir -p /srv/app/sub && echo v1 > /srv/app/sub/config && echo keep > /srv/keep && echo bye > /srv/remove-me'");
        PCheck("commit layer2 localhost/isfs-test:2");
        PCheck("rm layer2");
    }

    [OneTimeTearDown]
    public void Cleanup()
    {
        if (_work.Length == 0) return;
        // Kept servers run as `inspatialfs overlay-mount -o ... STORAGE/...` under their keepers (as `inspatialfs mount
        // --config /var/lib/inspatialfs/LAYER/...` when the keeper was started after the runtime): the layer ids, taken
        // before the engine removes the layers, say which ones to wait for below.
        string layers = Shell.Run($"ls '{_work}/storage/overlay' 2>/dev/null").StdOut.Replace('\n', ' ');
        P("rm -af", TimeSpan.FromMinutes(2));
        P("rmi -af", TimeSpan.FromMinutes(2));
        // Every container and image layer mounted here left a state directory; their layers are gone now, so prune
        // removes them (before the storage directory goes, which it takes as proof that the engine removed them).
        // A server whose mount podman just took away may still be shutting down, holding its lock: prune keeps a running
        // instance's state, so wait for those first (the pattern's [e] keeps this shell's own command line out of it).
        Shell.Run($"for i in $(seq 1 300); do busy=; for id in {layers}; do pgrep -f \"/var/lib/inspatialfs/(ro-)?$id/overlay-instanc[e]\" > /dev/null && busy=1; done; " +
            $"pgrep -f 'inspatialfs(-overlay| overlay-mount).*{_work}/storag[e]/' > /dev/null && busy=1; [ -z \"$busy\" ] && break; sleep 0.1; done", TimeSpan.FromMinutes(1));
        Shell.Run($"'{DaemonProcess.Binary}' prune", TimeSpan.FromMinutes(2));
        Shell.Run($"umount -R '{_work}/storage/overlay' 2>/dev/null; rm -rf '{_work}'", TimeSpan.FromMinutes(2));
    }

    [Test]
    public void Podman_diff_and_commit_see_exactly_what_the_container_changed()
    {
        PCheck($"run --name work1 {RunFlags} localhost/isfs-test:2 sh -c '" +
            "cat /srv/keep > /dev/null && echo added > /srv/added && rm /srv/remove-me && mv /srv/app /srv/app-renamed && " +
            "ln /srv/added /srv/added-link && mkfifo /srv/fifo && echo more >> /srv/keep'");
        string[] diff = PCheck("diff work1").Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim()).ToArray();
        Assert.That(diff, Is.SupersetOf(new[] { "A /srv/added", "A /srv/added-link", "A /srv/fifo", "D /srv/remove-me", "C /srv/keep", "D /srv/app", "A /srv/app-renamed" }),
            string.Join('\n', diff));
        Assert.That(diff, Has.None.Contains("/etc/") .And.None.Contains("/bin/"), "nothing the workload did not touch");

        PCheck("commit work1 localhost/isfs-test:3");
        string after = PCheck($"run --rm {RunFlags} localhost/isfs-test:3 sh -c 'cat /srv/added /srv/keep; ls /srv; cat /srv/app-renamed/sub/config; [ -e /srv/remove-me ] || echo removed-stays-removed'");
        Assert.That(after, Does.Contain("added\nkeep\nmore\n").And.Contain("removed-stays-removed").And.Contain("v1"), after);
        Assert.That(after, Does.Not.Contain("\napp\n"), "the renamed directory is gone from its old name: " + after);
    }

    [Test]
    public void With_overlay_mountopt_io_uring_the_container_is_served_over_io_uring()
    {
        using FuseIoUringSwitch on = FuseIoUringSwitch.Set(on: true);
        // storage.conf's [storage.options.overlay] mountopt = "io_uring" as a flag: containers/storage passes it to the mount program.
        ShellResult run = Shell.Run($"INSPATIALFS_OVERLAY_CONFIG='{_profile}' {Podman} --storage-opt overlay.mountopt=io_uring " +
            $"run -d --name u1 {RunFlags} localhost/isfs-test:2 sh -c 'echo ring > /srv/mine; sleep 30'", TimeSpan.FromMinutes(2));
        Assert.That(run.ExitCode, Is.Zero, run.ToString());
        try
        {
            Assert.That(ControlFiles.Eventually(() => P("exec u1 cat /srv/mine").StdOut.Contains("ring", StringComparison.Ordinal), TimeSpan.FromSeconds(20)), Is.True);
            string status = File.ReadAllText(Path.Combine("/run/inspatialfs", InstanceOf("u1"), "status"));
            Assert.That(status, Does.Contain("transport: io_uring ("), status);
            Assert.That(P("exec u1 cat /srv/keep").StdOut.Trim(), Is.EqualTo("keep"));
            ShellResult secret = P("exec u1 cat /etc/secret");
            Assert.That(secret.ExitCode, Is.Not.Zero, "the profile's policy holds on the rings: " + secret);
            Assert.That(secret.StdOut, Does.Not.Contain("classified"));
        }
        finally
        {
            P("rm -f u1");
        }
    }

    [Test]
    public void After_podman_rm_prune_removes_that_containers_state_and_keeps_a_stopped_ones()
    {
        PCheck($"run --name gone1 {RunFlags} localhost/isfs-test:2 sh -c 'echo x > /srv/mine'");
        PCheck($"run --name stays1 {RunFlags} localhost/isfs-test:2 sh -c 'echo y > /srv/mine'");
        string gone = LayerOf("gone1"), stays = LayerOf("stays1");
        Assert.That(gone, Has.Length.EqualTo(64), "a layer id");
        try
        {
            Assert.That(Directory.Exists($"/var/lib/inspatialfs/{gone}") && Directory.Exists($"/var/lib/inspatialfs/{stays}"), Is.True, "each container's mount kept its state");
            PCheck("rm gone1");

            ShellResult pruned = Shell.Run($"'{DaemonProcess.Binary}' prune -v", TimeSpan.FromMinutes(2));
            Assert.That(pruned.ExitCode, Is.Zero, pruned.ToString());
            Assert.That(pruned.StdOut, Does.Contain($"removed {gone} (").And.Contain($"/overlay/{gone} is gone"), pruned.ToString());
            Assert.That(pruned.StdOut, Does.Contain($"kept {stays}: stopped"), pruned.ToString());
            Assert.That(Directory.Exists($"/var/lib/inspatialfs/{gone}"), Is.False);

            // The stopped container starts again on the record it kept.
            PCheck("start -a stays1");
            Assert.That(File.Exists($"/var/lib/inspatialfs/{stays}/events.jsonl"), Is.True);
        }
        finally
        {
            P("rm -f gone1 stays1");
        }
    }

    /// <summary>
    /// The daemon under a podman container dies (kill -9 of the server): the mount program's keeper starts another on
    /// the live mount, and the container goes on, its files and the image's intact. Before, the container's root
    /// was gone (ENOTCONN) with the server.
    /// </summary>
    [Test]
    public void A_container_goes_on_when_the_server_of_its_root_is_killed()
    {
        PCheck($"run -d --name k1 {RunFlags} localhost/isfs-test:2 sh -c 'i=0; while [ ! -e /tmp/stop ]; do i=$((i+1)); echo $i > /srv/count || exit 3; [ \"$(cat /srv/count)\" = $i ] || exit 4; sleep 0.02; done'");
        try
        {
            Assert.That(ControlFiles.Eventually(() => P("exec k1 cat /srv/count").StdOut.Trim() is { Length: > 0 } n && n != "1", TimeSpan.FromSeconds(20)), Is.True, "the loop runs");
            string id = InstanceOf("k1"), status = Path.Combine("/run/inspatialfs", id, "status");
            Assert.That(File.ReadAllText(status), Does.Contain("restart_mode: keeper"));
            int keeper = int.Parse(File.ReadAllText($"/var/lib/inspatialfs/{id}/instance.pid").Trim(), System.Globalization.CultureInfo.InvariantCulture);
            for (int kill = 1; kill <= 3; kill++)
            {
                Shell.Check($"kill -KILL $(pgrep -P {keeper})");
                Assert.That(ControlFiles.Eventually(() => File.Exists(status) && File.ReadAllText(status).Contains($"restarts: {kill}\n", StringComparison.Ordinal), TimeSpan.FromSeconds(20)),
                    Is.True, $"restart {kill}");
            }

            Assert.That(P("inspect -f '{{.State.Running}}' k1").StdOut.Trim(), Is.EqualTo("true"), "the container still runs");
            Assert.That(P("exec k1 cat /srv/keep").StdOut.Trim(), Is.EqualTo("keep"), "the image layer");
            PCheck("exec k1 touch /tmp/stop");
            Assert.That(P("wait k1").StdOut.Trim(), Is.EqualTo("0"), "every write and read-back of its loop succeeded");
        }
        finally
        {
            P("rm -f k1");
        }
    }

    [Test]
    public void Two_containers_of_one_image_do_not_see_each_others_writes()
    {
        PCheck($"run -d --name a1 {RunFlags} localhost/isfs-test:2 sh -c 'echo from-a > /srv/mine; sleep 30'");
        PCheck($"run -d --name b1 {RunFlags} localhost/isfs-test:2 sh -c 'echo from-b > /srv/mine; sleep 30'");
        try
        {
            Assert.That(ControlFiles.Eventually(() => P("exec a1 cat /srv/mine").StdOut.Contains("from-a", StringComparison.Ordinal), TimeSpan.FromSeconds(20)), Is.True);
            Assert.That(P("exec a1 cat /srv/mine").StdOut.Trim(), Is.EqualTo("from-a"));
            Assert.That(P("exec b1 cat /srv/mine").StdOut.Trim(), Is.EqualTo("from-b"));
            Assert.That(P("exec a1 cat /srv/keep").StdOut.Trim(), Is.EqualTo("keep"), "positive control: both read the shared image layer");
            string list = Shell.Check($"'{DaemonProcess.Binary}' ctl list");
            Assert.That(list, Does.Contain(InstanceOf("a1")).And.Contain(InstanceOf("b1")), list);
        }
        finally
        {
            P("rm -f a1 b1");
        }
    }

    [Test]
    public void A_forbidden_path_of_the_profile_is_EACCES_in_the_container_and_an_incident_in_its_control_directory()
    {
        PCheck($"run -d --name sec1 {RunFlags} localhost/isfs-test:1 sh -c 'cat /etc/secret 2>&1; echo status=$?; cat /etc/hostname > /dev/null && echo hostname-ok; sleep 30'");
        try
        {
            string id = InstanceOf("sec1");
            string control = $"/run/inspatialfs/{id}";
            JsonObject incident = ControlFiles.WaitForIncident(control, i => ControlFiles.Str(i, "source") == "forbidden:/etc/secret", "the container's read of /etc/secret", TimeSpan.FromSeconds(30));
            Assert.That(ControlFiles.Str(incident, "container"), Is.EqualTo(id));
            // Preparing the root is the engine's own work: podman's /etc/mtab -> /proc/mounts link (made here, as the
            // first image has none; the second inherits layer2's) and runc's mount points (/etc/resolv.conf,
            // /run/.containerenv) are no incident. Only the read the profile forbids is.
            Assert.That(ControlFiles.Incidents(control).Select(i => ControlFiles.Str(i, "source") + ": " + ControlFiles.Str(i, "output")),
                Has.All.StartsWith("forbidden:/etc/secret"), "a container start raises no incident of its own");
            string logs = PCheck("logs sec1");
            Assert.That(logs, Does.Contain("Permission denied").And.Contain("status=1").And.Contain("hostname-ok"), logs);
            Assert.That(logs, Does.Not.Contain("classified"));
        }
        finally
        {
            P("rm -f sec1");
        }
    }

    [Test]
    public void The_example_enhanced_profile_runs_a_container_with_the_image_read_only_and_secrets_hidden()
    {
        string profile = Path.Combine(DaemonProcess.RepoRoot, "scripts", "examples", "profiles", "overlay.yaml");
        ShellResult r = Shell.Run($"INSPATIALFS_OVERLAY_CONFIG='{profile}' {Podman} run --rm {RunFlags} localhost/isfs-test:2 sh -c '" +
            "echo scratch > /tmp/x && cat /tmp/x; echo changed > /srv/keep; echo w=$?; cat /etc/shadow; echo s=$?; cat /srv/keep'",
            TimeSpan.FromMinutes(2));
        Assert.That(r.ExitCode, Is.Zero, "the engine could prepare the root under the profile: " + r);
        Assert.That(r.StdOut, Does.Contain("scratch\n"), "positive control: allowed paths are writable: " + r);
        Assert.That(r.StdOut, Does.Contain("w=1").And.Contain("s=1").And.EndWith("keep\n"), r.ToString());
        Assert.That(r.StdErr, Does.Contain("Read-only file system").And.Contain("Permission denied"), r.ToString());
    }
}
