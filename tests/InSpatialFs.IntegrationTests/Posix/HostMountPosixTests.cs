using InSpatialFs.TestKit.Posix;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Posix;

/// <summary>
/// The POSIX suite against a mounted host directory (issue 3: "the same POSIX suite must pass"). The source is a
/// fresh directory next to the plain-directory control, so whatever the control shows is what the host file
/// system underneath can do; /other is an in-memory mount of the same instance for the EXDEV test.
/// </summary>
public abstract class HostBackedPosixSuite : PosixSuite
{
    private DaemonProcess? _daemon;
    private string _work = "";
    private string _mount = "";
    private string _other = "";

    protected override string Root => _mount;

    protected override string? CrossMountDirectory => _other;

    /// <summary>Extra mount options that select the backend flavour (e.g. --direct).</summary>
    protected abstract string[] BackendArguments { get; }

    /// <summary>Runs before the daemon starts (a kernel switch the flavour needs).</summary>
    protected virtual void BeforeMount()
    {
    }

    /// <summary>Runs after the daemon has stopped.</summary>
    protected virtual void AfterUnmount()
    {
    }

    /// <summary>The host directory behind the mount.</summary>
    protected string Source { get; private set; } = "";

    [OneTimeSetUp]
    public void MountHostDirectory()
    {
        DaemonProcess.RequireMountable();
        BeforeMount();
        _work = Directory.CreateTempSubdirectory("inspatialfs-hostposix-").FullName;
        Source = Path.Combine(_work, "source");
        _mount = Path.Combine(_work, "mnt");
        Directory.CreateDirectory(Source);
        // uid 1000 must reach both the source root (the mount's root inode) and the mount point.
        Shell.Check($"chmod 0755 '{_work}' '{Source}'");
        // The suite checks POSIX semantics, so the standard level's privilege controls are relaxed explicitly
        // (their refusals are covered by the security tests).
        _daemon = DaemonProcess.Start(_mount, ["--source", Source, .. BackendArguments, "--memory-at", "/other:64MiB", "--no-control",
            "--relax", "setuid", "--relax", "devices", "--relax", "xattrs"]);
        _other = Path.Combine(_mount, "other");
    }

    [OneTimeTearDown]
    public void Unmount()
    {
        int exit = 0;
        string output = "";
        if (_daemon != null)
        {
            exit = _daemon.Stop();
            output = _daemon.Output;
            _daemon.Dispose();
        }

        if (_work.Length != 0)
        {
            Shell.Run($"rm -rf '{_work}'");
        }

        AfterUnmount();

        Assert.That(exit, Is.Zero, "clean unmount exits 0:\n" + output);
    }
}

/// <summary>The POSIX suite through the proxied host backend.</summary>
[TestFixture]
[Category("Mount")]
public sealed class HostMountPosixTests : HostBackedPosixSuite
{
    protected override string[] BackendArguments => [];
}

/// <summary>The POSIX suite through DirectFS: file data goes through kernel passthrough, metadata through the daemon.</summary>
[TestFixture]
[Category("Mount")]
public sealed class DirectMountPosixTests : HostBackedPosixSuite
{
    protected override string[] BackendArguments => ["--direct"];
}

/// <summary>
/// The POSIX suite through the proxied host backend with requests over io_uring (--io-uring): every request but FORGET
/// and INTERRUPT reaches the daemon through its ring entries, so the whole suite runs on the ring transport.
/// </summary>
[TestFixture]
[Category("Mount")]
public sealed class IoUringHostMountPosixTests : HostBackedPosixSuite
{
    private FuseIoUringSwitch? _switch;

    protected override string[] BackendArguments => ["--io-uring"];

    protected override void BeforeMount() => _switch = FuseIoUringSwitch.Set(on: true);

    protected override void AfterUnmount() => _switch?.Dispose();
}
