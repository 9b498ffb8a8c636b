using System.Runtime.InteropServices;

namespace InSpatialFs.Interop;

/// <summary>
/// Descriptor-relative host access for the host passthrough backend (§10 of the protocol reference):
/// openat2, the *at family, file handles, statx and the 6.13 *xattrat calls. Calls without a glibc
/// wrapper (openat2, fchmodat2, utimensat with an empty path, *xattrat) go through syscall(2).
/// </summary>
public static unsafe partial class LibC
{
    public const long SYS_utimensat = 280, SYS_openat2 = 437, SYS_fchmodat2 = 452;
    public const long SYS_setxattrat = 463, SYS_getxattrat = 464, SYS_listxattrat = 465, SYS_removexattrat = 466;

    public const ulong RESOLVE_NO_XDEV = 0x01, RESOLVE_NO_MAGICLINKS = 0x02, RESOLVE_NO_SYMLINKS = 0x04;
    public const ulong RESOLVE_BENEATH = 0x08, RESOLVE_IN_ROOT = 0x10, RESOLVE_CACHED = 0x20;

    public const uint STATX_BASIC_STATS = 0x7ff, STATX_MNT_ID = 0x1000;
    public const int AT_STATX_SYNC_AS_STAT = 0;
    public const int MAX_HANDLE_SZ = 128;
    public const int F_DUPFD_CLOEXEC = 1030;
    public const long UTIME_NOW = (1L << 30) - 1, UTIME_OMIT = (1L << 30) - 2;

    [LibraryImport(Lib, SetLastError = true)]
    public static partial long syscall(long number, long a1, long a2, long a3, long a4, long a5, long a6);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int openat(int dirfd, byte* path, int flags, uint mode);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int statx(int dirfd, byte* path, int flags, uint mask, StatX* buf);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int fchownat(int dirfd, byte* path, uint owner, uint group, int flags);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int mkdirat(int dirfd, byte* path, uint mode);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int mknodat(int dirfd, byte* path, uint mode, ulong dev);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int symlinkat(byte* target, int newdirfd, byte* linkpath);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial nint readlinkat(int dirfd, byte* path, byte* buf, nint size);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int unlinkat(int dirfd, byte* path, int flags);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int renameat2(int olddirfd, byte* oldpath, int newdirfd, byte* newpath, uint flags);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int linkat(int olddirfd, byte* oldpath, int newdirfd, byte* newpath, int flags);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial nint getdents64(int fd, byte* dirp, nint count);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int name_to_handle_at(int dirfd, byte* path, byte* handle, int* mountId, int flags);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int open_by_handle_at(int mountFd, byte* handle, int flags);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int ftruncate(int fd, long length);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int fallocate(int fd, int mode, long offset, long len);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial long lseek(int fd, long offset, int whence);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int fdatasync(int fd);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial nint copy_file_range(int fdIn, long* offIn, int fdOut, long* offOut, nint len, uint flags);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int fstatfs(int fd, StatFsBuf* buf);

    /// <summary>openat2(2): <paramref name="path"/> is a NUL-terminated single name.</summary>
    public static int openat2(int dirfd, byte* path, OpenHow* how)
        => (int)syscall(SYS_openat2, dirfd, (long)path, (long)how, sizeof(OpenHow), 0, 0);

    public static int fchmodat2(int dirfd, byte* path, uint mode, int flags)
        => (int)syscall(SYS_fchmodat2, dirfd, (long)path, mode, flags, 0, 0);

    /// <summary>The raw utimensat syscall: glibc's wrapper refuses an empty path with AT_EMPTY_PATH.</summary>
    public static int utimensat_raw(int dirfd, byte* path, TimeSpec* times, int flags)
        => (int)syscall(SYS_utimensat, dirfd, (long)path, (long)times, flags, 0, 0);

    public static long getxattrat(int dirfd, byte* path, int atFlags, byte* name, XattrArgs* args)
        => syscall(SYS_getxattrat, dirfd, (long)path, atFlags, (long)name, (long)args, sizeof(XattrArgs));

    public static int setxattrat(int dirfd, byte* path, int atFlags, byte* name, XattrArgs* args)
        => (int)syscall(SYS_setxattrat, dirfd, (long)path, atFlags, (long)name, (long)args, sizeof(XattrArgs));

    public static long listxattrat(int dirfd, byte* path, int atFlags, byte* list, nint size)
        => syscall(SYS_listxattrat, dirfd, (long)path, atFlags, (long)list, size, 0);

    public static int removexattrat(int dirfd, byte* path, int atFlags, byte* name)
        => (int)syscall(SYS_removexattrat, dirfd, (long)path, atFlags, (long)name, 0, 0);
}

/// <summary>struct open_how (24 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct OpenHow
{
    public ulong Flags;
    public ulong Mode;
    public ulong Resolve;
}

/// <summary>struct xattr_args (16 bytes) of the *xattrat calls.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct XattrArgs
{
    public ulong Value;
    public uint Size;
    public uint Flags;
}

[StructLayout(LayoutKind.Sequential)]
public struct TimeSpec
{
    public long Sec;
    public long Nsec;
}

[StructLayout(LayoutKind.Sequential)]
public struct StatXTimestamp
{
    public long Sec;
    public uint Nsec;
    public int Reserved;
}

/// <summary>struct statx (256 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Size = 256)]
public struct StatX
{
    public uint Mask;
    public uint BlkSize;
    public ulong Attributes;
    public uint Nlink;
    public uint Uid;
    public uint Gid;
    public ushort Mode;
    public ushort Spare0;
    public ulong Ino;
    public ulong Size;
    public ulong Blocks;
    public ulong AttributesMask;
    public StatXTimestamp Atime;
    public StatXTimestamp Btime;
    public StatXTimestamp Ctime;
    public StatXTimestamp Mtime;
    public uint RdevMajor;
    public uint RdevMinor;
    public uint DevMajor;
    public uint DevMinor;
    public ulong MntId;
}

/// <summary>struct statfs (x86_64, 120 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct StatFsBuf
{
    public long Type;
    public long Bsize;
    public ulong Blocks;
    public ulong Bfree;
    public ulong Bavail;
    public ulong Files;
    public ulong Ffree;
    public long Fsid;
    public long NameLen;
    public long Frsize;
    public long Flags;
    public fixed long Spare[4];
}
