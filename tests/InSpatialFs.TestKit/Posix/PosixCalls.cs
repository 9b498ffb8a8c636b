using System.Runtime.InteropServices;
using System.Text;
using InSpatialFs.Interop;

namespace InSpatialFs.TestKit.Posix;

/// <summary>struct stat on x86_64 (144 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct PosixStat
{
    public ulong Dev;
    public ulong Ino;
    public ulong Nlink;
    public uint Mode;
    public uint Uid;
    public uint Gid;
    public int Pad0;
    public ulong Rdev;
    public long Size;
    public long BlkSize;
    public long Blocks;
    public long AtimeSec;
    public long AtimeNsec;
    public long MtimeSec;
    public long MtimeNsec;
    public long CtimeSec;
    public long CtimeNsec;
    private long _reserved0;
    private long _reserved1;
    private long _reserved2;

    public readonly uint Type => Mode & LibC.S_IFMT;
}

/// <summary>struct statvfs on x86_64 (112 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct PosixStatVfs
{
    public ulong Bsize;
    public ulong Frsize;
    public ulong Blocks;
    public ulong Bfree;
    public ulong Bavail;
    public ulong Files;
    public ulong Ffree;
    public ulong Favail;
    public ulong Fsid;
    public ulong Flag;
    public ulong NameMax;
    private fixed int _spare[6];
}

[StructLayout(LayoutKind.Sequential)]
public struct PosixTimespec
{
    public long Seconds;
    public long Nanoseconds;
}

/// <summary>
/// The syscalls programs use on a filesystem that System.IO does not expose (or exposes without the errno).
/// Each wrapper returns the errno so a test can assert the exact error.
/// </summary>
public static unsafe partial class PosixCalls
{
    private const string Lib = "libc";

    public const int R_OK = 4, W_OK = 2, X_OK = 1, F_OK = 0;
    public const long UTIME_NOW = (1L << 30) - 1;

    public static Errno Mkdir(string path, uint mode) => Result(mkdir(path, mode));

    public static Errno Rmdir(string path) => Result(rmdir(path));

    public static Errno Unlink(string path) => Result(unlink(path));

    public static Errno Link(string existing, string newPath) => Result(link(existing, newPath));

    public static Errno Symlink(string target, string linkPath) => Result(symlink(target, linkPath));

    public static Errno ReadLink(string path, out string target)
    {
        target = "";
        var buffer = new byte[8192];
        nint length;
        fixed (byte* p = buffer)
        {
            length = readlink(path, p, buffer.Length);
        }
        var error = ErrnoExtensions.LastPInvoke();
        if (length < 0)
        {
            return error;
        }
        target = Encoding.UTF8.GetString(buffer, 0, (int)length);
        return Errno.OK;
    }

    public static Errno Mknod(string path, uint mode, ulong device) => Result(mknod(path, mode, device));

    /// <summary>makedev(3) for the Linux encoding.</summary>
    public static ulong MakeDev(uint major, uint minor)
        => ((ulong)(major & 0xfffff000) << 32) | ((ulong)(major & 0xfff) << 8) | ((ulong)(minor & 0xffffff00) << 12) | (minor & 0xff);

    public static Errno Rename(string from, string to, uint flags = 0) => Result(renameat2(LibC.AT_FDCWD, from, LibC.AT_FDCWD, to, flags));

    public static Errno Open(string path, int flags, uint mode, out int fd)
    {
        fd = LibC.open(path, flags | LibC.O_CLOEXEC, mode);
        var error = ErrnoExtensions.LastPInvoke();
        return fd < 0 ? error : Errno.OK;
    }

    public static void Close(int fd) => LibC.close(fd);

    public static Errno PWrite(int fd, ReadOnlySpan<byte> data, long offset)
    {
        nint written;
        fixed (byte* p = data)
        {
            written = LibC.pwrite(fd, p, data.Length, offset);
        }
        var error = ErrnoExtensions.LastPInvoke();
        return written < 0 ? error : written == data.Length ? Errno.OK : Errno.EIO;
    }

    public static Errno PRead(int fd, Span<byte> buffer, long offset, out int read)
    {
        nint count;
        fixed (byte* p = buffer)
        {
            count = LibC.pread(fd, p, buffer.Length, offset);
        }
        var error = ErrnoExtensions.LastPInvoke();
        read = (int)Math.Max(0, count);
        return count < 0 ? error : Errno.OK;
    }

    public static Errno Fsync(int fd) => Result(fsync(fd));

    public static Errno Lstat(string path, out PosixStat stat) => Result(lstat(path, out stat));

    public static Errno Stat(string path, out PosixStat stat) => Result(stat_(path, out stat));

    public static Errno Fstat(int fd, out PosixStat stat) => Result(fstat(fd, out stat));

    public static Errno StatVfs(string path, out PosixStatVfs stat) => Result(statvfs(path, out stat));

    public static Errno Truncate(string path, long length) => Result(truncate(path, length));

