using InSpatialFs.Interop;

namespace InSpatialFs.Storage.Posix;

/// <summary>
/// Which fallocate(2) requests a backend accepts, in the kernel's order (vfs_fallocate, fs/open.c, then
/// fuse_file_fallocate): a negative offset or a length that is not positive is EINVAL before the mode is looked at; a
/// mode the VFS refuses is EOPNOTSUPP (unknown bits; PUNCH_HOLE without KEEP_SIZE; COLLAPSE_RANGE, INSERT_RANGE or
/// WRITE_ZEROES with KEEP_SIZE; two operations at once); and of the valid ones FUSE forwards only those made of
/// KEEP_SIZE, PUNCH_HOLE and ZERO_RANGE, so the others are EOPNOTSUPP here too. What remains is
/// 0, KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE, ZERO_RANGE and ZERO_RANGE|KEEP_SIZE: ext4 serves all five (the memory
/// backend does too); a host directory on a filesystem that lacks one (tmpfs has no ZERO_RANGE) answers EOPNOTSUPP
/// itself, as that filesystem would.
/// </summary>
public static class FallocateMode
{
    public const int KeepSize = LibC.FALLOC_FL_KEEP_SIZE;
    public const int PunchHole = LibC.FALLOC_FL_PUNCH_HOLE;
    public const int CollapseRange = 0x08;
    public const int ZeroRange = LibC.FALLOC_FL_ZERO_RANGE;
    public const int InsertRange = 0x20;
    public const int UnshareRange = 0x40;
    public const int WriteZeroes = 0x80;

    /// <summary>The operation bits (FALLOC_FL_MODE_MASK); plain allocation is 0.</summary>
    private const int OperationMask = PunchHole | CollapseRange | ZeroRange | InsertRange | UnshareRange | WriteZeroes;

    /// <summary>OK, EINVAL (range) or EOPNOTSUPP (mode), checked in that order.</summary>
    public static Errno Check(int mode, long offset, long length)
    {
        if (offset < 0 || length <= 0)
        {
            return Errno.EINVAL;
        }

        return IsValidForKernel(mode) && IsForwardedByFuse(mode) ? Errno.OK : Errno.EOPNOTSUPP;
    }

    /// <summary>The VFS's own rules: one operation, with KEEP_SIZE where that operation takes it.</summary>
    public static bool IsValidForKernel(int mode)
    {
        if ((mode & ~(OperationMask | KeepSize)) != 0)
        {
            return false;
        }

        bool keepSize = (mode & KeepSize) != 0;
        return (mode & OperationMask) switch
        {
            0 or UnshareRange or ZeroRange => true,
            PunchHole => keepSize, // a hole punched past the end would otherwise have to define a new size
            CollapseRange or InsertRange or WriteZeroes => !keepSize, // these move or define the size themselves
            _ => false, // two operations at once
        };
    }

    /// <summary>fuse_file_fallocate passes only KEEP_SIZE, PUNCH_HOLE and ZERO_RANGE to the daemon.</summary>
    public static bool IsForwardedByFuse(int mode) => (mode & ~(KeepSize | PunchHole | ZeroRange)) == 0;
}
