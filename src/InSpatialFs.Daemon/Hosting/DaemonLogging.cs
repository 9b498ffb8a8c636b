using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Options;

namespace InSpatialFs.Daemon.Hosting;

/// <summary>
/// Console logging for the daemon: journal-friendly lines with syslog priority prefixes ("&lt;6&gt;") when
/// systemd runs us (JOURNAL_STREAM or INVOCATION_ID set), a readable single-line format otherwise.
/// Everything goes to stderr so stdout stays for command output. Every line passes <see cref="TerminalText.Escape"/>:
/// log lines carry paths and names a container chose, which must not forge or split lines or drive a terminal.
/// </summary>
internal static class DaemonLogging
{
    public static bool UnderSystemd =>
        Environment.GetEnvironmentVariable("JOURNAL_STREAM") != null || Environment.GetEnvironmentVariable("INVOCATION_ID") != null;

    /// <summary>
    /// The console logger, put together by hand rather than through <c>LoggerFactory.Create</c>: its dependency-injection
    /// container built generic types at run time, a quarter of the daemon's start-up in the native binary, for three
    /// objects whose options never change.
    /// </summary>
    public static ILoggerFactory Create(LogLevel minimum)
    {
        var formatter = new EscapingConsoleFormatter(new FixedOptions<EscapingConsoleFormatterOptions>(new() { Systemd = UnderSystemd }));
        var consoleOptions = new ConsoleLoggerOptions { FormatterName = EscapingConsoleFormatter.FormatterName, LogToStandardErrorThreshold = LogLevel.Trace };
        var factory = new LoggerFactory([], new LoggerFilterOptions { MinLevel = minimum });
        // AddProvider (not the constructor's list): the factory then disposes the provider, which flushes its queue.
#pragma warning disable CA2000 // AddProvider hands the provider to the factory, which disposes it (see above)
        factory.AddProvider(new ConsoleLoggerProvider(new FixedOptions<ConsoleLoggerOptions>(consoleOptions), [formatter]));
#pragma warning restore CA2000
        return factory;
    }

    private sealed class FixedOptions<[System.Diagnostics.CodeAnalysis.DynamicallyAccessedMembers(System.Diagnostics.CodeAnalysis.DynamicallyAccessedMemberTypes.PublicParameterlessConstructor)] T>(T value)
        : IOptionsMonitor<T>
    {
        public T CurrentValue => value;

        public T Get(string? name) => value;

        public IDisposable? OnChange(Action<T, string?> listener) => null;
    }

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

internal sealed class EscapingConsoleFormatterOptions : ConsoleFormatterOptions
{
    /// <summary>Syslog priority prefixes for the journal instead of a timestamp and level name.</summary>
    public bool Systemd { get; set; }
}

/// <summary>One line per entry, message and exception escaped (<see cref="TerminalText"/>): "&lt;6&gt;category[id] message"
/// under systemd, "HH:mm:ss info: category[id] message" otherwise.</summary>
internal sealed class EscapingConsoleFormatter(IOptionsMonitor<EscapingConsoleFormatterOptions> options) : ConsoleFormatter(FormatterName)
{
    public const string FormatterName = "inspatialfs";

    public override void Write<TState>(in LogEntry<TState> logEntry, IExternalScopeProvider? scopeProvider, TextWriter textWriter)
    {
        string message = logEntry.Formatter(logEntry.State, logEntry.Exception);
        if (logEntry.Exception != null)
        {
            message = message + " " + logEntry.Exception;
        }

        message = TerminalText.Escape(message);
        if (options.CurrentValue.Systemd)
        {
            textWriter.Write($"<{Priority(logEntry.LogLevel)}>{logEntry.Category}[{logEntry.EventId.Id}] {message}\n");
        }
        else
        {
            textWriter.Write($"{DateTime.Now:HH:mm:ss} {LevelName(logEntry.LogLevel)}: {logEntry.Category}[{logEntry.EventId.Id}] {message}\n");
        }
    }

    private static int Priority(LogLevel level) => level switch
    {
        LogLevel.Critical => 2,
        LogLevel.Error => 3,
        LogLevel.Warning => 4,
        LogLevel.Information => 6,
        _ => 7,
    };

    private static string LevelName(LogLevel level) => level switch
    {
        LogLevel.Trace => "trce",
        LogLevel.Debug => "dbug",
        LogLevel.Information => "info",
        LogLevel.Warning => "warn",
        LogLevel.Error => "fail",
        _ => "crit",
    };
}
