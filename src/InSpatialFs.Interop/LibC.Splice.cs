using System.Runtime.InteropServices;

namespace InSpatialFs.Interop;

/// <summary>
/// Pipes and splice(2) for the DirectFS READ fallback: file data moves host descriptor → pipe → /dev/fuse by
/// page reference, never through managed memory.
/// </summary>
public static unsafe partial class LibC
{
    /// <summary>fcntl commands: set/get a pipe's capacity in bytes (F_LINUX_SPECIFIC_BASE + 7/8).</summary>
    public const int F_SETPIPE_SZ = 1031, F_GETPIPE_SZ = 1032;

    public const uint SPLICE_F_MOVE = 1, SPLICE_F_NONBLOCK = 2, SPLICE_F_MORE = 4;

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int pipe2(int* fds, int flags);

    /// <summary>splice(2); a null offset pointer means "the descriptor's own position" (required for pipes).</summary>
    [LibraryImport(Lib, SetLastError = true)]
    public static partial nint splice(int fdIn, long* offIn, int fdOut, long* offOut, nuint length, uint flags);
}
