using InSpatialFs.Interop;

namespace InSpatialFs.Fuse.Transport;

/// <summary>
/// A channel backed by a real /dev/fuse descriptor, which can take a reply straight from a pipe
/// (fuse_dev_splice_write). Transports without a descriptor (the test kit's fake kernel) do not implement it.
/// </summary>
public interface ISpliceChannel
{
    /// <summary>
    /// Splices one whole reply (out header first) of <paramref name="length"/> bytes from the read end of a pipe
    /// into the channel. The kernel takes all of it or fails; EINTR is retried.
    /// </summary>
    Errno SpliceReply(int pipeReadFd, int length);
}
