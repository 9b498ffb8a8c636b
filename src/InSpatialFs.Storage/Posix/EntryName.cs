using InSpatialFs.Interop;

namespace InSpatialFs.Storage.Posix;

/// <summary>
/// What a single directory-entry name may be, for every backend and the proxy (issue 12: one POSIX core).
/// The kernel never hands a filesystem such a name through a path syscall, so the reference is the kernel's own
/// single-component lookup, <c>lookup_noperm_common</c> (formerly <c>lookup_one_common</c>, fs/namei.c), which is
/// what in-kernel callers like overlayfs and nfsd get: EACCES for an empty name, "." or "..", or a name holding
/// '/' or NUL; and <c>ext4_lookup</c>/<c>shmem</c>'s ENAMETOOLONG beyond NAME_MAX. Refusals of the first kind are
/// checked first, as the kernel does before the filesystem sees the length.
/// Kept apart on purpose: InSpatialFs.Fuse's FuseNotifier.CheckName checks names going the other way (to the kernel,
/// FUSE_NAME_MAX); a change to either is checked against the other.
/// </summary>
public static class EntryName
{
    /// <summary>NAME_MAX: the longest entry name in bytes (ext4, tmpfs, FUSE).</summary>
    public const int MaxLength = 255;

    /// <summary>OK, or the errno the kernel gives for this name (EACCES, ENAMETOOLONG).</summary>
    public static Errno Check(ReadOnlySpan<byte> name)
    {
        if (name.IsEmpty || IsDotOrDotDot(name) || name.IndexOfAny((byte)'/', (byte)0) >= 0)
        {
            return Errno.EACCES;
        }

        return name.Length > MaxLength ? Errno.ENAMETOOLONG : Errno.OK;
    }

    /// <summary>
    /// "..", or a name holding '/' or NUL: a name that would leave its directory if a host resolver saw it. The host
    /// backend reports these as escape attempts (the errno is <see cref="Check"/>'s, EACCES, either way).
    /// </summary>
    public static bool IsEscape(ReadOnlySpan<byte> name) => name.SequenceEqual(".."u8) || name.IndexOfAny((byte)'/', (byte)0) >= 0;

    public static bool IsDotOrDotDot(ReadOnlySpan<byte> name) => name.SequenceEqual("."u8) || name.SequenceEqual(".."u8);
}
