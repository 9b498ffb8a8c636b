using System.Diagnostics;
using System.Text.Json.Nodes;
using InSpatialFs.TestKit.Processes;
using static InSpatialFs.IntegrationTests.Security.ControlFiles;

namespace InSpatialFs.IntegrationTests.Membership;

/// <summary>
/// Issue 11, "a suspend that falls back to SIGSTOP": a container without a cgroup of its own (a chroot onto the mount
/// by root, sharing the test runner's and daemon's cgroup, which may never be frozen) is suspended by SIGSTOP of
/// every member, through pidfds the suspension owns, and `ctl resume` continues every one of them.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class SigstopSuspendTests : MembershipFixture
{
    private static char State(int pid)
    {
        string stat = File.ReadAllText($"/proc/{pid}/stat");
        return stat[stat.LastIndexOf(')') + 2];
    }

    [Test]
    public void Members_are_stopped_when_no_cgroup_may_be_frozen_and_resume_continues_them_all()
    {
        // The container: a chrooted sh that reads the forbidden file at gate 1, and a chrooted worker that only sleeps
        // (no /dev/null in the image, so the worker is a second chroot rather than a background job of the sh).
        string script = $"""
            {MembershipRig.WaitAt(1)}
            cat /etc/secret; echo "cat=$?"
            {MembershipRig.WaitAt(2)}
            echo done
            """;
        using Process chrooted = Process.Start(new ProcessStartInfo("chroot", [Rig.MountPoint, "/bin/sh", "-c", script])
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        using Process worker = Process.Start(new ProcessStartInfo("chroot", [Rig.MountPoint, "/bin/sleep", "300"]) { UseShellExecute = false })!;
        int[] before = [chrooted.Id, worker.Id];
        try
        {
            Rig.WaitForMember();
            Assert.That(Eventually(() => File.ReadAllText($"/proc/{worker.Id}/comm").Trim() == "sleep", TimeSpan.FromSeconds(10)), Is.True, "the worker runs in the chroot");
            Rig.Open(1);
            JsonObject incident = Rig.Incident(i => Str(i, "source") == "forbidden:/etc/secret" && i.ContainsKey("container"), "the chrooted read");
            Assert.That(Str(incident, "response"), Is.EqualTo("deny, suspend"));
            Assert.That(Eventually(() => before.All(p => State(p) == 'T'), TimeSpan.FromSeconds(20)), Is.True,
                "every member stopped, the worker that never made a request too: " + string.Join(",", before.Select(p => $"{p}:{State(p)}")));
            Assert.That(State(Environment.ProcessId), Is.Not.EqualTo('T'), "never the host (the test runner, the daemon's parent)");
            Assert.That(State(Rig.Rootfs.Daemon.Pid), Is.Not.EqualTo('T'));
            Assert.That(Rig.Status()["state"], Is.EqualTo("suspended"));
            JsonObject why = Rig.Incident(i => Str(i, "source") == "response:failed", "why no cgroup was frozen");
            Assert.That(Str(why, "output"), Does.Contain("refusing to freeze").And.Contain("fell back to sigstop"));

            ShellResult resume = Rig.Ctl("resume");
            Assert.That(resume.ExitCode, Is.Zero, resume.ToString());
            Assert.That(Eventually(() => before.All(p => State(p) != 'T'), TimeSpan.FromSeconds(10)), Is.True, "resume continues every stopped process");
            Rig.Open(2);
            Assert.That(chrooted.WaitForExit(30_000), Is.True, "the chrooted container ran to its end");
            Assert.That(chrooted.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(new[] { "cat=1", "done" }));
            Assert.That(worker.HasExited, Is.False, "the worker lives on, continued");
        }
        finally
        {
            Rig.Open(1);
            Rig.Open(2);
            Rig.Ctl("resume");
            if (!chrooted.HasExited) chrooted.Kill(entireProcessTree: true);
            if (!worker.HasExited) worker.Kill();
        }
    }
}
