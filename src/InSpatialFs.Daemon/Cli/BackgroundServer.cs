using System.Diagnostics;
using System.Globalization;
using InSpatialFs.Interop;

namespace InSpatialFs.Daemon.Cli;

/// <summary>
/// The FUSE-tool convention of returning once the mount is ready: starts `inspatialfs ARGS` detached (its own session,
/// stdin from /dev/null, stdout and stderr appended to a log in the instance's state directory, so a caller's pipes see
/// end of file) and waits until MOUNTPOINT is a FUSE mount or the server gave up. Used by `mount --background` (and so
/// by mount(8)'s fuse.inspatialfs helper and fstab lines) and by the overlay mount program.
/// </summary>
internal static class BackgroundServer
{
    public static readonly TimeSpan ReadyWithin = TimeSpan.FromSeconds(30);

    /// <returns>0 once mounted; 1 with the server's last log lines on stderr when it exited or never mounted.</returns>
    public static int Start(string who, IReadOnlyList<string> serverArgs, string mountpoint, string stateDir)
    {
        // The log is created beneath the checked state directory without following symlinks (0600, root's own), so the
        // shell's append below opens the file we made, not a link someone planted.
        const string LogName = "daemon.log";
        try
        {
            using SafeFd dir = TrustedPath.OpenDirectory(stateDir, create: true);
            TrustedPath.OpenFile(dir, stateDir, LogName, LibC.O_WRONLY | LibC.O_CREAT | LibC.O_APPEND).Dispose();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"{who}: cannot prepare the log under {stateDir}: {e.Message}");
            return ExitCodes.RuntimeFailure;
        }

        // mountinfo shows the resolved path; resolve before the mount exists (afterwards it would ask the new server).
        mountpoint = LibC.RealPath(mountpoint) ?? mountpoint;
        string log = Path.Combine(stateDir, LogName);
        long logStart = new FileInfo(log).Length;
        var start = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true, UseShellExecute = false };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add("log=$1; shift; setsid \"$@\" </dev/null >>\"$log\" 2>&1 & echo $!");
        start.ArgumentList.Add("sh");
        start.ArgumentList.Add(log);
        start.ArgumentList.Add(Environment.ProcessPath ?? "inspatialfs");
        foreach (string arg in serverArgs) start.ArgumentList.Add(arg);
        using Process shell = Process.Start(start)!;
        string pidText = shell.StandardOutput.ReadToEnd().Trim();
        shell.WaitForExit();
        if (!int.TryParse(pidText, NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
        {
            Console.Error.WriteLine($"{who}: could not start the server");
            return ExitCodes.RuntimeFailure;
        }

        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < ReadyWithin)
        {
            if (IsFuseMount(mountpoint) && Directory.Exists($"/proc/{pid}")) return ExitCodes.Ok;
            if (!Directory.Exists($"/proc/{pid}"))
            {
                Console.Error.WriteLine($"{who}: the server exited before {mountpoint} was mounted:");
                Console.Error.Write(Tail(log, logStart));
                return ExitCodes.RuntimeFailure;
            }

            Thread.Sleep(5);
        }

        Console.Error.WriteLine($"{who}: {mountpoint} was not mounted within {ReadyWithin.TotalSeconds:0} s (server pid {pid}, log {log})");
        return ExitCodes.RuntimeFailure;
    }

    public static bool IsFuseMount(string mountpoint) =>
        File.ReadLines("/proc/self/mountinfo").Any(line => line.Split(' ') is { Length: > 9 } f && Unescape(f[4]) == mountpoint && line.Contains(" - fuse", StringComparison.Ordinal));

    /// <summary>mountinfo writes space, tab, newline and backslash in paths as \ooo.</summary>
    private static string Unescape(string field) =>
        field.Replace("\\040", " ", StringComparison.Ordinal).Replace("\\011", "\t", StringComparison.Ordinal)
             .Replace("\\012", "\n", StringComparison.Ordinal).Replace("\\134", "\\", StringComparison.Ordinal);

    /// <summary>What this start wrote to the log (not an earlier instance's lines), at most its last 15 lines.</summary>
    private static string Tail(string log, long from)
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
}
