using InSpatialFs.TestKit.Posix;

namespace InSpatialFs.IntegrationTests.Posix;

/// <summary>
/// The control run of the POSIX suite: a plain directory on the host's /tmp. Whatever passes here is the
/// behaviour the mounted filesystems must reproduce.
/// </summary>
[TestFixture]
[Category("Mount")]
public sealed class PlainDirectoryPosixTests : PosixSuite
{
    private string _root = "";
    private string _otherMount = "";

    protected override string Root => _root;

    /// <summary>/dev/shm is a tmpfs, a different mount from /tmp, so rename and link across them give EXDEV.</summary>
    protected override string? CrossMountDirectory => _otherMount.Length != 0 ? _otherMount : null;

    [OneTimeSetUp]
    public void CreateRoot()
    {
        _root = Directory.CreateTempSubdirectory("inspatialfs-posix-").FullName;
        if (Directory.Exists("/dev/shm") && GetDevice("/dev/shm") != GetDevice(_root))
        {
            _otherMount = Directory.CreateDirectory($"/dev/shm/inspatialfs-posix-{Guid.NewGuid():N}").FullName;
        }
        // The permission tests run programs as uid 1000, which must be able to reach the test directories.
        Assert.That(PosixCalls.Chmod(_root, 0x1ED), Is.EqualTo(Interop.Errno.OK));
    }

    [OneTimeTearDown]
    public void RemoveRoot()
    {
        if (_root.Length != 0)
        {
            Directory.Delete(_root, recursive: true);
        }
        if (_otherMount.Length != 0)
        {
            Directory.Delete(_otherMount, recursive: true);
        }
    }

    private static ulong GetDevice(string path) => PosixCalls.Stat(path, out var st) == Interop.Errno.OK ? st.Dev : 0;
}
