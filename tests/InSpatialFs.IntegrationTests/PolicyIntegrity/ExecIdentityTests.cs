using InSpatialFs.IntegrationTests.Security;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.PolicyIntegrity;

/// <summary>
/// A process's identity after an exec from the mount. The caller cache is keyed by pid and the process context by
/// (pid, start time, comm): a program that execs another program of the same name (a copied shell named "sh" run from a
/// writable directory) keeps both keys, and its events must still name the new image, or a rule on proc.exepath
/// ("a shell run from /data") is evaded by naming the binary after the shell that runs it.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class ExecIdentityTests
{
    [Test]
    public void A_same_named_program_exec_d_from_the_mount_is_reported_as_the_new_image()
    {
        using SecuredMount mount = SecuredMount.Start("standard");
        ShellResult setup = mount.Sh("cp \"$(readlink -f /bin/sh)\" data/sh && chmod 0755 data/sh && echo hello > data/marker");
        Assert.That(setup.ExitCode, Is.Zero, setup.ToString());

        // dash runs a single command by exec: the pid that exec's data/sh is the one that later opens the marker itself
        // (a redirection of the builtin `read`), named "sh" before and after.
        ShellResult run = mount.Sh("exec /bin/sh -c \"exec $M/data/sh -c 'read line < $M/data/marker; echo \\$line; :'\"");
        Assert.That((run.ExitCode, run.StdOut.Trim()), Is.EqualTo((0, "hello")), run.ToString());

        var marker = mount.WaitForEvent(e => SecuredMount.Str(e, "evt.op") == "open" && SecuredMount.Str(e, "fs.path") == "/data/marker", "open of /data/marker");
        var binary = mount.WaitForEvent(e => SecuredMount.Str(e, "evt.op") == "open" && SecuredMount.Str(e, "fs.path") == "/data/sh", "exec open of /data/sh");
        Assert.Multiple(() =>
        {
            Assert.That(SecuredMount.Str(binary, "proc.exepath"), Is.Not.EqualTo(Path.Combine(mount.MountPoint, "data", "sh")),
                "positive control: the exec open comes from the shell before the exec");
            Assert.That(SecuredMount.Str(binary, "proc.pid"), Is.EqualTo(SecuredMount.Str(marker, "proc.pid")), "one process throughout");
            Assert.That(SecuredMount.Str(marker, "proc.name"), Is.EqualTo("sh"), "the same name before and after");
            Assert.That(SecuredMount.Str(marker, "proc.exepath"), Is.EqualTo(Path.Combine(mount.MountPoint, "data", "sh")), "the new image");
            Assert.That(SecuredMount.Str(marker, "proc.cmdline"), Does.Contain("read line"), "the new arguments");
        });
    }

    [Test]
    public void An_exec_the_mount_never_sees_is_noticed_within_the_recheck_interval()
    {
        // The shell reads one file, then execs python3 from the host (no exec open on the mount, as a memfd's fexecve or
        // a binary on a bind mount would be), which waits past the interval and reads another.
        using SecuredMount mount = SecuredMount.Start("standard");
        Assert.That(mount.Sh("echo a > data/first && echo b > data/second").ExitCode, Is.Zero);
        double wait = 2 * CallerRegistryInterval.TotalSeconds;
        ShellResult run = mount.Sh($"exec /bin/sh -c \"read line < $M/data/first; exec python3 -c 'import time; time.sleep({wait.ToString(System.Globalization.CultureInfo.InvariantCulture)}); open(\\\"$M/data/second\\\").read()'\"");
        Assert.That(run.ExitCode, Is.Zero, run.ToString());

        var first = mount.WaitForEvent(e => SecuredMount.Str(e, "evt.op") == "open" && SecuredMount.Str(e, "fs.path") == "/data/first", "open of /data/first");
        var second = mount.WaitForEvent(e => SecuredMount.Str(e, "evt.op") == "open" && SecuredMount.Str(e, "fs.path") == "/data/second", "open of /data/second");
        Assert.Multiple(() =>
        {
            Assert.That(SecuredMount.Str(second, "proc.pid"), Is.EqualTo(SecuredMount.Str(first, "proc.pid")), "one process throughout");
            Assert.That(SecuredMount.Str(first, "proc.name"), Is.EqualTo("sh"), "positive control: the shell read the first");
            Assert.That(SecuredMount.Str(second, "proc.name"), Is.EqualTo("python3"), "the program that read the second");
            Assert.That(SecuredMount.Str(second, "proc.exepath"), Does.Contain("python3"));
        });
    }

    private static TimeSpan CallerRegistryInterval => InSpatialFs.Security.Identity.CallerRegistry.DefaultImageRecheck;
}
