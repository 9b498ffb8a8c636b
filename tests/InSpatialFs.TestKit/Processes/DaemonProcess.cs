using System.Diagnostics;
using System.Text;

namespace InSpatialFs.TestKit.Processes;

/// <summary>
/// The real daemon (bin/inspatialfs, built by `make build` from this tree: <see cref="Binary"/> refuses another) running
/// as a child process. Start waits until the mount is live; Dispose always leaves no mount behind (SIGTERM, then fusectl
/// abort and lazy unmount).
/// </summary>
public sealed class DaemonProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private DaemonProcess(Process process, string mountPoint)
    {
        _process = process;
        MountPoint = mountPoint;
    }

    public string MountPoint { get; }

    public int Pid => _process.Id;

    /// <summary>
    /// The process serving the mount: under inspatialfs-keeper (kept mounts) the keeper's child, else the daemon itself.
    /// Signals meant to hang or crash the server (SIGSTOP, SIGKILL) go here; <see cref="Pid"/> is the instance's.
    /// </summary>
    public int ServerPid
    {
        get
        {
            string comm = File.ReadAllText($"/proc/{Pid}/comm").Trim();
            if (comm != "inspatialfs-kee")
            {
                return Pid;
            }

            string children = File.ReadAllText($"/proc/{Pid}/task/{Pid}/children").Trim();
            return int.Parse(children.Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        }
    }

    public bool HasExited => _process.HasExited;

    /// <summary>Everything the daemon wrote so far (stdout and stderr interleaved).</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public static string RepoRoot { get; } = FindRepoRoot();

    /// <summary>
    /// bin/inspatialfs, checked to be built from this tree's sources (see <see cref="DaemonBinary"/>): a stale one throws
    /// here, so every test that runs the daemon fails with "run make build" instead of testing old code.
    /// </summary>
    public static string Binary
    {
        get
        {
            string binary = Path.Combine(RepoRoot, "bin", "inspatialfs");
            DaemonBinary.EnsureCurrent(binary);
            return binary;
        }
    }

    /// <summary>Why mounted tests cannot run here, or null when they can.</summary>
    public static string? WhyCannotMount()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "not Linux";
        }

        if (!File.Exists("/dev/fuse"))
        {
            return "/dev/fuse is missing";
        }

        if (Environment.UserName != "root" && Shell.Run("id -u").StdOut.Trim() != "0")
        {
            return "mounted tests need root";
        }

        return File.Exists(Binary) ? null : $"{Binary} is missing (run `make build`)";
    }

    /// <summary>Skips the calling test with a clear reason when mounting is impossible here.</summary>
    public static void RequireMountable()
    {
        string? why = WhyCannotMount();
        if (why != null)
        {
            Assert.Ignore("mounted test skipped: " + why);
        }
    }

    /// <summary>Runs <c>inspatialfs mount ARGS MOUNTPOINT</c> and waits until the mount is live.</summary>
    public static DaemonProcess Start(string mountPoint, IEnumerable<string> arguments, TimeSpan? timeout = null, bool appendMountPoint = true,
        IReadOnlyDictionary<string, string>? environment = null) =>
        StartWith(Binary, mountPoint, arguments, timeout, appendMountPoint, environment);

    /// <summary>Like <see cref="Start"/>, through another program (a wrapper that sets up the daemon's environment, then execs it).</summary>
    public static DaemonProcess StartWith(string program, string mountPoint, IEnumerable<string> arguments, TimeSpan? timeout = null, bool appendMountPoint = true,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        _ = Binary; // a wrapper execs bin/inspatialfs too: refuse a stale one before it starts
        try
        {
            Directory.CreateDirectory(mountPoint);
        }
        catch (IOException) when (Mounts.IsFuse(mountPoint))
        {
            // A dead mount left by a killed daemon (ENOTCONN): the daemon detaches it itself at start.
        }

        var info = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach ((string key, string value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[key] = value;
        }

        info.ArgumentList.Add("mount");
        foreach (string a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        NoteDefaultStateDirectory(mountPoint, info.ArgumentList);

        if (appendMountPoint)
        {
            info.ArgumentList.Add(mountPoint);
        }

        var process = Process.Start(info)!;
        var daemon = new DaemonProcess(process, mountPoint);
        process.OutputDataReceived += (_, e) => daemon.Append(e.Data);
        process.ErrorDataReceived += (_, e) => daemon.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        var clock = Stopwatch.StartNew();
        while (!Mounts.IsFuse(mountPoint))
        {
            bool exited = process.HasExited;
            if (exited || clock.Elapsed > (timeout ?? TimeSpan.FromSeconds(30)))
            {
                string output = daemon.Output;
                daemon.Dispose();
                throw new InvalidOperationException($"inspatialfs did not mount {mountPoint} (exited: {exited}):\n{output}");
            }

            Thread.Sleep(20);
        }

        return daemon;
    }

    /// <summary>State directories below /var/lib/inspatialfs that instances started by this test run created.</summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> CreatedStateDirectories = new();

    /// <summary>
    /// An instance started without --state-dir or --config keeps its state in /var/lib/inspatialfs/NAME (NAME from --name,
    /// else the mountpoint's base name), which outlives it by design. When this run made that directory, it is noted
    /// for <see cref="RemoveCreatedStateDirectories"/>: tests that restart an instance of the same name still find its record.
    /// </summary>
    private static void NoteDefaultStateDirectory(string mountPoint, IList<string> arguments)
    {
        if (arguments.Contains("--state-dir") || arguments.Contains("--config") || arguments.Any(a => a.StartsWith("--state-dir=", StringComparison.Ordinal)))
        {
            return;
        }

        int at = arguments.IndexOf("--name");
        string name = at >= 0 && at + 1 < arguments.Count ? arguments[at + 1] : Path.GetFileName(mountPoint.TrimEnd('/'));
        string dir = Path.Combine("/var/lib/inspatialfs", name);
        if (name.Length > 0 && !name.Contains('/', StringComparison.Ordinal) && !Directory.Exists(dir))
        {
            CreatedStateDirectories.TryAdd(dir, true);
        }
    }

    /// <summary>
    /// At the end of a test run: removes the state directories this run's instances created (see
    /// <see cref="NoteDefaultStateDirectory"/>), each under its instance lock so that a daemon still running keeps its own.
    /// Without this every run left hundreds of them (gigabytes of journals) behind.
    /// </summary>
    public static int RemoveCreatedStateDirectories()
    {
        int removed = 0;
        foreach (string dir in CreatedStateDirectories.Keys)
        {
            if (!Directory.Exists(dir))
            {
                continue;
            }

            ShellResult r = Shell.Run($"[ -f '{dir}/instance.lock' ] && flock -n '{dir}/instance.lock' rm -rf '{dir}'");
            if (r.ExitCode == 0)
            {
                removed++;
            }
        }

        CreatedStateDirectories.Clear();
        return removed;
    }

    /// <summary>Sends SIGTERM and waits; returns the exit code (or -1 when it did not exit in time).</summary>
    public int Stop(TimeSpan? timeout = null)
    {
        if (!_process.HasExited)
        {
            Shell.Run($"kill -TERM {_process.Id}");
        }

        if (!_process.WaitForExit(timeout ?? TimeSpan.FromSeconds(20)))
        {
            return -1;
        }

        _process.WaitForExit();
        return _process.ExitCode;
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited && Stop(TimeSpan.FromSeconds(10)) == -1)
            {
                Mounts.ForceUnmount(MountPoint);
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
        }
        finally
        {
            if (Mounts.IsFuse(MountPoint))
            {
                Mounts.ForceUnmount(MountPoint);
            }

            _process.Dispose();
        }
    }

    private void Append(string? line)
    {
        if (line == null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }
    }

    private static string FindRepoRoot()
    {
        string? dir = AppContext.BaseDirectory;
        while (dir != null && !File.Exists(Path.Combine(dir, "InSpatialFs.sln")))
        {
            dir = Path.GetDirectoryName(dir);
        }

        return dir ?? throw new InvalidOperationException("cannot find the repository root (InSpatialFs.sln) above " + AppContext.BaseDirectory);
    }
}
