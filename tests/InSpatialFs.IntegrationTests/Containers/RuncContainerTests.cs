using InSpatialFs.TestKit.Containers;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Containers;

/// <summary>A real container (runc + busybox) whose root filesystem is InSpatialFs (issue 3).</summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class RuncContainerTests
{
    [OneTimeSetUp]
    public void RequireRunc()
    {
        string? why = RuncBundle.WhyCannotRun();
        if (why != null)
        {
            Assert.Ignore(why);
        }
    }

    private const string Workload = """
        set -e
        echo start
        mkdir -p /work/a
        echo hello > /work/a/one.txt
        cat /work/a/one.txt
        mv /work/a/one.txt /work/a/two.txt
        ln /work/a/two.txt /work/a/hard.txt
        ln -s two.txt /work/a/soft.txt
        [ "$(cat /work/a/soft.txt)" = hello ]
        [ "$(stat -c %h /work/a/two.txt)" = 2 ]
        echo tmpdata > /tmp/t.txt && cat /tmp/t.txt
        ls /usr/bin | head -1 > /dev/null
        if touch /usr/bin/should-fail 2>/dev/null; then echo "usr writable"; exit 3; fi
        rm /work/a/hard.txt /work/a/soft.txt /work/a/two.txt
        rmdir /work/a
        [ ! -e /work/a ]
        echo done
        """;

    [Test]
    public void Busybox_container_creates_reads_renames_links_and_removes_files()
    {
        using ContainerRootfs rootfs = ContainerRootfs.Start();
        using RuncBundle bundle = RuncBundle.Create(rootfs.MountPoint, ["/bin/sh", "-c", Workload]);
        ShellResult run = bundle.Run();
        Assert.That(run.ExitCode, Is.Zero, run + "\n--- daemon ---\n" + rootfs.Daemon.Output);
        Assert.That(run.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(new[] { "start", "hello", "tmpdata", "done" }));

        // The root mount wrote through to the host image; /tmp stayed in memory.
        Assert.That(Directory.Exists(Path.Combine(rootfs.Image, "work")), Is.True, "/work was created in the host image");
        Assert.That(File.Exists(Path.Combine(rootfs.Image, "tmp", "t.txt")), Is.False, "/tmp is an in-memory mount");
    }

    [Test]
    public void Container_exit_code_is_propagated()
    {
        using ContainerRootfs rootfs = ContainerRootfs.Start();
        using RuncBundle bundle = RuncBundle.Create(rootfs.MountPoint, ["/bin/sh", "-c", "exit 7"]);
        Assert.That(bundle.Run().ExitCode, Is.EqualTo(7));
    }
}
