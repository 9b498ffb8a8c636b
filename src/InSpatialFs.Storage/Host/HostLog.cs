using InSpatialFs.Interop;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.Storage.Host;

/// <summary>Log lines of the host and direct backends (event ids 2100-2199).</summary>
internal static partial class HostLog
{
    [LoggerMessage(EventId = 2100, Level = LogLevel.Information, Message = "Host mount of {Source} ({Kind}, readonly={ReadOnly}, descriptor cache {Capacity}, open-handle cap {MaxHandles})")]
    public static partial void Serving(ILogger logger, string source, string kind, bool readOnly, int capacity, int maxHandles);

    [LoggerMessage(EventId = 2101, Level = LogLevel.Warning, Message = "Host name {Name} refused by RESOLVE_BENEATH ({Errno}): escape attempt")]
    public static partial void EscapeRefused(ILogger logger, string name, Errno errno);

    [LoggerMessage(EventId = 2105, Level = LogLevel.Warning, Message = "{Count} more escape attempts refused and not logged (at most {Burst} lines a minute; the events record each)")]
    public static partial void EscapesNotLogged(ILogger logger, long count, int burst);

    [LoggerMessage(EventId = 2102, Level = LogLevel.Warning, Message = "File handles unsupported on a host filesystem ({Errno}); its nodes pin O_PATH descriptors")]
    public static partial void HandlesUnsupported(ILogger logger, Errno errno);

    [LoggerMessage(EventId = 2103, Level = LogLevel.Warning, Message = "Open-handle cap {Max} reached on host mount; open refused with EMFILE")]
    public static partial void HandleCapReached(ILogger logger, int max);

    [LoggerMessage(EventId = 2104, Level = LogLevel.Warning, Message = "Created node {Name} changed identity before it could be chowned; left as root")]
    public static partial void CreatedNodeSwapped(ILogger logger, string name);

    // Debug: a container can provoke it at will (renaming a name over and over while it is looked up).
    [LoggerMessage(EventId = 2106, Level = LogLevel.Debug, Message = "Node {Node}: its name was replaced while the lookup took its file handle; the node answers ESTALE")]
    public static partial void HandleReplaced(ILogger logger, ulong node);
}
