namespace InSpatialFs.TestKit.Posix;

/// <summary>
/// Groups of <see cref="PosixSuite"/> tests that a backend may legitimately lack. A concrete fixture opts out
/// of one by returning a reason from <see cref="PosixSuite.OptOutReason"/>; the tests then report as
/// ignored with that reason, never silently.
/// </summary>
public enum PosixCategory
{
    Files,
    Directories,
    Symlinks,
    HardLinks,
    Rename,
    RenameFlags,
    SpecialFiles,
    DeviceNodes,
    Xattrs,
    TrustedXattrs,
    TmpFile,
    Fallocate,
    SparseSeek,
    CopyFileRange,
    StatFs,
    Metadata,
    Ownership,
    Permissions,
    Concurrency,
    CrossMount,
}
