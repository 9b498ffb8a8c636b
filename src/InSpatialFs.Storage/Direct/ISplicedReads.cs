using InSpatialFs.Fuse;
using InSpatialFs.Interop;

namespace InSpatialFs.Storage.Direct;

/// <summary>
/// Optional for an open file that is a host descriptor: READ by splice(2) into the FUSE reader's pipe (the DirectFS
/// fallback when kernel passthrough is unavailable). The file keeps the descriptor leased for the call, so a
/// concurrent RELEASE cannot close it under the splice.
/// </summary>
public interface ISplicedReads
{
    /// <summary>
    /// Moves up to <paramref name="length"/> bytes from <paramref name="offset"/> into <paramref name="sink"/> (short
    /// only at end of file). <paramref name="bytesRead"/> is what this call added.
    /// </summary>
    Errno ReadSpliced(long offset, int length, ISpliceReadSink sink, out int bytesRead);
}
