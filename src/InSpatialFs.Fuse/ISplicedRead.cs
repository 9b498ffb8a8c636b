using InSpatialFs.Interop;

namespace InSpatialFs.Fuse;

/// <summary>
/// Optional for an <see cref="IFuseFileSystem"/>: serve READ by splice(2). The protocol server offers each READ
/// it can carry through its reader's pipe (the request fits the pipe and the channel is a real /dev/fuse
/// descriptor); the file system moves the data from a descriptor it keeps leased for the call into
/// <paramref name="sink"/>, and the server sends the out header plus the pipe's bytes to the channel the request
/// came from, so no byte passes through managed memory. The reply length is always what the sink holds.
/// </summary>
public interface IFuseSplicedRead
{
    /// <summary>Whether any READ may be spliced at all; read per request, so the server creates no pipe before it is needed.</summary>
    bool SplicedReadsWanted { get; }

    /// <summary>
    /// False: not spliceable (the server uses <see cref="IFuseFileSystem.Read"/>; the sink must be left empty).
    /// True: <paramref name="result"/> is final; with OK the sink holds the reply's data (a short count only at end
    /// of file), otherwise the server empties the sink and answers through the copy path, which reports the errno.
    /// </summary>
    bool TryReadSpliced(FuseRequest request, ulong nodeId, ulong fh, long offset, int size, ISpliceReadSink sink, out Errno result);
}

/// <summary>The reader's data pipe as a READ handler sees it. Used by one thread at a time.</summary>
public interface ISpliceReadSink
{
    /// <summary>Bytes the sink holds for the current reply.</summary>
    int Length { get; }

    /// <summary>
    /// Moves exactly <paramref name="length"/> bytes of <paramref name="fd"/> from <paramref name="offset"/> into the
    /// pipe, fewer only at end of file (<paramref name="moved"/> says how many). The caller keeps <paramref name="fd"/>
    /// open for the call. An error leaves whatever moved in the sink; the server empties it.
    /// </summary>
    Errno SpliceFrom(int fd, long offset, int length, out int moved);
}
