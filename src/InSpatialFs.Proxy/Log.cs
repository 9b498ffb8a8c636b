using Microsoft.Extensions.Logging;

namespace InSpatialFs.Proxy;

/// <summary>Proxy log lines (event ids 3xxx).</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "kernel connected: FUSE {Major}.{Minor}, passthrough {Passthrough}")]
    public static partial void Connected(ILogger logger, uint major, uint minor, bool passthrough);
}
