using System.Globalization;
using InSpatialFs.IntegrationTests.Security;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Membership;

/// <summary>
/// `container: { init_pid }`: a process in the pid namespace of the configured init is a container member even when
/// its root is not the mount (here: the host's root), while the same access from the host's pid namespace is a host
/// process's.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class InitPidConfigTests
{
    [Test]
    public void A_process_in_the_configured_inits_pid_namespace_is_a_member_and_a_host_process_is_not()
    {
        DaemonProcess.RequireMountable();
        string pidFile = Path.Combine("/var/tmp", "isfs-init-" + Guid.NewGuid().ToString("N")[..8]);
        // A new pid namespace whose init (pid 1 inside) sleeps; its host pid is what an engine would report.
        Shell.Check($"setsid unshare --pid --fork sleep 1207 > /dev/null 2>&1 & sleep 0.5; " +
            $"pgrep -n -f '^sleep 1207$' > '{pidFile}'");
        int init = int.Parse(File.ReadAllText(pidFile).Trim(), CultureInfo.InvariantCulture);
        try
        {
            using SecuredMount mount = SecuredMount.Start("standard", $"container: {{ init_pid: {init} }}");
            File.WriteAllText(Path.Combine(mount.Source, "data", "inside.txt"), "x\n");
            ShellResult member = Shell.Run($"nsenter -t {init} -p cat '{mount.MountPoint}/data/inside.txt'");
            Assert.That(member.ExitCode, Is.Zero, member.ToString());
            ShellResult host = Shell.Run($"cat '{mount.MountPoint}/data/inside.txt'");
            Assert.That(host.ExitCode, Is.Zero, host.ToString());
            Shell.Run($"nsenter -t {init} -p cat '{mount.MountPoint}/etc/shadow'");
            Shell.Run($"cat '{mount.MountPoint}/etc/shadow'");
            var incidents = ControlFiles.Incidents(mount.ControlDirectory);
            Assert.That(ControlFiles.Eventually(() => ControlFiles.Incidents(mount.ControlDirectory).Count(i => SecuredMount.Str(i, "source") == "forbidden:/etc/shadow") >= 2, TimeSpan.FromSeconds(10)), Is.True);
            var denials = ControlFiles.Incidents(mount.ControlDirectory).Where(i => SecuredMount.Str(i, "source") == "forbidden:/etc/shadow").ToList();
            Assert.That(denials.Count(i => SecuredMount.Str(i, "container") == mount.Name), Is.EqualTo(1), "the read from the init's pid namespace is the container's");
            Assert.That(denials.Count(i => SecuredMount.Str(i, "container") is "" or "host"), Is.EqualTo(1), "positive control: the host's own read is not");
        }
        finally
        {
            Shell.Run($"kill {init}; rm -f '{pidFile}'");
        }
    }

    [Test]
    public void An_init_pid_that_cannot_be_used_stops_the_start_rather_than_weakening_membership()
    {
        DaemonProcess.RequireMountable();
        string work = Path.Combine("/var/tmp", "isfs-badinit-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Path.Combine(work, "mnt"));
        int gone = int.Parse(Shell.Check("sh -c 'echo $$'").Trim(), CultureInfo.InvariantCulture); // exited by now
        try
        {
            foreach (int pid in new[] { 1, gone })
            {
                File.WriteAllText(Path.Combine(work, "c.yaml"), $$"""
                    name: badinit
                    mountpoint: {{work}}/mnt
                    state_dir: {{work}}/state
                    control: {{work}}/ctl
                    mounts: [ { path: /, memory: { size: 8MiB } } ]
                    container: { init_pid: {{pid}} }
                    """);
                ShellResult r = Shell.Run($"'{DaemonProcess.Binary}' mount -b --config '{work}/c.yaml'", TimeSpan.FromMinutes(1));
                Assert.That(r.ExitCode, Is.Not.Zero, $"init_pid {pid}: {r}");
                Assert.That(r.StdOut + r.StdErr, Does.Contain("container.init_pid cannot be used"), $"init_pid {pid}: {r}");
                Assert.That(File.ReadAllText("/proc/mounts"), Does.Not.Contain($" {work}/mnt "), $"init_pid {pid}: nothing is served");
            }
        }
        finally
        {
            Shell.Run($"umount -l '{work}/mnt' 2>/dev/null; rm -rf '{work}'");
        }
    }
}
