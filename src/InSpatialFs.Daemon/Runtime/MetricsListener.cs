using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.Daemon.Runtime;

/// <summary>
/// `metrics_listen: ADDRESS:PORT`: a minimal HTTP/1.1 endpoint for Prometheus — `GET /metrics` answers the same text
/// as the `metrics` control file, anything else 404 (405 for other methods); one request per connection. Requests
/// are bounded (8 KiB of headers, 5 s to send them), so a slow or hostile client holds one accept loop turn at most
/// 5 s and never a FUSE thread. Bind to loopback unless the network in between is trusted: there is no authentication.
/// </summary>
internal sealed class MetricsListener : IDisposable
{
    private const int MaxRequestBytes = 8192;
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(5);

    private readonly TcpListener _listener;
    private readonly Func<string> _render;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public MetricsListener(string endpoint, Func<string> render, ILogger log)
    {
        _render = render;
        _log = log;
        _listener = new TcpListener(IPEndPoint.Parse(endpoint));
        _listener.Start(backlog: 16); // throws SocketException (address in use, not local): the caller refuses to start
        Endpoint = (IPEndPoint)_listener.LocalEndpoint;
        _loop = Task.Run(AcceptLoop);
    }

    public IPEndPoint Endpoint { get; }

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            _ = Task.Run(() => Serve(client));
        }
    }

    private async Task Serve(TcpClient client)
    {
        using (client)
        {
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                timeout.CancelAfter(RequestTimeout);
                NetworkStream stream = client.GetStream();
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
        _listener.Stop();
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
