using Microsoft.Extensions.Logging;

namespace InSpatialFs.Daemon;

/// <summary>Daemon log lines (event ids 5xxx).</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 5001, Level = LogLevel.Warning, Message = "control: refused '{Command}': {Reason}")]
    public static partial void ControlRefused(ILogger logger, string command, string reason);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Information, Message = "control: {Command}: {Message}")]
    public static partial void ControlExecuted(ILogger logger, string command, string message);
}
