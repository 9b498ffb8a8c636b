using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;

namespace InSpatialFs.Storage;

/// <summary>
/// One open regular file, as <see cref="IFileSystemBackend.Open"/>, <see cref="IFileSystemBackend.Create"/> and
/// <see cref="IFileSystemBackend.TmpFile"/> return it. The object is the handle: the proxy keeps it between OPEN and
/// RELEASE and calls it directly, so no backend id is translated per call. Calls after <see cref="Release"/> answer
/// EBADF. Thread-safe; READ and WRITE allocate nothing.
/// </summary>
public interface IOpenFile
{
    /// <summary>How the kernel should treat the file (e.g. FOPEN_NOFLUSH when FLUSH has nothing to do).</summary>
    FopenFlags OpenFlags { get; }

    /// <summary>Reads up to buffer.Length bytes; a short count means end of file.</summary>
    Errno Read(long offset, Span<byte> buffer, out int bytesRead);

    Errno Write(long offset, ReadOnlySpan<byte> data, out int bytesWritten);

    Errno Flush();

    Errno Fsync(bool dataOnly);

    /// <summary>mode: 0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE|KEEP_SIZE, FALLOC_FL_ZERO_RANGE; others EOPNOTSUPP.</summary>
    Errno Fallocate(int mode, long offset, long length);

    /// <summary>whence: SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA, SEEK_HOLE (ENXIO past the end).</summary>
    Errno Lseek(long offset, int whence, out long result);

    /// <summary>
    /// A new descriptor of this open file for FUSE kernel passthrough, or null when the file has none (proxied data).
    /// The caller owns and closes it (the kernel keeps its own reference to a registered file).
    /// </summary>
    SafeFd? DuplicatePassthroughFd();

    /// <summary>Closes the file; the node stays readable while the proxy still references it. A second call gives EBADF.</summary>
    Errno Release();
}

/// <summary>One open directory, as <see cref="IFileSystemBackend.OpenDir"/> returns it. Calls after <see cref="Release"/> answer EBADF.</summary>
public interface IOpenDirectory
{
    /// <summary>
    /// Lists entries after cookie <paramref name="offset"/> (0 = from the start, including "." and "..")
    /// until the sink is full. Cookies must stay valid across creates and deletes between calls.
    /// </summary>
    Errno ReadDir(long offset, IDirectoryEntrySink sink);

    Errno FsyncDir(bool dataOnly);

    /// <summary>
    /// A value that differs from the one taken at any earlier open whenever the directory's entries may have changed in
    /// between, or 0 when the backend cannot tell (then the kernel keeps no listing from one open to the next). It
    /// describes the directory as it was before this open listed anything: ask before the first ReadDir (after it, a
    /// backend may answer 0). A listing the kernel cached under one stamp is reused by a later open only if they match.
    /// </summary>
    ulong ChangeStamp { get; }

    Errno Release();
}
