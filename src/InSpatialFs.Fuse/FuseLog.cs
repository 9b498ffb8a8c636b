using InSpatialFs.Interop;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.Fuse;

/// <summary>Source-generated log messages of the FUSE layer (event ids 1xxx).</summary>
internal static partial class FuseLog
{
    [LoggerMessage(1001, LogLevel.Information, "Mounted FUSE on {Mountpoint} via {Method} (connection {ConnectionId})")]
    public static partial void Mounted(ILogger logger, string mountpoint, string method, uint connectionId);

    [LoggerMessage(1002, LogLevel.Information, "Unmounted {Mountpoint}")]
    public static partial void Unmounted(ILogger logger, string mountpoint);

    [LoggerMessage(1003, LogLevel.Warning, "Unmount of {Mountpoint} failed: {Errno}")]
    public static partial void UnmountFailed(ILogger logger, string mountpoint, Errno errno);

    [LoggerMessage(1010, LogLevel.Information,
        "FUSE INIT: kernel {KernelMajor}.{KernelMinor} offered 0x{Offered:x}; answered 7.{Minor} with 0x{Reply:x}, max_write {MaxWrite}, passthrough {Passthrough}")]
    public static partial void Initialized(ILogger logger, uint kernelMajor, uint kernelMinor, ulong offered, uint minor, ulong reply, uint maxWrite, bool passthrough);

    [LoggerMessage(1043, LogLevel.Information,
        "FUSE connection adopted from an earlier server (7.{Minor} as negotiated then, no INIT); unanswered requests resent: {Resend}")]
    public static partial void Adopted(ILogger logger, uint minor, Errno resend);

    [LoggerMessage(1011, LogLevel.Warning, "FUSE INIT refused: kernel protocol {Major}.{Minor} ({Reason})")]
    public static partial void InitRefused(ILogger logger, uint major, uint minor, string reason);

    [LoggerMessage(1012, LogLevel.Information, "FUSE INIT: kernel major {Major} is newer than 7; answered 7 and wait for a second INIT")]
    public static partial void InitMajorTooNew(ILogger logger, uint major);

    [LoggerMessage(1020, LogLevel.Error, "Handler for {Opcode} (unique {Unique}) threw; answered EIO")]
    public static partial void HandlerThrew(ILogger logger, Exception exception, string opcode, ulong unique);

    [LoggerMessage(1021, LogLevel.Warning, "Malformed {Opcode} frame (unique {Unique}, {Length} bytes): {Reason}")]
    public static partial void MalformedFrame(ILogger logger, string opcode, ulong unique, int length, string reason);

    [LoggerMessage(1022, LogLevel.Debug, "Reply to unique {Unique} not delivered: {Errno} (request gone)")]
    public static partial void ReplyNotDelivered(ILogger logger, ulong unique, Errno errno);

    [LoggerMessage(1023, LogLevel.Error, "Reading /dev/fuse failed on reader {Reader}: {Errno}")]
    public static partial void ReadFailed(ILogger logger, int reader, Errno errno);

    [LoggerMessage(1024, LogLevel.Debug, "Reader {Reader} stopped: {Errno}")]
    public static partial void ReaderStopped(ILogger logger, int reader, Errno errno);

    [LoggerMessage(1025, LogLevel.Error, "Handler for {Opcode} (unique {Unique}) returned an invalid result: {Reason}; answered EIO")]
    public static partial void BadHandlerResult(ILogger logger, string opcode, ulong unique, string reason);

    [LoggerMessage(1026, LogLevel.Warning, "Dropped a {Length}-byte frame shorter than fuse_in_header")]
    public static partial void ShortFrame(ILogger logger, int length);

    [LoggerMessage(1027, LogLevel.Error, "Reply to unique {Unique} failed: {Errno}")]
    public static partial void ReplyFailed(ILogger logger, ulong unique, Errno errno);

    [LoggerMessage(1028, LogLevel.Error, "Reader {Reader} crashed; the connection is being stopped")]
    public static partial void ReaderCrashed(ILogger logger, Exception exception, int reader);

    [LoggerMessage(1029, LogLevel.Error, "IFuseFileSystem.Initialized threw; the connection is being stopped")]
    public static partial void InitializedThrew(ILogger logger, Exception exception);

    [LoggerMessage(1030, LogLevel.Warning, "Could not start reader {Reader}; serving with the readers already running")]
    public static partial void ReaderNotStarted(ILogger logger, Exception exception, int reader);

    [LoggerMessage(1040, LogLevel.Warning, "Reader {Reader}: no pipes for spliced READ replies ({Errno}); this reader copies READ data")]
    public static partial void SplicePipesRefused(ILogger logger, int reader, Errno errno);

    [LoggerMessage(1041, LogLevel.Debug, "Reader {Reader}: spliced READ replies through pipes of {Slots} pages")]
    public static partial void SplicePipesReady(ILogger logger, int reader, int slots);

    [LoggerMessage(1042, LogLevel.Warning, "Spliced reply to unique {Unique} failed before the kernel took it ({Errno}); answered by copy")]
    public static partial void SpliceReplyFailed(ILogger logger, ulong unique, Errno errno);

    [LoggerMessage(1045, LogLevel.Information, "Resent request {Opcode} (unique {Unique}, node {NodeId}): read by an earlier server, not answered by it")]
    public static partial void ResentRequest(ILogger logger, string opcode, ulong unique, ulong nodeId);

    [LoggerMessage(1046, LogLevel.Information, "Resent request {Opcode} (unique {Unique}) answered: {Result}")]
    public static partial void ResentAnswered(ILogger logger, string opcode, ulong unique, Errno result);

    [LoggerMessage(1044, LogLevel.Warning, "Reader {Reader}: splicing READ data failed ({Errno}), {Count} time(s) so far; answered by copy")]
    public static partial void SpliceDataFailed(ILogger logger, int reader, Errno errno, long count);

    [LoggerMessage(1060, LogLevel.Information, "FUSE over io_uring: {Entries} ring entries on {Queues} queues ({PerQueue} per queue)")]
    public static partial void RingsStarted(ILogger logger, int entries, int queues, int perQueue);

    [LoggerMessage(1061, LogLevel.Warning, "FUSE over io_uring not used, requests stay on /dev/fuse: {Reason}")]
    public static partial void RingsUnavailable(ILogger logger, string reason);
}