    public static Errno Chmod(string path, uint mode) => Result(chmod(path, mode));

    public static Errno Lchown(string path, uint uid, uint gid) => Result(lchown(path, uid, gid));

    public static Errno Access(string path, int mode) => Result(access(path, mode));

    /// <summary>utimensat(AT_FDCWD, path, {atime, mtime}, AT_SYMLINK_NOFOLLOW).</summary>
    public static Errno SetTimes(string path, PosixTimespec atime, PosixTimespec mtime)
    {
        var times = stackalloc PosixTimespec[2];
        times[0] = atime;
        times[1] = mtime;
        return Result(utimensat(LibC.AT_FDCWD, path, times, LibC.AT_SYMLINK_NOFOLLOW));
    }

    public static Errno SetXattr(string path, string name, ReadOnlySpan<byte> value, int flags)
    {
        int rc;
        fixed (byte* p = value)
        {
            rc = lsetxattr(path, name, p, value.Length, flags);
        }
        return Result(rc);
    }

    /// <summary>getxattr; an empty buffer asks for the size.</summary>
    public static Errno GetXattr(string path, string name, Span<byte> buffer, out int size)
    {
        nint rc;
        fixed (byte* p = buffer)
        {
            rc = lgetxattr(path, name, buffer.IsEmpty ? null : p, buffer.Length);
        }
        var error = ErrnoExtensions.LastPInvoke();
        size = (int)Math.Max(0, rc);
        return rc < 0 ? error : Errno.OK;
    }

    public static Errno ListXattr(string path, Span<byte> buffer, out int size)
    {
        nint rc;
        fixed (byte* p = buffer)
        {
            rc = llistxattr(path, buffer.IsEmpty ? null : p, buffer.Length);
        }
        var error = ErrnoExtensions.LastPInvoke();
        size = (int)Math.Max(0, rc);
        return rc < 0 ? error : Errno.OK;
    }

    public static Errno RemoveXattr(string path, string name) => Result(lremovexattr(path, name));

    /// <summary>linkat(AT_FDCWD, "/proc/self/fd/N", AT_FDCWD, path, AT_SYMLINK_FOLLOW): names an O_TMPFILE.</summary>
    public static Errno LinkFd(int fd, string path)
        => Result(linkat(LibC.AT_FDCWD, $"/proc/self/fd/{fd}", LibC.AT_FDCWD, path, LibC.AT_SYMLINK_FOLLOW));

    public static Errno Fallocate(int fd, int mode, long offset, long length) => Result(fallocate(fd, mode, offset, length));

    public static Errno Lseek(int fd, long offset, int whence, out long result)
    {
        result = lseek(fd, offset, whence);
        var error = ErrnoExtensions.LastPInvoke();
        return result < 0 ? error : Errno.OK;
    }

    public static Errno CopyFileRange(int fdIn, long offsetIn, int fdOut, long offsetOut, long length, out long copied)
    {
        copied = copy_file_range(fdIn, &offsetIn, fdOut, &offsetOut, (nint)length, 0);
        var error = ErrnoExtensions.LastPInvoke();
        return copied < 0 ? error : Errno.OK;
    }

    private static Errno Result(int rc)
    {
        var error = ErrnoExtensions.LastPInvoke();
        return rc == 0 ? Errno.OK : error;
    }

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int mkdir(string path, uint mode);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int rmdir(string path);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int unlink(string path);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int link(string existing, string newPath);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int symlink(string target, string linkPath);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint readlink(string path, byte* buffer, nint size);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int mknod(string path, uint mode, ulong device);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int renameat2(int oldDirFd, string oldPath, int newDirFd, string newPath, uint flags);

    [LibraryImport(Lib, SetLastError = true)]
    private static partial int fsync(int fd);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int lstat(string path, out PosixStat stat);

    [LibraryImport(Lib, EntryPoint = "stat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int stat_(string path, out PosixStat stat);

    [LibraryImport(Lib, SetLastError = true)]
    private static partial int fstat(int fd, out PosixStat stat);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int statvfs(string path, out PosixStatVfs stat);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int truncate(string path, long length);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int chmod(string path, uint mode);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int lchown(string path, uint uid, uint gid);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int access(string path, int mode);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int utimensat(int dirFd, string path, PosixTimespec* times, int flags);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int lsetxattr(string path, string name, byte* value, nint size, int flags);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint lgetxattr(string path, string name, byte* value, nint size);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint llistxattr(string path, byte* list, nint size);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int lremovexattr(string path, string name);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int linkat(int oldDirFd, string oldPath, int newDirFd, string newPath, int flags);

    [LibraryImport(Lib, SetLastError = true)]
    private static partial int fallocate(int fd, int mode, long offset, long length);

    [LibraryImport(Lib, SetLastError = true)]
    private static partial long lseek(int fd, long offset, int whence);

    [LibraryImport(Lib, SetLastError = true)]
    private static partial nint copy_file_range(int fdIn, long* offsetIn, int fdOut, long* offsetOut, nint length, uint flags);
}
