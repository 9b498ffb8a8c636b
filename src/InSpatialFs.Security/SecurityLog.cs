using Microsoft.Extensions.Logging;

namespace InSpatialFs.Security;

/// <summary>Security manager log lines (event ids 40xx; the rule engine uses its own range).</summary>
internal static partial class SecurityLog
{
    [LoggerMessage(4001, LogLevel.Warning, "isolation: {Warning}")]
    public static partial void Relaxation(ILogger log, string warning);

    [LoggerMessage(4002, LogLevel.Warning, "event queue full: {Dropped} events dropped so far")]
    public static partial void EventsDropped(ILogger log, long dropped);

    [LoggerMessage(4003, LogLevel.Warning, "incident {Id} {Severity} {Source}: pid {Pid} ({Process}) {Output}; response: {Response}")]
    public static partial void IncidentRaised(ILogger log, string id, Severity severity, string source, int pid, string? process, string? output, string response);

    [LoggerMessage(4004, LogLevel.Warning, "{Path}:{Line}: skipped unreadable incident line ({Error})")]
    public static partial void IncidentLineSkipped(ILogger log, string path, int line, string error);

    [LoggerMessage(4005, LogLevel.Warning, "container suspended: {How}")]
    public static partial void Suspended(ILogger log, string how);

    [LoggerMessage(4006, LogLevel.Information, "container resumed: {How}")]
    public static partial void Resumed(ILogger log, string how);

    [LoggerMessage(4007, LogLevel.Error, "response refused: {Why}")]
    public static partial void ResponseRefused(ILogger log, string why);

    [LoggerMessage(4008, LogLevel.Error, "event consumer failed on seq {Seq}")]
    public static partial void ConsumerFailed(ILogger log, Exception ex, ulong seq);

    [LoggerMessage(4009, LogLevel.Error, "{What} failed")]
    public static partial void ResponseFailed(ILogger log, Exception ex, string what);

    [LoggerMessage(4010, LogLevel.Error, "the {File} cannot be written ({Error}): {Consequence} ({NotLogged} more failures since the last line)")]
    public static partial void RecordWriteFailed(ILogger log, string file, string error, string consequence, long notLogged);
}
