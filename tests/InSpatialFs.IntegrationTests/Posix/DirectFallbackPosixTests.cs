namespace InSpatialFs.IntegrationTests.Posix;

/// <summary>The POSIX suite through DirectFS without passthrough, READ data spliced host file → pipe → /dev/fuse.</summary>
[TestFixture]
[Category("Mount")]
public sealed class DirectSplicedMountPosixTests : HostBackedPosixSuite
{
    protected override string[] BackendArguments => ["--direct", "--no-passthrough", "--direct-fallback", "splice"];
}

/// <summary>The POSIX suite through DirectFS without passthrough, READ data copied with pread.</summary>
[TestFixture]
[Category("Mount")]
public sealed class DirectCopiedMountPosixTests : HostBackedPosixSuite
{
    protected override string[] BackendArguments => ["--direct", "--no-passthrough", "--direct-fallback", "copy"];
}
