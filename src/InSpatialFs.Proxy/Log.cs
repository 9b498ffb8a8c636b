using Microsoft.Extensions.Logging;

namespace InSpatialFs.Proxy;

/// <summary>Proxy log lines (event ids 3xxx).</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "kernel connected: FUSE {Major}.{Minor}, passthrough {Passthrough}")]
    public static partial void Connected(ILogger logger, uint major, uint minor, bool passthrough);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Warning, Message = "DirectFS: the kernel refused a passthrough registration ({Error}); direct mounts are served through the daemon (direct: {Mode})")]
    public static partial void PassthroughRefused(ILogger logger, InSpatialFs.Interop.Errno error, string mode);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Warning, Message = "DirectFS: FUSE passthrough is off (not offered by the kernel, or --no-passthrough); direct mounts are served through the daemon (direct: {Mode})")]
    public static partial void PassthroughNotOffered(ILogger logger, string mode);

    // 2110: the id this line had while the backing-id table lived in storage; log readers match on it.
    [LoggerMessage(EventId = 2110, Level = LogLevel.Warning, Message = "DirectFS: kernel passthrough unavailable ({Errno}); direct files are served through the daemon (direct: {Mode})")]
    public static partial void PassthroughUnavailable(ILogger logger, InSpatialFs.Interop.Errno errno, string mode);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Debug, Message = "hard-link scan below protected paths stopped: {Reason}")]
    public static partial void AliasScanStopped(ILogger logger, string reason);

    [LoggerMessage(EventId = 3005, Level = LogLevel.Information, Message = "kernel caches invalidated ({Why}): {Entries} cached names and {Nodes} cached nodes dropped of {Known} known, epoch {Epoch}")]
    public static partial void CachesInvalidated(ILogger logger, string why, long entries, long nodes, int known, string epoch);

    [LoggerMessage(EventId = 3007, Level = LogLevel.Warning, Message = "mount point {Path} has no directory in its parent mount and none could be made ({Error}): it is reached by name but not listed")]
    public static partial void MountPointUnlisted(ILogger logger, string path, InSpatialFs.Interop.Errno error);

    [LoggerMessage(EventId = 3006, Level = LogLevel.Error, Message = "kernel cache invalidation failed; cached answers may outlive the change until their timeout")]
    public static partial void InvalidationFailed(ILogger logger, Exception error);

    [LoggerMessage(EventId = 3008, Level = LogLevel.Error, Message = "the restart journal cannot be written ({Error}): until it can (retried each second), a restart of the server may not find the files the kernel holds")]
    public static partial void JournalFailed(ILogger logger, string error);

    [LoggerMessage(EventId = 3012, Level = LogLevel.Warning, Message = "the restart journal is written again: a restart finds what the kernel holds")]
    public static partial void JournalRecovered(ILogger logger);

    [LoggerMessage(EventId = 3009, Level = LogLevel.Information, Message = "a resent request the previous server had begun is answered as carried out: {Why}")]
    public static partial void ReplayedApplied(ILogger logger, string why);

    [LoggerMessage(EventId = 3010, Level = LogLevel.Information, Message = "node {NodeId} found again at {Name}, where a rename the previous server carried out before it died had moved it")]
    public static partial void RefoundMoved(ILogger logger, ulong nodeId, string name);

    [LoggerMessage(EventId = 3013, Level = LogLevel.Error, Message = "{Reason}: kept as {SetAside}; taking over with a fresh journal and the connection parameters the descriptor store kept")]
    public static partial void JournalSetAside(ILogger logger, string reason, string setAside);

    [LoggerMessage(EventId = 3011, Level = LogLevel.Information, Message = "the restart journal in {StateDirectory} cannot be mapped with its blocks reserved (no fallocate, or a full disk): it is written with one write(2) per request instead")]
    public static partial void JournalUnmapped(ILogger logger, string stateDirectory);
}
