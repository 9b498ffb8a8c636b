using InSpatialFs.Proxy.Direct;

namespace InSpatialFs.Daemon.Runtime;

/// <summary>Run-time switches of an instance that are not part of its config file.</summary>
internal sealed record InstanceOptions
{
    /// <summary>Kernel reader threads of the container mount (0 = the protocol server's default).</summary>
    public int ReaderThreads { get; init; }

    /// <summary>Serve the container mount over io_uring (--io-uring); the control mount stays on /dev/fuse.</summary>
    public bool IoUring { get; init; }

    /// <summary>Pin the container mount's /dev/fuse readers one per CPU while every CPU has idle time (--no-pin-readers: never).</summary>
    public bool PinReaders { get; init; } = true;

    /// <summary>Negotiate FUSE passthrough for DirectFS mounts.</summary>
    public bool Passthrough { get; init; } = true;

    /// <summary>DirectFS data path without passthrough: Spliced (--direct-fallback splice) or Proxied (copy).</summary>
    public DirectMode DirectFallback { get; init; } = DirectMode.Spliced;

    /// <summary>--cache-timeout: how long the kernel may cache read-only nodes (null: the proxy's default).</summary>
    public TimeSpan? CacheTimeout { get; init; }

    /// <summary>Re-reads the config file at a reload (null: started from flags, only the rule files reload).</summary>
    public Func<Config.InstanceConfig>? ReloadConfig { get; init; }

    /// <summary>Mount the control directory.</summary>
    public bool Control { get; init; } = true;

    /// <summary>The control command `isolation LEVEL` may relax the level.</summary>
    public bool AllowRelax { get; init; }

    /// <summary>Rule files given with --rules, loaded after the config's.</summary>
    public IReadOnlyList<string> ExtraRuleFiles { get; init; } = [];

    /// <summary>Controls relaxed with --relax (see <see cref="Relaxations"/>).</summary>
    public IReadOnlyList<string> Relax { get; init; } = [];
}

/// <summary>The instance could not start; the message says why and nothing stays mounted.</summary>
internal sealed class InstanceStartException(string message, Exception? inner = null) : Exception(message, inner);
