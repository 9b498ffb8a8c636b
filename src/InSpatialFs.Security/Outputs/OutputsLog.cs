using Microsoft.Extensions.Logging;

namespace InSpatialFs.Security.Outputs;

/// <summary>Alert output log lines (event ids 4600-4699, inside the Security layer's 4xxx range).</summary>
internal static partial class OutputsLog
{
    [LoggerMessage(4600, LogLevel.Warning, "alert output {Channel}: queue full, {Dropped} alert(s) dropped so far")]
    public static partial void Dropped(ILogger log, string channel, long dropped);

    [LoggerMessage(4601, LogLevel.Warning, "alert output {Channel}: delivery failed ({Error}); retrying in {DelayMs} ms")]
    public static partial void Retrying(ILogger log, string channel, string error, long delayMs);

    [LoggerMessage(4602, LogLevel.Error, "alert output {Channel}: gave up on an alert after {Seconds} s of failures ({Error})")]
    public static partial void GaveUp(ILogger log, string channel, long seconds, string error);

    [LoggerMessage(4603, LogLevel.Information, "alert output {Channel}: delivering again after {Retries} retry(ies)")]
    public static partial void Recovered(ILogger log, string channel, long retries);

    [LoggerMessage(4604, LogLevel.Error, "alert formatting failed for incident {Id}")]
    public static partial void FormatFailed(ILogger log, Exception ex, string id);
}
