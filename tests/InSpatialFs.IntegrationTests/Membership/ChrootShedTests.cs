using System.Globalization;
using System.Text.Json.Nodes;
using InSpatialFs.TestKit.Processes;
using static InSpatialFs.IntegrationTests.Security.ControlFiles;

namespace InSpatialFs.IntegrationTests.Membership;

/// <summary>
/// Issue 11, "membership can be shed": a container process with CAP_SYS_CHROOT does `chroot /dev/shm` while its cwd
/// stays on the mount and reads a forbidden file relative to it (native/floodops.c shed-open). It used to be taken for a host process: its
/// violation blocked only itself and the container was never suspended. Now it stays a member, by the pid namespace
/// the fallback learned from the container's first member, or by the init the engine reported (container-init).
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class ChrootShedTests : MembershipFixture
{
    // Run from /dev (a tmpfs, not the mount), so the process's first request to the mount comes after its chroot.
    internal const string Shed = """
        cp /bin/floodops /dev/shed && cd /etc && /dev/shed shed-open /dev/shm secret
        """;

    [TearDown]
    public void Resume() => Rig.Ctl("resume");

    [Test]
    public void A_member_that_chroots_off_the_mount_stays_a_member_and_its_violation_suspends_the_container()
    {
        MembershipRig.Background container = Rig.RunInBackground($"""
            {Shed}
            {MembershipRig.WaitAt(1)}
            echo done
            """, MembershipRig.WithChroot);

        Assert.That(container.Reaches("paused", TimeSpan.FromSeconds(30)), Is.True, "the chrooted read suspends the container");
        JsonObject incident = Rig.Incident(i => Str(i, "source") == "forbidden:/etc/secret", "the chrooted read");
        Assert.That(incident.ContainsKey("container"), Is.True, "the chrooted process is still the container");
        Assert.That(Str(incident, "response"), Is.EqualTo("deny, suspend"));
        Dictionary<string, string> status = Rig.Status();
        Assert.That(status["state"], Is.EqualTo("suspended"));
        Assert.That(status["membership"], Does.Contain("pid namespace").And.Contain("(learned)"));

        Assert.That(Rig.Ctl("resume").ExitCode, Is.Zero);
        Rig.Open(1);
        ShellResult run = container.Finish(TimeSpan.FromSeconds(60));
        Assert.That(run.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(new[] { "chroot=OK open=EACCES", "done" }), run.ToString());
    }

}

/// <summary>The same shed attempt, with the container's init reported by the engine (a fresh instance: the proof then holds for its life).</summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class ChrootShedWithReportedInitTests : MembershipFixture
{
    [Test]
    public void With_the_init_reported_by_the_engine_a_chrooted_process_is_a_member_by_the_inits_pid_namespace()
    {
        MembershipRig.Background container = Rig.RunInBackground($"""
            {MembershipRig.WaitAt(2)}
            {ChrootShedTests.Shed}
            {MembershipRig.WaitAt(3)}
            echo done
            """, MembershipRig.WithChroot);
        Assert.That(container.Reaches("running", TimeSpan.FromSeconds(30)), Is.True);
        int init = container.Bundle.Pid() ?? throw new AssertionException("no init pid");

        ShellResult recorded = Rig.Ctl($"container-init {init.ToString(CultureInfo.InvariantCulture)}");
        Assert.That(recorded.ExitCode, Is.Zero, recorded.ToString());
        Assert.That(Rig.Status()["membership"], Does.Contain($"init {init}").And.Contain("and its descendants"));
        ShellResult refused = Rig.Ctl("container-init 1");
        Assert.That(refused.ExitCode, Is.Not.Zero, "a bad init is refused: " + refused);

        Rig.Open(2);
        Assert.That(container.Reaches("paused", TimeSpan.FromSeconds(30)), Is.True);
        JsonObject incident = Rig.Incident(i => Str(i, "source") == "forbidden:/etc/secret" && Str(i, "output").Contains("secret", StringComparison.Ordinal)
            && Str(i, "response") == "deny, suspend" && i.ContainsKey("container"), "the chrooted read after container-init");
        Assert.That(Str(incident, "process"), Is.EqualTo("shed"));
        Assert.That(Rig.Ctl("resume").ExitCode, Is.Zero);
        Rig.Open(3);
        ShellResult run = container.Finish(TimeSpan.FromSeconds(60));
        Assert.That(run.StdOut, Does.Contain("chroot=OK open=EACCES").And.Contain("done"), run.ToString());
    }
}
