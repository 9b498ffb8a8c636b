using InSpatialFs.Daemon.Hosting;
using InSpatialFs.Interop;
using Microsoft.Win32.SafeHandles;

namespace InSpatialFs.Daemon.Cli;

/// <summary>
/// The FUSE-tool convention of returning once the mount is ready: starts `inspatialfs ARGS` detached (posix_spawn into
/// its own session, stdin from /dev/null, stdout and stderr appended to a log in the instance's state directory, so a
/// caller's pipes see end of file) and waits until the server says it serves (<see cref="ReadinessPipe"/>) or exits.
/// Used by `mount --background` (and so by mount(8)'s fuse.inspatialfs helper and fstab lines) and by the overlay mount
/// program, where every millisecond here delays the container's start: no shell, no setsid(1), no polling.
/// </summary>
internal static class BackgroundServer
{
    public static readonly TimeSpan ReadyWithin = TimeSpan.FromSeconds(30);

    /// <summary>Variables a detached server must not inherit: the caller's systemd notification and socket-activation state.</summary>
    private static readonly string[] NotInherited = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", ReadinessPipe.Variable];

    /// <param name="keeper">The keeper to start the server under (it takes the readiness pipe over), or null for none.</param>
    /// <returns>0 once mounted; 1 with the server's last log lines on stderr when it exited or never mounted.</returns>
    public static unsafe int Start(string who, IReadOnlyList<string> serverArgs, string mountpoint, string stateDir, string? keeper = null)
    {
        string log = Path.Combine(stateDir, ServerStdio.LogName);
        using ServerStdio? stdio = ServerStdio.Open(who, stateDir);
        if (stdio is null)
        {
            return ExitCodes.RuntimeFailure;
        }

        // mountinfo shows the resolved path; resolve before the mount exists (afterwards it would ask the new server).
        string resolved = LibC.RealPath(mountpoint) ?? mountpoint;
        long logStart = RandomAccess.GetLength(stdio.Log);
        int* ends = stackalloc int[2];
        if (LibC.pipe2(ends, LibC.O_CLOEXEC) != 0)
        {
            Console.Error.WriteLine($"{who}: cannot make the readiness pipe: {ErrnoExtensions.LastPInvoke()}");
            return ExitCodes.RuntimeFailure;
        }

        using var readyRead = new SafeFd(ends[0]);
        int pid;
        using (var readyWrite = new SafeFd(ends[1]))
        {
            const int ReadyFdInChild = 3;
            string self = Environment.ProcessPath ?? "/proc/self/exe";
            // The keeper directly, not this binary becoming it: one start of the .NET server fewer (10-20 ms).
            string program = keeper ?? self;
            string[] argv = keeper != null ? [keeper, "--", self, .. serverArgs] : [self, .. serverArgs];
            string[] environment = [.. Environment.GetEnvironmentVariables().Keys.Cast<string>()
                .Where(k => !NotInherited.Contains(k))
                .Select(k => $"{k}={Environment.GetEnvironmentVariable(k)}"),
                $"{ReadinessPipe.Variable}={ReadyFdInChild}"];
            int logFd = (int)stdio.Log.DangerousGetHandle();
            Errno spawned = LibC.SpawnDetached(program, argv, environment, [stdio.Stdin.Fd, logFd, logFd, readyWrite.Fd], out pid);
            if (spawned != Errno.OK)
            {
                Console.Error.WriteLine($"{who}: could not start the server ({program}): {spawned}");
                return ExitCodes.RuntimeFailure;
            }
        }

        // Our copy of the write end is closed: end of file on the pipe now means the server is gone (or closed it unready).
        switch (WaitForReady(readyRead, ReadyWithin))
        {
            case true when IsFuseMount(resolved):
                return ExitCodes.Ok;
            case true:
                Console.Error.WriteLine($"{who}: the server (pid {pid}) reported ready but {mountpoint} is not a FUSE mount; log {log}");
                return ExitCodes.RuntimeFailure;
            case false:
                Console.Error.WriteLine($"{who}: the server exited before {mountpoint} was mounted:");
                Console.Error.Write(ServerStdio.Tail(log, logStart));
                return ExitCodes.RuntimeFailure;
            case null:
                Console.Error.WriteLine($"{who}: {mountpoint} was not mounted within {ReadyWithin.TotalSeconds:0} s (server pid {pid}, log {log})");
                return ExitCodes.RuntimeFailure;
        }
    }

    /// <summary>True: the ready byte came. False: end of file first (the server exited or closed the pipe). Null: timed out.</summary>
    private static unsafe bool? WaitForReady(SafeFd readEnd, TimeSpan within)
    {
        long deadline = Environment.TickCount64 + (long)within.TotalMilliseconds;
        while (true)
        {
            var poll = new PollFd { Fd = readEnd.Fd, Events = LibC.POLLIN };
            int timeout = (int)Math.Max(0, deadline - Environment.TickCount64);
            int n = LibC.poll(&poll, 1, timeout);
            Errno e = ErrnoExtensions.LastPInvoke();
            if (n < 0 && e == Errno.EINTR)
            {
                continue;
            }

            if (n <= 0)
            {
                return null;
            }

            byte got;
            nint read = LibC.read(readEnd.Fd, &got, 1);
            if (read < 0 && ErrnoExtensions.LastPInvoke() == Errno.EINTR)
            {
                continue;
            }

            return read == 1 && got == ReadinessPipe.ReadyByte;
        }
    }

    public static bool IsFuseMount(string mountpoint) =>
        File.ReadLines("/proc/self/mountinfo").Any(line => line.Split(' ') is { Length: > 9 } f && Unescape(f[4]) == mountpoint && line.Contains(" - fuse", StringComparison.Ordinal));

    /// <summary>mountinfo writes space, tab, newline and backslash in paths as \ooo.</summary>
    private static string Unescape(string field) =>
        field.Replace("\\040", " ", StringComparison.Ordinal).Replace("\\011", "\t", StringComparison.Ordinal)
             .Replace("\\012", "\n", StringComparison.Ordinal).Replace("\\134", "\\", StringComparison.Ordinal);
}
