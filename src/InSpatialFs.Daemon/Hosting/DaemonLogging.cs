using Microsoft.Extensions.Logging;

namespace InSpatialFs.Daemon.Hosting;

/// <summary>
/// Console logging for the daemon: journal-friendly lines with syslog priority prefixes ("&lt;6&gt;") when
/// systemd runs us (JOURNAL_STREAM or INVOCATION_ID set), a readable single-line format otherwise.
/// Everything goes to stderr so stdout stays for command output.
/// </summary>
internal static class DaemonLogging
{
    public static bool UnderSystemd =>
        Environment.GetEnvironmentVariable("JOURNAL_STREAM") != null || Environment.GetEnvironmentVariable("INVOCATION_ID") != null;

    public static ILoggerFactory Create(LogLevel minimum) => LoggerFactory.Create(builder =>
    {
        builder.SetMinimumLevel(minimum);
        if (UnderSystemd)
        {
            builder.AddSystemdConsole(o =>
            {
                o.IncludeScopes = false;
                o.UseUtcTimestamp = true;
            });
        }
        else
        {
            builder.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss ";
                o.IncludeScopes = false;
            });
        }

        builder.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
    });

    public static bool TryParseLevel(string text, out LogLevel level)
    {
        level = text.ToLowerInvariant() switch
        {
            "trace" => LogLevel.Trace,
            "debug" => LogLevel.Debug,
            "info" or "information" => LogLevel.Information,
            "warn" or "warning" => LogLevel.Warning,
            "error" => LogLevel.Error,
            "critical" => LogLevel.Critical,
            "none" => LogLevel.None,
            _ => (LogLevel)(-1),
        };
        return (int)level >= 0;
    }
}
