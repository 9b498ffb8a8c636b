using InSpatialFs.Interop;

namespace InSpatialFs.Storage.Posix;

/// <summary>
/// What mknod and symlink accept. References: may_mknod (fs/namei.c): a directory type is EPERM, an unknown type
/// EINVAL, type 0 means a regular file; getname (fs/namei.c) for the symlink target: empty is ENOENT, PATH_MAX (4096
/// with its NUL) or longer is ENAMETOOLONG.
/// </summary>
public static class NodeKinds
{
    /// <summary>The longest symlink target in bytes (PATH_MAX less the NUL).</summary>
    public const int MaxSymlinkLength = 4095;

    /// <summary>OK for 0 (a regular file), S_IFREG, S_IFIFO, S_IFSOCK, S_IFCHR and S_IFBLK.</summary>
    public static Errno CheckMknodType(uint type) => type switch
    {
        0 or LibC.S_IFREG or LibC.S_IFIFO or LibC.S_IFSOCK or LibC.S_IFCHR or LibC.S_IFBLK => Errno.OK,
        LibC.S_IFDIR => Errno.EPERM, // mkdir's job
        _ => Errno.EINVAL,
    };

    /// <summary>OK, or ENOENT (empty), ENAMETOOLONG (over 4095 bytes), EINVAL (a NUL no C string can hold).</summary>
    public static Errno CheckSymlinkTarget(ReadOnlySpan<byte> target)
    {
        if (target.IsEmpty)
        {
            return Errno.ENOENT;
        }

        if (target.Length > MaxSymlinkLength)
        {
            return Errno.ENAMETOOLONG;
        }

        return target.Contains((byte)0) ? Errno.EINVAL : Errno.OK;
    }
}
