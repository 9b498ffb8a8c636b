using InSpatialFs.IntegrationTests.Containers;
using InSpatialFs.TestKit.Containers;
using InSpatialFs.TestKit.Processes;
using static InSpatialFs.IntegrationTests.Security.ControlFiles;

namespace InSpatialFs.IntegrationTests.PolicyIntegrity;

/// <summary>Issue 10, "Every accepted setting has its effect": resources.open_files gives container callers EMFILE past the cap.</summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class OpenFilesCapTests
{
    [Test]
    public void Opens_past_resources_open_files_get_EMFILE_in_the_container_and_the_host_is_not_held_to_it()
    {
        if (RuncBundle.WhyCannotRun() is string why) Assert.Ignore(why);
        using ContainerRootfs rootfs = ContainerRootfs.Start("resources: { open_files: 40 }");
        WaitUntilServing(rootfs.ControlDirectory, rootfs.Daemon);
        using RuncBundle bundle = RuncBundle.Create(rootfs.MountPoint, ["/bin/sh", "-c", """
            i=0; while [ $i -lt 60 ]; do echo x > /tmp/f$i; i=$((i+1)); done
            tail -f /tmp/f* > /dev/null 2> /tmp/tail.err &
            sleep 2; kill $!; wait
            echo "refused=$(grep -c 'Too many open files' /tmp/tail.err)"
            cat /tmp/f1; echo "after=$?"
            """]);
        ShellResult run = bundle.Run(TimeSpan.FromSeconds(60));
        string[] lines = run.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        int refused = int.Parse(lines.Single(l => l.StartsWith("refused=", StringComparison.Ordinal))[8..], System.Globalization.CultureInfo.InvariantCulture);
        Assert.That(refused, Is.InRange(20, 59), "tail held at most 40 open files (less the shell's own): " + run);
        Assert.That(lines, Is.SupersetOf(new[] { "x", "after=0" }), "positive control: opens work again once they are closed: " + run);

        // The operator on the host is not a container member: not held to the container's cap.
        string many = string.Join(' ', Enumerable.Range(0, 60).Select(i => $"'{rootfs.MountPoint}/tmp/f{i}'"));
        ShellResult host = Shell.Run($"timeout 2 tail -f {many} > /dev/null; echo status=$?");
        Assert.That(host.StdOut.Trim(), Is.EqualTo("status=124"), "tail ran until the timeout: " + host);
        Assert.That(host.StdErr, Does.Not.Contain("Too many open files"), host.ToString());
    }
}
