using InSpatialFs.Daemon.Cli;
using InSpatialFs.Interop;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;

namespace InSpatialFs.Daemon.Hosting;

/// <summary>
/// A background server's stdio: /dev/null for stdin, and its log for stdout and stderr, so nothing it writes reaches (or
/// holds open) its starter's terminal or pipes. The log is created beneath the checked state directory (0600, no symlink
/// followed) and appended to.
/// </summary>
internal sealed class ServerStdio : IDisposable
{
    /// <summary>The log's name in the state directory.</summary>
    public const string LogName = "daemon.log";

    private ServerStdio(SafeFd stdin, SafeFileHandle log)
    {
        Stdin = stdin;
        Log = log;
    }

    public SafeFd Stdin { get; }

    public SafeFileHandle Log { get; }

    /// <summary>
    /// Runs <paramref name="serve"/> as a server detached from its caller before the runtime started
    /// (native/keeper/early-*.c): its stdio moves to the log in <paramref name="stateDir"/> (and its keeper's with it),
    /// as a spawned server's did; should it end before serving, its caller still learns why, from the log's new lines.
    /// </summary>
    public static int ServeDetached(string who, string stateDir, string mountpoint, Func<int> serve)
    {
        ArgumentNullException.ThrowIfNull(serve);
        string log = Path.Combine(stateDir, LogName);
        long logStart;
        using (ServerStdio? stdio = Open(who, stateDir))
        {
            if (stdio is null)
            {
                return ExitCodes.RuntimeFailure;
            }

            logStart = RandomAccess.GetLength(stdio.Log);
            ReadinessPipe.DetachStdio(stdio);
            KeeperLaunch.ShareStdio(stdio.Log);
        }

        int code = serve();
        ReadinessPipe.ReportUnready(() => $"{who}: the server exited before {mountpoint} was mounted:\n{Tail(log, logStart)}");
        return code;
    }

    /// <summary>Both opened, or null after saying why not on stderr (prefixed with <paramref name="who"/>).</summary>
    public static ServerStdio? Open(string who, string stateDir)
    {
        SafeFileHandle? log = null;
        SafeFd? devNull = null;
        try
        {
            try
            {
                // As the server itself opens it (Runtime.OwnPaths): what an earlier version left open below the default
                // base is tightened and said here, on the starter's terminal, rather than refused.
                using (ILoggerFactory logs = DaemonLogging.Create(LogLevel.Warning))
                using (SafeFd dir = Runtime.OwnPaths.OpenStateDirectory(stateDir, logs.CreateLogger("InSpatialFs.Daemon")))
                {
                    log = TrustedPath.OpenFile(dir, stateDir, LogName, LibC.O_WRONLY | LibC.O_CREAT | LibC.O_APPEND);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"{who}: cannot prepare the log under {stateDir}: {e.Message}");
                return null;
            }

            if (LibC.OpenFd("/dev/null", LibC.O_RDONLY, 0, out devNull) != Errno.OK)
            {
                Console.Error.WriteLine($"{who}: cannot open /dev/null");
                return null;
            }

            var stdio = new ServerStdio(devNull, log);
            (devNull, log) = (null, null);
            return stdio;
        }
        finally
        {
            devNull?.Dispose();
            log?.Dispose();
        }
    }

    /// <summary>What this start wrote to the log (not an earlier instance's lines), at most its last 15 lines.</summary>
    public static string Tail(string log, long from)
    {
        try
        {
            using var stream = new FileStream(log, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            stream.Seek(Math.Min(from, stream.Length), SeekOrigin.Begin);
            using var reader = new StreamReader(stream);
            string[] lines = reader.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
            return string.Join('\n', lines.TakeLast(15)) + "\n";
        }
        catch (IOException)
        {
            return "";
        }
    }

    public void Dispose()
    {
        Stdin.Dispose();
        Log.Dispose();
    }
}
