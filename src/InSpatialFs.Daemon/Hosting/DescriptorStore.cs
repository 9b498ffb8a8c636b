using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using InSpatialFs.Interop;

namespace InSpatialFs.Daemon.Hosting;

/// <summary>
/// Descriptors kept outside this process's life, so a FUSE connection outlives the server: systemd's file descriptor
/// store (sd_notify FDSTORE=1 with FDNAME=, given back through LISTEN_FDS/LISTEN_FDNAMES), which inspatialfs-keeper
/// speaks too, so the server has one path under systemd and under the keeper. Present only when $NOTIFY_SOCKET is set
/// and $FDSTORE says the store has room (systemd 254+ sets it from FileDescriptorStoreMax=; the unit file and the keeper
/// set it explicitly).
/// </summary>
internal sealed class DescriptorStore : IDisposable
{
    /// <summary>The connection's session descriptor.</summary>
    public const string SessionName = "fuse";

    /// <summary>Clones are stored per server ("fuse-clone.PID"), so a successor can drop exactly its predecessor's.</summary>
    public const string ClonePrefix = "fuse-clone.";

    private const int FirstListenFd = 3;
    private readonly Socket _socket;
    private readonly List<(string Name, SafeFd Fd)> _inherited;

    private DescriptorStore(Socket socket, List<(string, SafeFd)> inherited, int restarts, TimeSpan? handover)
    {
        _socket = socket;
        _inherited = inherited;
        Restarts = restarts;
        Handover = handover;
    }

    /// <summary>Descriptors a previous server stored, as LISTEN_FDS gave them to this one (close-on-exec now).</summary>
    public IReadOnlyList<(string Name, SafeFd Fd)> Inherited => _inherited;

    /// <summary>How often the keeper restarted the server before this one (INSPATIALFS_RESTARTS; 0 under systemd).</summary>
    public int Restarts { get; }

    /// <summary>Since the previous server died or handed over (INSPATIALFS_HANDOVER_SINCE, CLOCK_MONOTONIC).</summary>
    public TimeSpan? Handover { get; }

    /// <summary>A previous server's live connection is handed to this process (before anything reads the variables).</summary>
    public static bool HandsOverLiveMount() =>
        Environment.GetEnvironmentVariable("LISTEN_PID") == Environment.ProcessId.ToString(CultureInfo.InvariantCulture)
        && (Environment.GetEnvironmentVariable("LISTEN_FDNAMES") ?? "").Split(':').Contains(SessionName);

    /// <summary>The store of this process's service, or null when there is none.</summary>
    public static DescriptorStore? FromEnvironment()
    {
        string? notify = Environment.GetEnvironmentVariable("NOTIFY_SOCKET");
        if (string.IsNullOrEmpty(notify)
            || !int.TryParse(Environment.GetEnvironmentVariable("FDSTORE"), NumberStyles.None, CultureInfo.InvariantCulture, out int room) || room <= 0)
        {
            return null;
        }

        var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        try
        {
            socket.Connect(SystemdNotifier.EndPointOf(notify));
        }
        catch (SocketException)
        {
            socket.Dispose();
            return null;
        }

        int.TryParse(Environment.GetEnvironmentVariable("INSPATIALFS_RESTARTS"), NumberStyles.None, CultureInfo.InvariantCulture, out int restarts);
        TimeSpan? handover = long.TryParse(Environment.GetEnvironmentVariable("INSPATIALFS_HANDOVER_SINCE"), NumberStyles.None, CultureInfo.InvariantCulture, out long since)
            ? TimeSpan.FromTicks(Math.Max(0, Stopwatch.GetTimestamp() - since) / 100) // Stopwatch ticks are CLOCK_MONOTONIC ns here
            : null;
        return new DescriptorStore(socket, TakeListenFds(), restarts, handover);
    }

    /// <summary>LISTEN_FDS for this process (LISTEN_PID), made close-on-exec; the variables are removed so no child inherits them.</summary>
    private static List<(string, SafeFd)> TakeListenFds()
    {
        var fds = new List<(string, SafeFd)>();
        bool forUs = Environment.GetEnvironmentVariable("LISTEN_PID") == Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        if (forUs && int.TryParse(Environment.GetEnvironmentVariable("LISTEN_FDS"), NumberStyles.None, CultureInfo.InvariantCulture, out int count))
        {
            string[] names = (Environment.GetEnvironmentVariable("LISTEN_FDNAMES") ?? "").Split(':');
            for (int i = 0; i < count; i++)
            {
                int fd = FirstListenFd + i;
                _ = LibC.fcntl(fd, LibC.F_SETFD, LibC.FD_CLOEXEC);
                fds.Add((i < names.Length ? names[i] : "unknown", new SafeFd(fd)));
            }
        }

        foreach (string v in new[] { "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "INSPATIALFS_HANDOVER_SINCE" })
        {
            Environment.SetEnvironmentVariable(v, null);
        }

        return fds;
    }

    /// <summary>Takes the inherited descriptor named <paramref name="name"/> (the caller owns it now), or null.</summary>
    public SafeFd? Take(string name)
    {
        int i = _inherited.FindIndex(d => d.Name == name);
        if (i < 0)
        {
            return null;
        }

        SafeFd fd = _inherited[i].Fd;
        _inherited.RemoveAt(i);
        return fd;
    }

    /// <summary>Closes this process's copies of the inherited descriptors not taken (the store keeps its own until removed).</summary>
    public void CloseInherited()
    {
        foreach ((_, SafeFd fd) in _inherited)
        {
            fd.Dispose();
        }
    }

    /// <summary>Stores a copy of <paramref name="fd"/> under <paramref name="name"/>; false when the store refused it.</summary>
    public bool Store(string name, SafeFd fd)
    {
        bool added = false;
        try
        {
            fd.DangerousAddRef(ref added);
            return LibC.SendFds((int)_socket.Handle, Encoding.ASCII.GetBytes($"FDSTORE=1\nFDNAME={name}\n"), [fd.Fd]) == Errno.OK;
        }
        finally
        {
            if (added)
            {
                fd.DangerousRelease();
            }
        }
    }

    /// <summary>Closes and forgets every stored descriptor named <paramref name="name"/>.</summary>
    public void Remove(string name) => Send($"FDSTOREREMOVE=1\nFDNAME={name}\n");

    /// <summary>Asks the keeper to start <paramref name="binary"/> after this server exits (an upgrade).</summary>
    public void ExecNext(string binary) => Send($"X_INSPATIALFS_EXEC={binary}\n");

    private void Send(string message)
    {
        try
        {
            _socket.Send(Encoding.ASCII.GetBytes(message));
        }
        catch (SocketException)
        {
        }
    }

    public void Dispose()
    {
        _socket.Dispose();
        foreach ((_, SafeFd fd) in _inherited)
        {
            fd.Dispose();
        }
    }
}
