using Microsoft.Extensions.Logging;

namespace InSpatialFs.Security.Rules;

/// <summary>Rule engine log lines (event ids 4500-4599, inside the Security layer's 4xxx range).</summary>
internal static partial class RulesLog
{
    [LoggerMessage(EventId = 4500, Level = LogLevel.Information, Message = "Rules loaded: {Rules} rules ({Inline} inline), {Warnings} warning(s)")]
    public static partial void Loaded(ILogger logger, int rules, int inline, int warnings);

    [LoggerMessage(EventId = 4501, Level = LogLevel.Warning, Message = "Rule warning: {Diagnostic}")]
    public static partial void LoadWarning(ILogger logger, string diagnostic);

    [LoggerMessage(EventId = 4502, Level = LogLevel.Error, Message = "Rules reload rejected, running set unchanged: {Errors} error(s), first: {First}")]
    public static partial void ReloadRejected(ILogger logger, int errors, string first);

    [LoggerMessage(EventId = 4503, Level = LogLevel.Information, Message = "Rules reloaded: {Rules} rules, state carried over for {Kept}")]
    public static partial void Reloaded(ILogger logger, int rules, int kept);
}
