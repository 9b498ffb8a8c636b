using System.Runtime.InteropServices;

namespace InSpatialFs.Interop;

/// <summary>
/// Calls the daemon needs for its own files and for supervising its mounts: flock for the state-directory lock,
/// fchmod to tighten a directory, unshare(CLONE_FS) for a per-thread umask, statfs for the watchdog probe,
/// realpath to compare configured paths as the kernel resolves them.
/// </summary>
public static unsafe partial class LibC
{
    public const int LOCK_EX = 2, LOCK_NB = 4;
    public const int CLONE_FS = 0x200;
    public const int PATH_MAX = 4096;

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int flock(int fd, int operation);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int fchmod(int fd, uint mode);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int unshare(int flags);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int statfs(string path, StatFsBuf* buf);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial byte* realpath(string path, byte* resolved);

    /// <summary>realpath(3): the canonical path (symlinks, "." and ".." resolved), or null when it cannot be resolved.</summary>
    public static string? RealPath(string path)
    {
        byte* buffer = stackalloc byte[PATH_MAX];
        byte* resolved = realpath(path, buffer);
        return resolved == null ? null : Marshal.PtrToStringUTF8((nint)resolved);
    }

    /// <summary>
    /// Gives the calling thread its own umask of 0, once: <c>unshare(CLONE_FS)</c> detaches the thread's cwd/root/umask
    /// from the rest of the process, then <c>umask(0)</c> applies to this thread only. Host-backend creates then get
    /// exactly the mode the kernel sent (already masked by the caller's umask) without an extra chmod, while the rest
    /// of the daemon keeps the umask it was started with. Returns false when unshare is refused (a seccomp filter):
    /// the caller must then set modes explicitly, as it does anyway when the created mode differs.
    /// </summary>
    public static bool EnsureThreadUmaskZero()
    {
        if (t_umaskZero != 0)
        {
            return t_umaskZero > 0;
        }

        if (unshare(CLONE_FS) != 0)
        {
            t_umaskZero = -1;
            return false;
        }

        umask(0);
        t_umaskZero = 1;
        return true;
    }

    [ThreadStatic]
    private static int t_umaskZero; // 0 not tried, 1 this thread's umask is 0, -1 unshare refused
}
