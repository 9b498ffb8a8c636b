using InSpatialFs.TestKit.Posix;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Posix;

/// <summary>The POSIX suite against the mounted in-memory filesystem (the plain directory is the control).</summary>
[TestFixture]
[Category("Mount")]
public sealed class MemoryMountPosixTests : PosixSuite
{
    private DaemonProcess? _daemon;
    private string _mount = "";
    private string _other = "";

    protected override string Root => _mount;

    /// <summary>A second mount of the same instance: /other is an in-memory mount of its own.</summary>
    protected override string? CrossMountDirectory => _other;

    [OneTimeSetUp]
    public void MountMemory()
    {
        DaemonProcess.RequireMountable();
        _mount = Path.Combine(Path.GetTempPath(), "inspatialfs-posix-" + Guid.NewGuid().ToString("N")[..8]);
        // The suite checks POSIX semantics, so the standard level's privilege controls are relaxed explicitly
        // (their refusals are covered by the security tests).
        _daemon = DaemonProcess.Start(_mount, ["--memory", "--memory-size", "1GiB", "--memory-at", "/other:64MiB", "--no-control",
            "--relax", "setuid", "--relax", "devices", "--relax", "xattrs"]);
        _other = Path.Combine(_mount, "other");
    }

    [OneTimeTearDown]
    public void Unmount()
    {
        if (_daemon == null)
        {
            return;
        }

        int exit = _daemon.Stop();
        string output = _daemon.Output;
        _daemon.Dispose();
        Assert.That(exit, Is.Zero, "clean unmount exits 0:\n" + output);
    }
}
