using System.Diagnostics;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Storage;

/// <summary>
/// Issue 2: the daemon unmounts on SIGINT/SIGTERM and ends when `umount` or `fusermount3 -u` is run from outside;
/// either way it exits 0 with both its mounts (container and control) gone.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class OutsideUnmountTests
{
    [TestCase("umount '{0}'", false, TestName = "Umount_from_another_process_ends_a_memory_mount_with_exit_0")]
    [TestCase("fusermount3 -u '{0}'", false, TestName = "Fusermount3_u_from_another_process_ends_a_memory_mount_with_exit_0")]
    [TestCase("umount '{0}'", true, TestName = "Umount_from_another_process_ends_a_host_mount_with_exit_0")]
    [TestCase("kill -INT {1}", false, TestName = "SIGINT_unmounts_and_exits_0")]
    [TestCase("kill -TERM {1}", true, TestName = "SIGTERM_unmounts_a_host_mount_and_exits_0")]
    public void The_daemon_exits_0_once_its_mount_is_gone(string command, bool host)
    {
        if (command.StartsWith("fusermount3", StringComparison.Ordinal) && !Shell.Has("fusermount3"))
        {
            Assert.Ignore("fusermount3 (fuse3) is not installed");
        }

        using ControlledMount m = host
            ? ControlledMount.Start("/var/tmp", withSource: true)
            : ControlledMount.Start("/var/tmp", withSource: false, "--memory");
        File.WriteAllText(Path.Combine(m.MountPoint, "file"), "x");
        // The unmount or signal comes from another process, as an operator's would.
        Shell.Check(string.Format(System.Globalization.CultureInfo.InvariantCulture, command, m.MountPoint, m.Daemon.Pid));

        var clock = Stopwatch.StartNew();
        while (!m.Daemon.HasExited && clock.Elapsed < TimeSpan.FromSeconds(20))
        {
            Thread.Sleep(20);
        }

        Assert.That(m.Daemon.HasExited, Is.True, $"the daemon is still running 20 s after `{command}`:\n{m.Daemon.Output}");
        Assert.That(m.Stop(), Is.Zero, "exit code:\n" + m.Daemon.Output);
        Assert.That(Mounts.IsFuse(m.MountPoint), Is.False, "the container mount is gone");
        Assert.That(Mounts.IsFuse(m.Control), Is.False, "the control mount is gone too");
    }
}
