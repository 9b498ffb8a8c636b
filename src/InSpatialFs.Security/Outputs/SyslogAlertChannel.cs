using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.Security.Outputs;

/// <summary>
/// Falco's syslog output as RFC 5424 messages on a Unix datagram socket (default <c>/dev/log</c>):
/// <c>&lt;PRI&gt;1 TIMESTAMP HOST inspatialfs PID alert - {json}</c>, PRI = facility × 8 + the alert priority's
/// syslog severity (Emergency 0 ... Debug 7). A missing or refusing socket is a failed delivery (retried).
/// </summary>
public sealed class SyslogAlertChannel : AlertChannel
{
    private readonly string _socketPath;
    private readonly int _facility;
    private readonly string _host = Environment.MachineName;
    private readonly int _pid = Environment.ProcessId;
    private Socket? _socket;

    public SyslogAlertChannel(string socketPath = "/dev/log", int facility = 1, int capacity = DefaultCapacity, RetryPolicy? retry = null, ILogger? log = null)
        : base("syslog", socketPath, capacity, retry, log)
    {
        _socketPath = socketPath;
        _facility = facility;
    }

    /// <summary>Facility numbers by name (RFC 5424 table 1).</summary>
    public static int? ParseFacility(string name) => name switch
    {
        "kern" => 0,
        "user" => 1,
        "daemon" => 3,
        "auth" => 4,
        "syslog" => 5,
        "authpriv" => 10,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => null,
    };

    /// <summary>The syslog severity of a Falco priority.</summary>
    public static int SeverityOf(string priority) => priority switch
    {
        "Emergency" => 0,
        "Alert" => 1,
        "Critical" => 2,
        "Error" => 3,
        "Warning" => 4,
        "Notice" => 5,
        "Informational" => 6,
        _ => 7,
    };

    /// <summary>The RFC 5424 message of one alert.</summary>
    public byte[] Format(byte[] alert, string priority, DateTimeOffset time)
    {
        int pri = (_facility * 8) + SeverityOf(priority);
        string header = string.Create(CultureInfo.InvariantCulture, $"<{pri}>1 {time.UtcDateTime:yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'} {_host} inspatialfs {_pid} alert - ");
        return [.. Encoding.UTF8.GetBytes(header), .. alert];
    }

    protected override Task SendAsync(Alert alert, CancellationToken cancel)
    {
        byte[] message = Format(alert.Json, alert.Priority, DateTimeOffset.UtcNow);
        try
        {
            _socket ??= Connect();
            _socket.Send(message);
        }
        catch (SocketException)
        {
            _socket?.Dispose();
            _socket = null; // the reader may have restarted: connect anew on the retry
            throw;
        }

        return Task.CompletedTask;
    }

    private Socket Connect()
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(_socketPath));
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    protected override void Close() => _socket?.Dispose();
}
