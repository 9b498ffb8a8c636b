using System.Net.Sockets;
using System.Text;

namespace InSpatialFs.Daemon.Hosting;

/// <summary>
/// The sd_notify protocol without libsystemd: datagrams of "KEY=VALUE\n" lines to the unix socket named by
/// $NOTIFY_SOCKET (a path, or an abstract name starting with '@'). Does nothing when the variable is unset,
/// so the daemon runs the same outside systemd. Also reads the watchdog interval ($WATCHDOG_USEC, honouring
/// $WATCHDOG_PID) so the caller can ping at half of it.
/// </summary>
internal sealed class SystemdNotifier : IDisposable
{
    private readonly Socket? _socket;
    private readonly UnixDomainSocketEndPoint? _endpoint;

    public SystemdNotifier(string? notifySocket = null, string? watchdogUsec = null, string? watchdogPid = null)
    {
        notifySocket ??= Environment.GetEnvironmentVariable("NOTIFY_SOCKET");
        watchdogUsec ??= Environment.GetEnvironmentVariable("WATCHDOG_USEC");
        watchdogPid ??= Environment.GetEnvironmentVariable("WATCHDOG_PID");
        if (!string.IsNullOrEmpty(notifySocket))
        {
            _endpoint = EndPointOf(notifySocket);
            _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        }

        bool forUs = string.IsNullOrEmpty(watchdogPid) || watchdogPid == Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (forUs && long.TryParse(watchdogUsec, out long usec) && usec > 0)
        {
            WatchdogInterval = TimeSpan.FromMicroseconds(usec);
        }
    }

    /// <summary>$NOTIFY_SOCKET's socket: a path, or an abstract name written with a leading '@'.</summary>
    public static UnixDomainSocketEndPoint EndPointOf(string notifySocket) =>
        new(notifySocket[0] == '@' ? "\0" + notifySocket[1..] : notifySocket);

    public bool Enabled => _socket != null;

    /// <summary>The watchdog timeout systemd set (WatchdogSec=), or null.</summary>
    public TimeSpan? WatchdogInterval { get; }

    public void Ready(string status) => Send($"READY=1\nSTATUS={status}\nMAINPID={Environment.ProcessId}\n");

    public void Status(string status) => Send($"STATUS={status}\n");

    public void Stopping(string status) => Send($"STOPPING=1\nSTATUS={status}\n");

    public void Reloading() => Send("RELOADING=1\n");

    public void WatchdogPing() => Send("WATCHDOG=1\n");

    /// <summary>Sends one datagram; failures are ignored (systemd may be gone during shutdown).</summary>
    public void Send(string message)
    {
        if (_socket == null || _endpoint == null)
        {
            return;
        }

        try
        {
            _socket.SendTo(Encoding.UTF8.GetBytes(message), _endpoint);
        }
        catch (SocketException)
        {
        }
    }

    public void Dispose() => _socket?.Dispose();
}
