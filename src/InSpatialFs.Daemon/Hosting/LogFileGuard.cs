using InSpatialFs.Interop;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.Daemon.Hosting;

/// <summary>
/// Keeps a detached server's log (<c>STATE_DIR/daemon.log</c>, its stdout and stderr; see <see cref="ServerStdio"/>) from
/// filling the state directory's disk, which a full disk would share with the journals a restart needs. Past
/// <see cref="Cap"/> its lines move to <c>daemon.log.1</c> (replacing the earlier ones there) and the log starts empty:
/// at most about twice the cap on disk. Copy, then truncate, as logrotate's copytruncate: every process writing the log
/// (the keeper, the server, a server the keeper restarted) shares the one open file, appended to, so none has to reopen
/// anything; a line written between the copy and the truncation is lost.
/// Active only while stderr is that very file (the same inode): under systemd or on a terminal there is nothing to guard.
/// </summary>
internal sealed unsafe class LogFileGuard
{
    /// <summary>Size past which the log is rotated.</summary>
    public const long DefaultCap = 16L << 20;

    /// <summary>Where the rotated lines go, next to the log.</summary>
    public const string RotatedName = ServerStdio.LogName + ".1";

    private readonly string _stateDir;
    private readonly ILogger _log;
    private readonly object _gate = new();

    private LogFileGuard(string stateDir, long cap, ILogger log)
    {
        _stateDir = stateDir;
        Cap = cap;
        _log = log;
    }

    public long Cap { get; }

    /// <summary>A guard when stderr is <c>STATE_DIR/daemon.log</c>, else null.</summary>
    public static LogFileGuard? ForStateDirectory(string stateDir, ILogger log, long cap = DefaultCap)
    {
        if (!Stat(2, null, out StatX err) || (err.Mode & LibC.S_IFMT) != LibC.S_IFREG)
        {
            return null;
        }

        using SafeFd dir = TrustedPathOrNull(stateDir);
        if (dir.IsInvalid || !Stat(dir.Fd, ServerStdio.LogName, out StatX named))
        {
            return null;
        }

        bool same = named.Ino == err.Ino && named.DevMajor == err.DevMajor && named.DevMinor == err.DevMinor;
        return same ? new LogFileGuard(stateDir, cap, log) : null;
    }

    /// <summary>Rotates when the log has passed the cap; true when it did.</summary>
    public bool Check()
    {
        lock (_gate)
        {
            if (!Stat(2, null, out StatX st) || (long)st.Size <= Cap)
            {
                return false;
            }

            try
            {
                Rotate((long)st.Size);
                return true;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Log.LogRotationFailed(_log, Path.Combine(_stateDir, ServerStdio.LogName), e.Message);
                return false;
            }
        }
    }

    private void Rotate(long size)
    {
        // The log as it is, read through our own descriptor (no name resolved), into daemon.log.1 beneath the checked state
        // directory (no symlink followed, 0600, refused if hard-linked elsewhere).
        if (LibC.OpenFd("/proc/self/fd/2", LibC.O_RDONLY, 0, out SafeFd source) != Errno.OK)
        {
            source.Dispose();
            throw new IOException($"cannot read the log back: {ErrnoExtensions.LastPInvoke()}");
        }

        using (source)
        using (SafeFd dir = TrustedPath.OpenDirectory(_stateDir, create: false))
        using (Microsoft.Win32.SafeHandles.SafeFileHandle target = TrustedPath.OpenFile(dir, _stateDir, RotatedName, LibC.O_WRONLY | LibC.O_CREAT | LibC.O_TRUNC))
        {
            int targetFd = (int)target.DangerousGetHandle();
            long copied = 0;
            // What the log held when it was found past the cap: a writer that keeps appending is not chased (its lines
            // after this point are the ones the truncation may drop).
            while (copied < size)
            {
                nint n = LibC.copy_file_range(source.Fd, null, targetFd, null, (nint)Math.Min(size - copied, 1 << 20), 0);
                if (n < 0)
                {
                    throw new IOException($"cannot copy the log to {RotatedName}: {ErrnoExtensions.LastPInvoke()}");
                }

                if (n == 0)
                {
                    break;
                }

                copied += n;
            }

            if (LibC.ftruncate(2, 0) != 0)
            {
                throw new IOException($"cannot empty the log: {ErrnoExtensions.LastPInvoke()}");
            }

            Log.LogRotated(_log, Path.Combine(_stateDir, ServerStdio.LogName), size >> 20, Cap >> 20, RotatedName, copied);
        }
    }

    private static SafeFd TrustedPathOrNull(string stateDir)
    {
        try
        {
            return TrustedPath.OpenDirectory(stateDir, create: false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return new SafeFd(-1);
        }
    }

    private static bool Stat(int dirFd, string? name, out StatX st)
    {
        byte* path = stackalloc byte[256];
        int flags = LibC.AT_SYMLINK_NOFOLLOW;
        if (name is null)
        {
            path[0] = 0;
            flags |= LibC.AT_EMPTY_PATH;
        }
        else
        {
            int n = System.Text.Encoding.UTF8.GetBytes(name, new Span<byte>(path, 255));
            path[n] = 0;
        }

        fixed (StatX* p = &st)
        {
            return LibC.statx(dirFd, path, flags, LibC.STATX_BASIC_STATS, p) == 0;
        }
    }
}
