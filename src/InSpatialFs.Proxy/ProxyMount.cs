using InSpatialFs.Storage;

namespace InSpatialFs.Proxy;

/// <summary>One mount of the instance's namespace as the proxy serves it.</summary>
/// <param name="Path">Absolute, normalized namespace path ("/" for the root mount).</param>
/// <param name="Backend">The storage that serves it.</param>
/// <param name="ReadOnly">Write-class operations get EROFS.</param>
/// <param name="Direct">Regular files may use kernel passthrough (DirectFS) when the policy allows it.</param>
public sealed record ProxyMount(string Path, IFileSystemBackend Backend, bool ReadOnly, bool Direct);

/// <summary>Tuning of the proxy; the defaults favour the in-memory and local host case.</summary>
public sealed record ProxyOptions
{
    /// <summary>How long the kernel may cache a name → node answer.</summary>
    public TimeSpan EntryTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How long the kernel may cache attributes.</summary>
    public TimeSpan AttrTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Name of the instance; events carry it as container.id for container callers.</summary>
    public string InstanceName { get; init; } = "inspatialfs";
}
