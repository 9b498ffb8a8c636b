using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Memory;

/// <summary>One daemon serving an in-memory root for a whole fixture; every test works in its own directory.</summary>
public abstract class MemoryMountFixture
{
    protected DaemonProcess Daemon { get; private set; } = null!;

    protected string MountPoint { get; private set; } = "";

    protected virtual string[] MountArguments => ["--memory", "--memory-size", "2GiB"];

    [OneTimeSetUp]
    public void MountMemoryRoot()
    {
        DaemonProcess.RequireMountable();
        MountPoint = Path.Combine(Path.GetTempPath(), "inspatialfs-it-" + Guid.NewGuid().ToString("N")[..8]);
        Daemon = DaemonProcess.Start(MountPoint, MountArguments);
    }

    [OneTimeTearDown]
    public void Unmount()
    {
        if (Daemon == null)
        {
            return;
        }

        int exit = Daemon.Stop();
        string output = Daemon.Output;
        Daemon.Dispose();
        Directory.Delete(MountPoint, recursive: false);
        Assert.That(exit, Is.Zero, "the daemon must exit 0 after a clean unmount:\n" + output);
    }

    /// <summary>A fresh directory on the mount for one test.</summary>
    protected string NewDirectory(string name)
    {
        string dir = Path.Combine(MountPoint, name + "-" + Guid.NewGuid().ToString("N")[..6]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    protected void AssertDaemonAlive() =>
        Assert.That(Daemon.HasExited, Is.False, "the daemon died:\n" + Daemon.Output);
}
