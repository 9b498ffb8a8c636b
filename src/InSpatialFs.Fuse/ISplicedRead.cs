using InSpatialFs.Interop;

namespace InSpatialFs.Fuse;

/// <summary>
/// Optional for an <see cref="IFuseFileSystem"/>: serve READ by splice(2). The protocol server offers each READ it
/// can carry through its reader's pipe (the request fits the pipe and the channel is a real /dev/fuse descriptor);
/// the file system answers with a value naming where the data lies (<see cref="SplicedReadSource"/>, a leased
/// descriptor range: go-fuse's ReadResultFd), and the server splices it into the pipe and sends the out header plus
/// the pipe's bytes to the channel the request came from. No byte passes through managed memory, and nothing below
/// the file system sees the pipe. The reply length is always what the splice really moved.
/// </summary>
public interface IFuseSplicedRead
{
    /// <summary>Whether any READ may be spliced at all; read per request, so the server creates no pipe before it is needed.</summary>
    bool SplicedReadsWanted { get; }

    /// <summary>
    /// False: not spliceable (the server uses <see cref="IFuseFileSystem.Read"/>). True: <paramref name="result"/> is
    /// final; with OK <paramref name="source"/> names at most <paramref name="size"/> bytes and holds a lease the
    /// server releases after the splice; otherwise nothing is leased and the copy path answers (and reports the errno).
    /// </summary>
    bool TryReadSpliced(FuseRequest request, ulong nodeId, ulong fh, long offset, int size, out SplicedReadSource source, out Errno result);

    /// <summary>What a spliced READ put in its reply (fewer than asked only at end of file), told before the reply is sent.</summary>
    void ReadSpliced(FuseRequest request, ulong fh, int bytes);
}

/// <summary>
/// The data of a READ reply named by a descriptor range. The descriptor is leased (a SafeHandle reference), so a
/// RELEASE racing the READ cannot close it before the server has spliced from it; <see cref="Release"/> ends the
/// lease. A value type: answering a READ this way allocates nothing.
/// </summary>
public readonly struct SplicedReadSource
{
    private readonly SafeFd? _lease;

    private SplicedReadSource(SafeFd lease, long offset, int length)
    {
        _lease = lease;
        Offset = offset;
        Length = length;
    }

    /// <summary>The descriptor number (valid until <see cref="Release"/>); -1 for an empty value.</summary>
    public int Fd => _lease?.Fd ?? -1;

    public long Offset { get; }

    public int Length { get; }

    /// <summary>Leases <paramref name="fd"/> for one splice; false when it was closed already (a released file).</summary>
    public static bool TryLease(SafeFd fd, long offset, int length, out SplicedReadSource source)
    {
        ArgumentNullException.ThrowIfNull(fd);
        bool added = false;
        try
        {
            fd.DangerousAddRef(ref added);
        }
        catch (ObjectDisposedException)
        {
            source = default;
            return false;
        }

        source = new SplicedReadSource(fd, offset, length);
        return true;
    }

    /// <summary>Ends the lease (once, by whoever consumed the value).</summary>
    public void Release() => _lease?.DangerousRelease();
}
