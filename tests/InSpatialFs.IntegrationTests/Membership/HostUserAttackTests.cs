using System.Text.Json.Nodes;
using InSpatialFs.TestKit.Processes;
using static InSpatialFs.IntegrationTests.Security.ControlFiles;

namespace InSpatialFs.IntegrationTests.Membership;

/// <summary>
/// Issue 11, "membership can be faked": host users attack a running container through the shared mount
/// (allow_other). As nobody, `unshare -Ur chroot MOUNTPOINT cat /etc/secret` used to pass as a container member and
/// suspend the real container; `dd` into its /var/tmp used to fill its disk and inode quota. Each test has the real
/// container beside it as the positive control: it keeps working, and its own violation still suspends it.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class HostUserAttackTests : MembershipFixture
{
    protected override string Config => MembershipRig.SuspendOnSecret + "\nresources: { disk: 8MiB, inodes: 200 }";

    [Test]
    public void Nobody_in_a_user_namespace_chrooted_onto_the_mount_is_not_the_container_and_cannot_suspend_it()
    {
        MembershipRig.Background container = Rig.RunInBackground($"""
            echo start
            {MembershipRig.WaitAt(1)}
            cat /etc/hosts > /dev/null && echo served-after-the-host-attack
            cat /etc/secret; echo "cat=$?"
            {MembershipRig.WaitAt(2)}
            echo done
            """);
        Rig.WaitForMember();

        ShellResult attack = MembershipRig.AsNobody($"unshare -Ur chroot '{Rig.MountPoint}' /bin/cat /etc/secret");
        Assert.That(attack.ExitCode, Is.Not.Zero, attack.ToString());
        Assert.That(attack.StdOut, Does.Not.Contain("TOP-SECRET"));
        // The open is refused (EACCES), and the incident's block-process then fails every later op of that process with
        // EPERM, page-ins of its own binary included: a cat whose error path was not yet in the page cache dies of a
        // signal (SIGBUS) before it can say why, as it did once in CI. Either way it read nothing (above and below).
        bool refusedAndSaid = attack.StdErr.Contains("Permission denied", StringComparison.Ordinal);
        bool blockedBeforeItSaid = attack.StdErr.Length == 0 && attack.ExitCode > 128;
        Assert.That(refusedAndSaid || blockedBeforeItSaid, Is.True, "the policy still refuses the host user: " + attack);
        JsonObject hostIncident = Rig.Incident(i => Str(i, "source") == "forbidden:/etc/secret" && Str(i, "process") == "cat" && !i.ContainsKey("container"), "the host user's read");
        Assert.That(Str(hostIncident, "response"), Is.EqualTo("deny, block-process (host process: suspend refused)"));
        Assert.That(Str(hostIncident, "uid"), Is.EqualTo("65534"));
        Dictionary<string, string> status = Rig.Status();
        Assert.That(status["state"], Is.EqualTo("running"), "the real container was not suspended by a host user");
        Assert.That(container.State(), Is.EqualTo("running"));

        // Positive control: the real container is still served, and its own violation suspends it.
        Rig.Open(1);
        Assert.That(container.Reaches("paused", TimeSpan.FromSeconds(30)), Is.True, "the container's own forbidden read suspends it");
        Assert.That(Rig.Status()["state"], Is.EqualTo("suspended"));
        JsonObject own = Rig.Incident(i => Str(i, "source") == "forbidden:/etc/secret" && i.ContainsKey("container"), "the container's read");
        Assert.That(Str(own, "response"), Is.EqualTo("deny, suspend"));

        Assert.That(Rig.Ctl("resume").ExitCode, Is.Zero);
        Assert.That(container.Reaches("running", TimeSpan.FromSeconds(10)), Is.True, "resume resumes");
        Rig.Open(2);
        ShellResult run = container.Finish(TimeSpan.FromSeconds(60));
        Assert.That(run.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries),
            Is.EqualTo(new[] { "start", "served-after-the-host-attack", "cat=1", "done" }), run.ToString());
        TestContext.Out.WriteLine($"nobody: `{attack.StdErr.Trim()}`; incident response: {Str(hostIncident, "response")}; container state after: running");
    }

    [Test]
    public void Nobody_cannot_charge_the_containers_quota_through_allow_other_but_the_container_can()
    {
        string fill = Path.Combine(Rig.MountPoint, "var", "tmp", "fill-" + Guid.NewGuid().ToString("N")[..6]);
        long denialsBefore = MembershipRig.Number(Rig.Status(), "host_denials");

        ShellResult dd = MembershipRig.AsNobody($"dd if=/dev/zero of='{fill}' bs=64k count=64");
        Assert.That(dd.ExitCode, Is.Not.Zero, dd.ToString());
        Assert.That(dd.StdErr, Does.Contain("Permission denied"));
        Assert.That(File.Exists(fill), Is.False, "nothing was created, nothing charged");
        ShellResult mkdir = MembershipRig.AsNobody($"mkdir '{fill}.d'");
        Assert.That(mkdir.ExitCode, Is.Not.Zero, "inodes are the container's too");
        ShellResult read = MembershipRig.AsNobody($"cat '{Rig.MountPoint}/etc/hosts'");
        Assert.That(read.ExitCode, Is.Zero, "positive control: reading charges nothing and stays allowed: " + read);

        Dictionary<string, string> status = Rig.Status();
        Assert.That(MembershipRig.Number(status, "host_denials") - denialsBefore, Is.GreaterThanOrEqualTo(2));
        Assert.That(status["host_users"], Does.StartWith("no-quota-writes (growth writes refused"));
        Assert.That(status["host_root"], Is.EqualTo("full"));
        JsonObject incident = Rig.Incident(i => Str(i, "source") == "host:no-quota-writes" && Str(i, "uid") == "65534", "nobody's write");
        Assert.That(incident.ContainsKey("container"), Is.False);

        // Positive controls: the operator (root on the host) and the container itself write and are charged.
        string operatorFile = fill + ".root";
        Assert.That(Shell.Run($"dd if=/dev/zero of='{operatorFile}' bs=64k count=4 && rm '{operatorFile}'").ExitCode, Is.Zero);
        MembershipRig.Background container = Rig.RunInBackground("""
            dd if=/dev/zero of=/var/tmp/mine bs=64k count=64 2>/dev/null && echo wrote-1MiB
            dd if=/dev/zero of=/var/tmp/too-much bs=1M count=16 2>&1 | grep -o 'Disk quota exceeded' | head -1
            rm -f /var/tmp/mine /var/tmp/too-much
            """);
        ShellResult run = container.Finish(TimeSpan.FromSeconds(60));
        Assert.That(run.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(new[] { "wrote-1MiB", "Disk quota exceeded" }), run.ToString());
        TestContext.Out.WriteLine($"nobody dd: `{dd.StdErr.Split('\n')[0].Trim()}`; container: {string.Join(", ", run.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries))}");
    }
}
