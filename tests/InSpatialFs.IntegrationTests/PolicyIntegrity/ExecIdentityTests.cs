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
}
