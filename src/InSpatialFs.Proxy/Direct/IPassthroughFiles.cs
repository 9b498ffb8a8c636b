using InSpatialFs.Interop;

namespace InSpatialFs.Proxy.Direct;

/// <summary>
/// Kernel passthrough registrations, one backing id per inode, reference-counted across opens.
/// The proxy acquires at OPEN (when the backend offers a descriptor and the policy allows DirectFS)
/// and releases at RELEASE.
/// </summary>
public interface IPassthroughFiles
{
    /// <summary>Returns the backing id for <paramref name="key"/>, registering <paramref name="fd"/> if it has none.
    /// The caller keeps ownership of <paramref name="fd"/> (the kernel holds its own reference to a registered
    /// file). An error means: serve this file proxied.</summary>
    Errno Acquire(ulong key, SafeFd fd, out int backingId);

    void Release(ulong key);
}
