using InSpatialFs.Interop;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.Storage.Overlay;

/// <summary>Overlay log lines (event ids 22xx).</summary>
internal static partial class OverlayLog
{
    [LoggerMessage(EventId = 2201, Level = LogLevel.Information, Message = "overlay: removed {Count} leftovers of interrupted copy-ups from the work directory")]
    public static partial void WorkCleaned(ILogger logger, int count);

    [LoggerMessage(EventId = 2208, Level = LogLevel.Warning, Message = "overlay: {Count} more failed copy-ups not logged (at most {Burst} lines a minute)")]
    public static partial void CopyUpFailuresNotLogged(ILogger logger, long count, int burst);

    [LoggerMessage(EventId = 2202, Level = LogLevel.Warning, Message = "overlay: copy-up of {Name} failed: {Error}")]
    public static partial void CopyUpFailed(ILogger logger, string name, Errno error);
}
