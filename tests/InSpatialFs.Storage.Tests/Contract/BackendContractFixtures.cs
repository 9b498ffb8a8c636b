using InSpatialFs.Storage.Memory;
using InSpatialFs.Storage.Overlay;
using Microsoft.Extensions.Logging.Abstractions;
using InSpatialFs.Storage.Tests.Host;

namespace InSpatialFs.Storage.Tests.Contract;

[TestFixture]
public sealed class MemoryBackendContractTests : BackendContractTests
{
    protected override IFileSystemBackend CreateBackend() => new MemoryFileSystem();
}

/// <summary>The host backend over a fresh temp directory (ext4 here): no mount, no FUSE.</summary>
[TestFixture]
[Category("Mount")]
public sealed class HostBackendContractTests : BackendContractTests
{
    private HostSandbox? _box;

    protected override IFileSystemBackend CreateBackend()
    {
        _box = new HostSandbox();
        return _box.Fs;
    }

    protected override void DestroyBackend() => _box?.Dispose(); // disposes the backend again: harmless, and removes the directory
}

/// <summary>The overlay over fresh temp directories (an empty lower, an upper and a work directory): every name it makes
/// lands in the upper host backend, so it must give the same answers.</summary>
[TestFixture]
[Category("Mount")]
public sealed class OverlayBackendContractTests : BackendContractTests
{
    private string? _root;

    protected override IFileSystemBackend CreateBackend()
    {
        _root = Path.Combine(Path.GetTempPath(), "isfs-overlay-contract-" + Guid.NewGuid().ToString("N"));
        foreach (string d in new[] { "lower", "upper", "work" }) Directory.CreateDirectory(Path.Combine(_root, d));
        var layers = new OverlayLayers([Path.Combine(_root, "lower")], Path.Combine(_root, "upper"), Path.Combine(_root, "work"));
        return new OverlayFileSystem(layers, NullLogger.Instance);
    }

    protected override void DestroyBackend()
    {
        if (_root != null) Directory.Delete(_root, recursive: true);
    }
}

/// <summary>What the overlay adds to the contract: a copy-up keeps what mkdir alone would not.</summary>
[TestFixture]
[Category("Mount")]
public sealed class OverlayCopyUpModeTests
{
    [Test]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public void A_copied_up_setgid_directory_keeps_its_set_id_bits_though_mkdir_masks_them()
    {
        string root = Path.Combine(Path.GetTempPath(), "isfs-overlay-copyup-" + Guid.NewGuid().ToString("N"));
        try
        {
            foreach (string d in new[] { "lower/shared", "lower/plain", "upper", "work" }) Directory.CreateDirectory(Path.Combine(root, d));
            const UnixFileMode rwxrwxrx = (UnixFileMode)0x1FD; // 0775
            File.SetUnixFileMode(Path.Combine(root, "lower/shared"), rwxrwxrx | UnixFileMode.SetGroup);
            File.SetUnixFileMode(Path.Combine(root, "lower/plain"), rwxrwxrx);
            var layers = new OverlayLayers([Path.Combine(root, "lower")], Path.Combine(root, "upper"), Path.Combine(root, "work"));
            using var fs = new OverlayFileSystem(layers, NullLogger.Instance);
            foreach (string name in new[] { "shared", "plain" })
            {
                Assert.That(fs.Lookup(fs.RootIno, System.Text.Encoding.UTF8.GetBytes(name), out Fuse.Abi.FuseAttr dir), Is.EqualTo(Interop.Errno.OK));
                Assert.That(fs.Create(dir.Ino, "f"u8, Interop.LibC.O_RDWR | Interop.LibC.O_CREAT | Interop.LibC.O_EXCL, 0x1A4, new Caller(0, 0, 1), out Fuse.Abi.FuseAttr f, out IOpenFile r, out _),
                    Is.EqualTo(Interop.Errno.OK), "a create copies the directory up");
                r.Release();
            }

            Assert.That((uint)File.GetUnixFileMode(Path.Combine(root, "upper/shared")), Is.EqualTo(0x5FDu), "02775 in the upper layer");
            Assert.That((uint)File.GetUnixFileMode(Path.Combine(root, "upper/plain")), Is.EqualTo(0x1FDu), "the positive control: 0775 stays 0775");
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}

/// <summary>
/// A merged listing names the nodes the overlay already knows (the proxy then lists them without resolving each name
/// through every layer again), and gives 0 for names nobody looked up yet.
/// </summary>
[TestFixture]
[Category("Mount")]
public sealed class OverlayListingTests
{
    private sealed class Inos : IDirectoryEntrySink
    {
        public Dictionary<string, ulong> ByName { get; } = [];

        public bool TryAdd(ReadOnlySpan<byte> name, ulong ino, uint mode, long nextOffset)
        {
            ByName[System.Text.Encoding.UTF8.GetString(name)] = ino;
            return true;
        }
    }

    [Test]
    public void A_merged_listing_gives_the_node_id_of_each_name_already_looked_up_and_0_for_the_rest()
    {
        string root = Path.Combine(Path.GetTempPath(), "isfs-overlay-listing-" + Guid.NewGuid().ToString("N"));
        try
        {
            foreach (string sub in new[] { "lower/d", "upper", "work" }) Directory.CreateDirectory(Path.Combine(root, sub));
            foreach (string f in new[] { "seen-lower", "unseen-lower" }) File.WriteAllText(Path.Combine(root, "lower/d", f), f);
            var layers = new OverlayLayers([Path.Combine(root, "lower")], Path.Combine(root, "upper"), Path.Combine(root, "work"));
            using var fs = new OverlayFileSystem(layers, NullLogger.Instance);
            Assert.That(fs.Lookup(fs.RootIno, "d"u8, out Fuse.Abi.FuseAttr d), Is.EqualTo(Interop.Errno.OK));
            Assert.That(fs.Create(d.Ino, "made-upper"u8, Interop.LibC.O_RDWR | Interop.LibC.O_CREAT | Interop.LibC.O_EXCL, 0x1A4, new Caller(0, 0, 1), out Fuse.Abi.FuseAttr made, out IOpenFile r, out _),
                Is.EqualTo(Interop.Errno.OK), "a create copies d up: it merges both layers");
            Assert.That(fs.Retain(made.Ino), Is.True, "held, as the proxy holds every node the kernel has");
            r.Release();
            Assert.That(fs.Lookup(d.Ino, "seen-lower"u8, out Fuse.Abi.FuseAttr seen), Is.EqualTo(Interop.Errno.OK));
            Assert.That(fs.Retain(seen.Ino), Is.True);

            var listed = new Inos();
            Assert.That(fs.OpenDir(d.Ino, out IOpenDirectory dir), Is.EqualTo(Interop.Errno.OK));
            Assert.That(dir.ReadDir(0, listed), Is.EqualTo(Interop.Errno.OK));
            dir.Release();

            Assert.That(listed.ByName["seen-lower"], Is.EqualTo(seen.Ino), "a lower name looked up: its node");
            Assert.That(listed.ByName["made-upper"], Is.EqualTo(made.Ino), "an upper name made through the overlay: its node");
            Assert.That(listed.ByName["unseen-lower"], Is.Zero, "a name nobody looked up has no node yet");
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
