using InSpatialFs.Proxy.Direct;

namespace InSpatialFs.Proxy;

/// <summary>Tuning of the proxy; the defaults favour the in-memory and local host case.</summary>
public sealed record ProxyOptions
{
    /// <summary>How long the kernel may cache a name → node answer.</summary>
    public TimeSpan EntryTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>How long the kernel may cache attributes.</summary>
    public TimeSpan AttrTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long the kernel may cache entries, attributes, file data (FOPEN_KEEP_CACHE) and listings (FOPEN_CACHE_DIR)
    /// of nodes that nothing but a policy change can make answer differently: nodes of read-only mounts, of read-only
    /// image layers, and of read-only policy paths. A policy reload invalidates them at once. At most
    /// <see cref="EntryTimeout"/> makes those nodes as short-lived as the rest.
    /// </summary>
    public TimeSpan CacheTimeout { get; init; } = TimeSpan.FromHours(1);

    /// <summary>Name of the instance; events carry it as container.id for container callers.</summary>
    public string InstanceName { get; init; } = "inspatialfs";

    /// <summary>
    /// How DirectFS files move data when kernel passthrough is unavailable: <see cref="DirectMode.Spliced"/> (READ by
    /// splice(2), no copy through the daemon's memory) or <see cref="DirectMode.Proxied"/> (pread/pwrite copies).
    /// </summary>
    public DirectMode DirectFallback { get; init; } = DirectMode.Spliced;
}
