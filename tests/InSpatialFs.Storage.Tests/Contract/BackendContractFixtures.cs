using InSpatialFs.Storage.Memory;
using InSpatialFs.Storage.Tests.Host;

namespace InSpatialFs.Storage.Tests.Contract;

[TestFixture]
public sealed class MemoryBackendContractTests : BackendContractTests
{
    protected override IFileSystemBackend CreateBackend() => new MemoryFileSystem();
}

/// <summary>The host backend over a fresh temp directory (ext4 here): no mount, no FUSE.</summary>
[TestFixture]
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
