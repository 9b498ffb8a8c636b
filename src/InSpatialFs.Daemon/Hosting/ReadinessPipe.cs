using System.Globalization;
using InSpatialFs.Interop;

namespace InSpatialFs.Daemon.Hosting;

/// <summary>
/// How a server started in the background (<c>mount --background</c>, the overlay mount program) tells its starter that
/// the mount serves: the starter passes the write end of a pipe as a descriptor named by $INSPATIALFS_READY_FD, and the
/// server writes one byte to it once INIT is answered, then closes it. The starter returns at that instant instead of
/// polling the mount table, and an exit before it shows as end of file on the pipe.
/// A server that detached itself (native/keeper/early-detach.c) moves its stdio to its log before it starts serving
/// (<see cref="DetachStdio"/>), keeping only a copy of its caller's stderr to say why it failed, until it serves.
/// </summary>
internal static class ReadinessPipe
{
    public const string Variable = "INSPATIALFS_READY_FD";

    /// <summary>Set (to 1) by native/keeper/early-detach.c in the forked child: this process is already the detached server.</summary>
    public const string EarlyDetachedVariable = "INSPATIALFS_EARLY_DETACHED";

    /// <summary>The byte the server writes when it serves.</summary>
    public const byte ReadyByte = (byte)'R';

    // The caller's stderr, held by a detached server until it serves (-1: none).
    private static int _callerStderr = -1;

    /// <summary>True (once: the variable is removed) when native code detached this process before the runtime started.</summary>
    public static bool TakeEarlyDetached()
    {
        bool detached = Environment.GetEnvironmentVariable(EarlyDetachedVariable) == "1";
        Environment.SetEnvironmentVariable(EarlyDetachedVariable, null); // not inherited by anything this process starts
        return detached;
    }

    /// <summary>
    /// Makes <paramref name="stdio"/> this process's stdin, stdout and stderr, keeping a close-on-exec copy of the
    /// caller's stderr until the ready byte (<see cref="ReportUnready"/>). Call it before anything writes to the
    /// console: .NET's console streams and the console logger hold duplicates of the descriptors they first saw, and a
    /// duplicate of the caller's pipe would keep the caller waiting for end of file after it returned.
    /// </summary>
    public static void DetachStdio(ServerStdio stdio)
    {
        int log = (int)stdio.Log.DangerousGetHandle();
        // A server its keeper restarted writes to the log already (the keeper's stdio, X_INSPATIALFS_STDIO): no caller
        // to tell, and a failure's tail would only be copied into the log it came from.
        _callerStderr = SameFile(2, log) ? -1 : LibC.fcntl(2, LibC.F_DUPFD_CLOEXEC, 3);
        _ = LibC.dup2(stdio.Stdin.Fd, 0);
        _ = LibC.dup2(log, 1);
        _ = LibC.dup2(log, 2);
        // Console.Out and Console.Error, if already made, write to duplicates of what 1 and 2 were: make them anew (they
        // live as long as the process) and close the earlier ones. (Made only now, the earlier ones are the log's.)
        TextWriter earlierOut = Console.Out, earlierError = Console.Error;
#pragma warning disable CA2000
        Console.SetOut(new StreamWriter(Console.OpenStandardOutput()) { AutoFlush = true });
        Console.SetError(new StreamWriter(Console.OpenStandardError()) { AutoFlush = true });
#pragma warning restore CA2000
        earlierOut.Dispose();
        earlierError.Dispose();
    }

    private static unsafe bool SameFile(int a, int b)
    {
        StatX x, y;
        byte empty = 0;
        const uint basicStats = 0x7ffu; // STATX_BASIC_STATS: dev and ino are always filled
        return LibC.statx(a, &empty, LibC.AT_EMPTY_PATH, basicStats, &x) == 0 && LibC.statx(b, &empty, LibC.AT_EMPTY_PATH, basicStats, &y) == 0
            && x.Ino == y.Ino && x.DevMajor == y.DevMajor && x.DevMinor == y.DevMinor;
    }

    /// <summary>
    /// Closes this server's copy of its caller's stderr: it serves, and its caller (or its keeper, on its behalf) is about
    /// to be told so; from then on nothing here may hold the caller's pipe. Idempotent.
    /// </summary>
    public static void ReleaseCallerStderr()
    {
        if (Interlocked.Exchange(ref _callerStderr, -1) is int callerStderr and >= 0)
        {
            _ = LibC.close(callerStderr);
        }
    }

    /// <summary>A detached server that ended before it served: tells its caller why (no-op once it served, or when not detached).</summary>
    public static unsafe void ReportUnready(Func<string> message)
    {
        int fd = Interlocked.Exchange(ref _callerStderr, -1);
        if (fd < 0)
        {
            return;
        }

        byte[] text = System.Text.Encoding.UTF8.GetBytes(message());
        fixed (byte* p = text)
        {
            for (nint done = 0; done < text.Length;)
            {
                nint n = LibC.write(fd, p + done, text.Length - done);
                if (n <= 0) break;
                done += n;
            }
        }

        _ = LibC.close(fd);
    }

    /// <summary>
    /// Before this process execs the keeper: the readiness pipe (when one was passed, and is one) stays open across the
    /// exec. The early-detached overlay mount program's is close-on-exec, so without this the keeper would find the
    /// number naming nothing (or another descriptor) and its caller would see the pipe end without the ready byte.
    /// </summary>
    public static void KeepAcrossExec()
    {
        if (PipeNamedBy(Environment.GetEnvironmentVariable(Variable)) is int fd)
        {
            _ = LibC.fcntl(fd, LibC.F_SETFD, 0);
        }
    }

    /// <summary>
    /// The descriptor <paramref name="value"/> (the variable's) names, when it is a pipe: a number that names some other
    /// descriptor (a stale variable) is left alone.
    /// </summary>
    private static unsafe int? PipeNamedBy(string? value)
    {
        if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int fd) || fd < 3)
        {
            return null;
        }

        StatX st;
        byte empty = 0;
        return LibC.statx(fd, &empty, LibC.AT_EMPTY_PATH, 0x1u /* STATX_TYPE */, &st) == 0 && (st.Mode & LibC.S_IFMT) == LibC.S_IFIFO ? fd : null;
    }

    /// <summary>Writes the ready byte to the descriptor the starter passed (once; no-op when none was passed).</summary>
    public static unsafe void SignalReady()
    {
        string? value = Environment.GetEnvironmentVariable(Variable);
        if (value is null)
        {
            return;
        }

        Environment.SetEnvironmentVariable(Variable, null); // not inherited by anything this process starts
        ReleaseCallerStderr(); // before the byte: once its caller returns, nothing here holds the caller's pipe

        if (PipeNamedBy(value) is not int fd)
        {
            return;
        }

        byte ready = ReadyByte;
        _ = LibC.write(fd, &ready, 1);
        _ = LibC.close(fd);
    }
}
