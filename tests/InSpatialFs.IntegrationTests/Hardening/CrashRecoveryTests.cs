using System.Diagnostics;
using System.Text.Json.Nodes;
using InSpatialFs.IntegrationTests.Containers;
using InSpatialFs.TestKit.Containers;
using InSpatialFs.TestKit.Processes;
using static InSpatialFs.IntegrationTests.Security.ControlFiles;

namespace InSpatialFs.IntegrationTests.Hardening;

/// <summary>
/// Issue 10, "Cannot restart after a crash": kill -9 the daemon while a runc container runs on the mount, then start the
/// same config again with no manual step. It detaches its own dead mounts (mountpoint and control directory), mounts,
/// and lists the incidents it had before. A second instance against a live mount is still refused with the live pid.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class CrashRecoveryTests
{
    [OneTimeSetUp]
    public void RequireRunc()
    {
        DaemonProcess.RequireMountable();
        if (RuncBundle.WhyCannotRun() is string why)
        {
            Assert.Ignore(why);
        }
    }

    [Test]
    public void After_kill_9_under_a_running_container_the_same_config_starts_again_and_keeps_its_incidents()
    {
        using ContainerRootfs rootfs = ContainerRootfs.Start("paths: { forbidden: [/etc/shadow] }");
        string config = Path.Combine(rootfs.Work, "instance.yaml");
        // The loop runs from a copy of busybox in the container's /dev (runc's tmpfs, exec allowed): after the kill every
        // page fault on a file of the dead mount is SIGBUS, and pages of the mount's binaries can be evicted under load
        // (clean-clone CI runs lost the container that way, twice); the copy's pages need no server.
        using RuncBundle bundle = RuncBundle.Create(rootfs.MountPoint, ["/bin/sh", "-c",
            "cp /bin/busybox /dev/busybox && exec /dev/busybox sh -c '/dev/busybox cat /etc/shadow; while :; do /dev/busybox date > /tmp/alive; /dev/busybox sleep 0.2; done'"]);
        Assert.That(bundle.RunDetached().ExitCode, Is.Zero, bundle.Output);
        JsonObject incident = WaitForIncident(rootfs.ControlDirectory, i => Str(i, "source").Contains("forbidden", StringComparison.Ordinal), "the container's forbidden read", TimeSpan.FromSeconds(30));
        string journal = Path.Combine(rootfs.StateDirectory, "incidents.jsonl");
        Assert.That(Eventually(() => File.ReadAllText(journal).Contains(Str(incident, "id"), StringComparison.Ordinal), TimeSpan.FromSeconds(10)), Is.True, "the incident is on disk");
        List<JsonObject> before = Security.ControlFiles.Incidents(rootfs.ControlDirectory);

        Shell.Check($"kill -KILL {rootfs.Daemon.Pid}");
        Assert.That(Eventually(() => rootfs.Daemon.HasExited, TimeSpan.FromSeconds(10)), Is.True);
        Assert.That(bundle.State(), Is.EqualTo("running"), "the container outlives its filesystem server");
        Assert.That(Shell.Run($"stat '{rootfs.MountPoint}'").StdErr, Does.Contain("Transport endpoint is not connected"), "the crash left a dead mount");
        Assert.That(Mounts.IsFuse(rootfs.ControlDirectory), Is.True, "and a dead control mount");

        var clock = Stopwatch.StartNew();
        using DaemonProcess again = DaemonProcess.Start(rootfs.MountPoint, ["--config", config], appendMountPoint: false);
        WaitUntilServing(rootfs.ControlDirectory, again);
        TestContext.Out.WriteLine($"restart to serving: {clock.ElapsedMilliseconds} ms");
        Assert.Multiple(() =>
        {
            string name = "ct-" + Path.GetFileName(rootfs.Work)[^8..];
            Assert.That(again.Output, Does.Contain($"crash recovery: detached the dead mount of inspatialfs:{name} at {rootfs.MountPoint}"));
            Assert.That(again.Output, Does.Contain($"crash recovery: detached the dead mount of inspatialfs-control:{name} at {rootfs.ControlDirectory}"));
            Assert.That(File.Exists(Path.Combine(rootfs.MountPoint, "etc", "passwd")), Is.True, "the new mount serves the image");
            List<JsonObject> after = Security.ControlFiles.Incidents(rootfs.ControlDirectory);
            Assert.That(after.Take(before.Count).Select(i => (Str(i, "id"), Str(i, "source"), Str(i, "status"))),
                Is.EqualTo(before.Select(i => (Str(i, "id"), Str(i, "source"), Str(i, "status")))), "incidents as before");
        });

        // A live instance is never detached: a second start on the same mountpoint is refused with the serving pid.
        string otherState = Path.Combine(rootfs.Work, "state2");
        ShellResult second = Shell.Run($"timeout -s KILL 60 '{DaemonProcess.Binary}' mount --config '{config}' --state-dir '{otherState}' --control '{rootfs.Work}/ctl2'", TimeSpan.FromSeconds(90));
        Assert.That(second.ExitCode, Is.EqualTo(1), second.ToString());
        Assert.That(second.Both, Does.Contain($"{rootfs.MountPoint} is already mounted").And.Contain($"served by pid {again.Pid}"));
        Assert.That(File.Exists(Path.Combine(rootfs.MountPoint, "etc", "passwd")), Is.True, "the live mount still serves");
        Shell.Run($"runc kill {bundle.Id} KILL");
        bundle.Wait(TimeSpan.FromSeconds(10));
        Assert.That(again.Stop(), Is.Zero, again.Output);
    }
}
