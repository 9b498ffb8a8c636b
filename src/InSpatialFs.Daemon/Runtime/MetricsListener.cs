using System.Net;
using System.Net.Sockets;
using System.Text;
using InSpatialFs.Interop;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.Daemon.Runtime;

/// <summary>
/// `metrics_listen: ADDRESS:PORT`: a minimal HTTP/1.1 endpoint for Prometheus — `GET /metrics` answers the same text
/// as the `metrics` control file, anything else 404 (405 for other methods); one request per connection. Requests
/// are bounded (8 KiB of headers, 5 s to send them), so a slow or hostile client holds one accept loop turn at most
/// 5 s and never a FUSE thread, and at most <see cref="MaxConnections"/> are served at once: past that the listener
/// stops accepting until one ends (further clients wait in the kernel's backlog), so connections that send nothing
/// cannot take the descriptors the container's files need. Bind to loopback unless the network in between is trusted:
/// there is no authentication.
/// </summary>
internal sealed class MetricsListener : IDisposable
{
    private const int MaxRequestBytes = 8192;
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Connections served at once (a scraper needs one).</summary>
    public const int MaxConnections = 16;

    private readonly SemaphoreSlim _slots = new(MaxConnections, MaxConnections);

    private readonly Socket _listener;
    private readonly Func<string> _render;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    /// <summary>Serves on <paramref name="listening"/>: a socket bound and listening (<see cref="Bind"/>, or one a previous
    /// server of this instance kept in the descriptor store).</summary>
    public MetricsListener(Socket listening, Func<string> render, ILogger log)
    {
        _listener = listening;
        _render = render;
        _log = log;
        Endpoint = (IPEndPoint)_listener.LocalEndPoint!;
        _loop = Task.Run(AcceptLoop);
    }

    /// <summary>Binds and listens on <paramref name="endpoint"/>; throws SocketException (address in use, not local).</summary>
    public static Socket Bind(string endpoint)
    {
        IPEndPoint at = IPEndPoint.Parse(endpoint);
        var socket = new Socket(at.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(at);
            socket.Listen(16);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>A socket a previous server kept, if it listens on <paramref name="endpoint"/> (else null, and it is closed).</summary>
    public static Socket? Adopt(SafeFd kept, string endpoint)
    {
#pragma warning disable CA2000 // the handle moves into the socket, which owns it from here (disposed below or by the caller)
        var socket = new Socket(new SafeSocketHandle(kept.DangerousGetHandle(), ownsHandle: true));
#pragma warning restore CA2000
        kept.SetHandleAsInvalid(); // the socket owns the descriptor now
        IPEndPoint want = IPEndPoint.Parse(endpoint);
        if (socket.LocalEndPoint is IPEndPoint at && at.Address.Equals(want.Address) && (want.Port == 0 || at.Port == want.Port))
        {
            return socket;
        }

        socket.Dispose(); // metrics_listen changed: the old address is let go
        return null;
    }

    public IPEndPoint Endpoint { get; }

    /// <summary>The listening descriptor (for the descriptor store: the next server serves on the same socket).</summary>
    public SafeFd Descriptor => new((int)_listener.Handle, ownsHandle: false);

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                await _slots.WaitAsync(_stop.Token).ConfigureAwait(false);
                client = await _listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            _ = Task.Run(async () =>
            {
                try
                {
                    await Serve(client).ConfigureAwait(false);
                }
                finally
                {
                    _slots.Release();
                }
            });
        }
    }

    private async Task Serve(Socket client)
    {
        using (var stream = new NetworkStream(client, ownsSocket: true))
        {
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                timeout.CancelAfter(RequestTimeout);
                byte[] buffer = new byte[MaxRequestBytes];
                int length = 0;
                while (length < buffer.Length)
                {
                    int n = await stream.ReadAsync(buffer.AsMemory(length), timeout.Token).ConfigureAwait(false);
                    if (n == 0) break;
                    length += n;
                    if (buffer.AsSpan(0, length).IndexOf("\r\n\r\n"u8) >= 0 || buffer.AsSpan(0, length).IndexOf("\n\n"u8) >= 0) break;
                }

                string request = Encoding.ASCII.GetString(buffer, 0, length);
                int lineEnd = request.IndexOf('\n', StringComparison.Ordinal);
                string[] requestLine = (lineEnd < 0 ? request : request[..lineEnd]).Trim().Split(' ');
                (int status, string reason, string body, string type) = requestLine switch
                {
                    ["GET" or "HEAD", "/metrics" or "/metrics/", ..] => (200, "OK", _render(), PrometheusText.ContentType),
                    ["GET" or "HEAD", ..] => (404, "Not Found", "not found: the metrics are at /metrics\n", "text/plain; charset=utf-8"),
                    _ => (405, "Method Not Allowed", "only GET /metrics\n", "text/plain; charset=utf-8"),
                };
                byte[] payload = Encoding.UTF8.GetBytes(body);
                string head = $"HTTP/1.1 {status} {reason}\r\nContent-Type: {type}\r\nContent-Length: {payload.Length}\r\nConnection: close\r\n\r\n";
                await stream.WriteAsync(Encoding.ASCII.GetBytes(head), timeout.Token).ConfigureAwait(false);
                if (requestLine[0] != "HEAD") await stream.WriteAsync(payload, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
            {
                Log.MetricsRequestFailed(_log, e.Message);
            }
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Dispose();
        try
        {
            _loop.Wait(TimeSpan.FromSeconds(2));
        }
        catch (AggregateException)
        {
            // the loop ends on the stop; nothing to report
        }

        _stop.Dispose();
    }
}
