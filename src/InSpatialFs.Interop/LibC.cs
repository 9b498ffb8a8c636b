using System.Runtime.InteropServices;

namespace InSpatialFs.Interop;

/// <summary>
/// Core libc calls shared by every layer. Area-specific calls live beside this file
/// (LibC.Fuse.cs, LibC.Host.cs, ...), one partial per area, so layers do not collide.
/// Read errno with <see cref="ErrnoExtensions.LastPInvoke"/> on the very next line.
/// </summary>
public static unsafe partial class LibC
{
    private const string Lib = "libc";

    public const int O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_ACCMODE = 3;
    public const int O_CREAT = 0x40, O_EXCL = 0x80, O_NOCTTY = 0x100, O_TRUNC = 0x200, O_APPEND = 0x400;
    public const int O_NONBLOCK = 0x800, O_DIRECT = 0x4000, O_LARGEFILE = 0x8000, O_DIRECTORY = 0x10000;
    public const int O_NOFOLLOW = 0x20000, O_NOATIME = 0x40000, O_CLOEXEC = 0x80000, O_PATH = 0x200000;
    public const int O_TMPFILE = 0x410000; // __O_TMPFILE | O_DIRECTORY
    /// <summary>Set by the kernel in FUSE OPEN flags when the open is for execve (__FMODE_EXEC).</summary>
    public const int FMODE_EXEC = 0x20;

    public const int AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100, AT_REMOVEDIR = 0x200, AT_SYMLINK_FOLLOW = 0x400, AT_EMPTY_PATH = 0x1000;

    public const uint S_IFMT = 0xF000, S_IFSOCK = 0xC000, S_IFLNK = 0xA000, S_IFREG = 0x8000, S_IFBLK = 0x6000;
    public const uint S_IFDIR = 0x4000, S_IFCHR = 0x2000, S_IFIFO = 0x1000, S_ISUID = 0x800, S_ISGID = 0x400, S_ISVTX = 0x200;

    public const int SEEK_SET = 0, SEEK_CUR = 1, SEEK_END = 2, SEEK_DATA = 3, SEEK_HOLE = 4;

    public const int RENAME_NOREPLACE = 1, RENAME_EXCHANGE = 2, RENAME_WHITEOUT = 4;

    public const int XATTR_CREATE = 1, XATTR_REPLACE = 2;

    public const int FALLOC_FL_KEEP_SIZE = 1, FALLOC_FL_PUNCH_HOLE = 2, FALLOC_FL_ZERO_RANGE = 0x10;

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int close(int fd);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int open(string path, int flags, uint mode);

    /// <summary>dup2(2): makes <paramref name="newFd"/> a copy of <paramref name="oldFd"/> (closing what it was).</summary>
    [LibraryImport(Lib, SetLastError = true)]
    public static partial int dup2(int oldFd, int newFd);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial nint read(int fd, byte* buf, nint count);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial nint write(int fd, byte* buf, nint count);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial nint writev(int fd, IoVec* iov, int iovcnt);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial nint pread(int fd, byte* buf, nint count, long offset);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial nint pwrite(int fd, byte* buf, nint count, long offset);

    public const uint MFD_CLOEXEC = 1;

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int memfd_create(byte* name, uint flags);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int ioctl(int fd, ulong request, void* arg);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial uint umask(uint mask);

    [LibraryImport(Lib, SetLastError = true)]
    private static partial int nanosleep(TimeSpec* request, TimeSpec* remaining);

    /// <summary>
    /// Sleeps one short period with a single nanosleep(2). Thread.Sleep under NativeAOT waits on the thread's own
    /// monitor (a condition variable: three futex calls per sleep), which a thread that polls every millisecond pays
    /// a thousand times a second. Not interruptible by Thread.Interrupt; a signal ends it early.
    /// </summary>
    public static void SleepBriefly(int milliseconds)
    {
        var t = new TimeSpec { Sec = milliseconds / 1000, Nsec = milliseconds % 1000 * 1_000_000L };
        nanosleep(&t, null);
    }

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int fcntl(int fd, int cmd, int arg);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int fsync(int fd);

    [LibraryImport(Lib)]
    public static partial int getpid();

    [LibraryImport(Lib)]
    public static partial int getppid();

    [LibraryImport(Lib)]
    public static partial uint geteuid();

    /// <summary>Opens a path as an owned descriptor with O_CLOEXEC added.</summary>
    public static Errno OpenFd(string path, int flags, uint mode, out SafeFd fd)
    {
        int raw = open(path, flags | O_CLOEXEC, mode);
        Errno e = ErrnoExtensions.LastPInvoke();
        fd = new SafeFd(raw);
        return raw < 0 ? e : Errno.OK;
    }
}

[StructLayout(LayoutKind.Sequential)]
public unsafe struct IoVec
{
    public void* Base;
    public nuint Length;
}
