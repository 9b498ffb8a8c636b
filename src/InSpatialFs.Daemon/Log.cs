using Microsoft.Extensions.Logging;

namespace InSpatialFs.Daemon;

/// <summary>Daemon log lines (event ids 5xxx).</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 5001, Level = LogLevel.Warning, Message = "control:{Line}:{Column}: refused '{Command}': {Reason}")]
    public static partial void ControlRefused(ILogger logger, int line, int column, string command, string reason);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Information, Message = "control: {Command}: {Message}")]
    public static partial void ControlExecuted(ILogger logger, string command, string message);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Warning, Message = "{Directory} was writable by group or others (mode {From}, left by an earlier version; its content may have been altered); tightened to {To}")]
    public static partial void BaseDirectoryTightened(ILogger logger, string directory, string from, string to);

    [LoggerMessage(EventId = 5004, Level = LogLevel.Warning, Message = "crash recovery: detached the dead mount of {Source} at {Path} (FUSE connection {Connection}, no process served it)")]
    public static partial void DeadMountDetached(ILogger logger, string path, string source, uint connection);

    [LoggerMessage(EventId = 5005, Level = LogLevel.Error, Message = "watchdog: {Mountpoint} has not answered a statfs probe for {Seconds} s; withholding the watchdog ping so systemd restarts the service")]
    public static partial void WatchdogWithheld(ILogger logger, string mountpoint, long seconds);

    [LoggerMessage(EventId = 5006, Level = LogLevel.Information, Message = "watchdog: {Mountpoint} answers again; pings resumed")]
    public static partial void WatchdogResumed(ILogger logger, string mountpoint);

    [LoggerMessage(EventId = 5010, Level = LogLevel.Information, Message = "metrics served at http://{Endpoint}/metrics")]
    public static partial void MetricsListening(ILogger logger, string endpoint);

    [LoggerMessage(EventId = 5011, Level = LogLevel.Debug, Message = "metrics request ended early: {Error}")]
    public static partial void MetricsRequestFailed(ILogger logger, string error);

    [LoggerMessage(EventId = 5015, Level = LogLevel.Information, Message = "{Log} passed {SizeMiB} MiB (cap {CapMiB} MiB): its {Bytes} bytes so far moved to {Rotated}, the log starts again")]
    public static partial void LogRotated(ILogger logger, string log, long sizeMiB, long capMiB, string rotated, long bytes);

    [LoggerMessage(EventId = 5016, Level = LogLevel.Warning, Message = "{Log} is past its cap and could not be rotated: {Error}")]
    public static partial void LogRotationFailed(ILogger logger, string log, string error);

    [LoggerMessage(EventId = 5014, Level = LogLevel.Warning, Message = "{Reason}; starting on a new one")]
    public static partial void StateDirectoryRemovedWhileStarting(ILogger logger, string reason);

    [LoggerMessage(EventId = 5013, Level = LogLevel.Debug, Message = "kept the control directory {Directory}: {Reason}")]
    public static partial void ControlDirectoryKept(ILogger logger, string directory, string reason);

    [LoggerMessage(EventId = 5012, Level = LogLevel.Debug, Message = "after {Phase}: a full collection returned {KiB} KiB of transient memory in {Milliseconds:F1} ms")]
    public static partial void TransientMemoryReturned(ILogger logger, string phase, long kib, double milliseconds);
}
