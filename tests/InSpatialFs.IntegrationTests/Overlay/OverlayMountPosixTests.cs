using InSpatialFs.TestKit.Posix;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Overlay;

/// <summary>
/// The POSIX suite on an overlay mount (issue 13): the suite works in a directory that exists in the lower layer, so
/// every change it makes goes through copy-up of that directory and lands in the upper layer, next to lower entries.
/// </summary>
[TestFixture]
[Category("Mount")]
public sealed class OverlayMountPosixTests : PosixSuite
{
    private DaemonProcess? _daemon;
    private string _work = "";

    protected override string Root => Path.Combine(_work, "mnt", "suite");

    protected override string? CrossMountDirectory => Path.Combine(_work, "mnt", "other");

    /// <summary>The suite's trusted-xattr case uses trusted.overlay.opaque, which an overlay reserves (the kernel's refuses it with EPERM too).</summary>
    protected override string? OptOutReason(PosixCategory category) =>
        category == PosixCategory.TrustedXattrs ? "overlayfs reserves trusted.overlay.* for its own format" : null;

    [OneTimeSetUp]
    public void MountOverlay()
    {
        DaemonProcess.RequireMountable();
        _work = Directory.CreateTempSubdirectory("inspatialfs-ovlposix-").FullName;
        foreach (string d in new[] { "lower/suite", "lower/other", "upper", "work" }) Directory.CreateDirectory(Path.Combine(_work, d));
        File.WriteAllText(Path.Combine(_work, "lower", "suite", "from-the-image"), "lower\n");
        // uid 1000 must reach the suite's directory through every layer and the mount point.
        Shell.Check($"chmod 0755 '{_work}' '{_work}/lower' '{_work}/upper' && chmod 0777 '{_work}/lower/suite'");
        string config = Path.Combine(_work, "overlay.yaml");
        File.WriteAllText(config, $$"""
            name: ovl-{{Path.GetFileName(_work)[^8..]}}
            mountpoint: {{_work}}/mnt
            control: {{_work}}/control
            state_dir: {{_work}}/state
            mounts:
              - { path: /, overlay: { lower: [{{_work}}/lower], upper: {{_work}}/upper, work: {{_work}}/work } }
              - { path: /other, memory: { size: 64MiB } }
            controls: { refuse_setuid: false, refuse_devices: false, refuse_security_xattrs: false }
            """);
        _daemon = DaemonProcess.Start(Path.Combine(_work, "mnt"), ["--config", config], appendMountPoint: false);
    }

    [OneTimeTearDown]
    public void Unmount()
    {
        int exit = _daemon?.Stop() ?? 0;
        string output = _daemon?.Output ?? "";
        _daemon?.Dispose();
        Shell.Run($"umount -l '{_work}/control' 2>/dev/null; rm -rf '{_work}'");
        Assert.That(exit, Is.Zero, "clean unmount exits 0:\n" + output);
    }

    [Test]
    public void The_lower_entry_stays_visible_beside_the_suites_files()
    {
        Assert.That(File.ReadAllText(Path.Combine(Root, "from-the-image")), Is.EqualTo("lower\n"));
    }
}
