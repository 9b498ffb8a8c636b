using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Google.Protobuf;
using OpenTelemetry.Proto.Collector.Logs.V1;

namespace InSpatialFs.IntegrationTests.Falco;

/// <summary>A Unix datagram socket that reads syslog messages, as rsyslog's imuxsock would.</summary>
internal sealed class SyslogReceiver : IDisposable
{
    private readonly Socket _socket;
    private readonly Thread _reader;

    public SyslogReceiver(string path)
    {
        File.Delete(path);
        _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        _socket.Bind(new UnixDomainSocketEndPoint(path));
        _reader = new Thread(Read) { IsBackground = true, Name = "syslog-receiver" };
        _reader.Start();
        Path = path;
    }

    public string Path { get; }

    public ConcurrentQueue<string> Messages { get; } = new();

    private void Read()
    {
        byte[] buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                int n = _socket.Receive(buffer);
                Messages.Enqueue(Encoding.UTF8.GetString(buffer, 0, n));
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // closed by the test ("killed")
        }
    }

    public void Dispose()
    {
        _socket.Dispose();
        _reader.Join(TimeSpan.FromSeconds(2));
        File.Delete(Path);
    }
}

/// <summary>
/// A local HTTP endpoint on 127.0.0.1 that accepts POSTs the way falcosidekick (JSON) or an OTLP/HTTP collector
/// (protobuf ExportLogsServiceRequest, decoded with the official opentelemetry-proto definitions) does.
/// </summary>
internal sealed class HttpReceiver : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly Task _loop;
    private readonly bool _otlp;

    public HttpReceiver(int port, bool otlp)
    {
        _otlp = otlp;
        Port = port;
        _listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        _listener.Start();
        _loop = Task.Run(Serve);
    }

    public int Port { get; }

    /// <summary>falcosidekick payloads received (JSON documents).</summary>
    public ConcurrentQueue<JsonElement> Json { get; } = new();

    /// <summary>OTLP requests received.</summary>
    public ConcurrentQueue<ExportLogsServiceRequest> Otlp { get; } = new();

    /// <summary>Requests that were not what the protocol says (wrong method, content type, path or body).</summary>
    public ConcurrentQueue<string> Rejected { get; } = new();

    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    /// <summary>Requests the client gave up on mid-way (its timeout under load): not a protocol fault, but visible.</summary>
    public ConcurrentQueue<string> Aborted { get; } = new();

    private async Task Serve()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext ctx;
            try
            {
                ctx = await _listener.GetContextAsync();
            }
            catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            // Each request on its own task, and nothing a client does may end the loop: a client that times out and
            // drops its connection under load (a slow CI machine) used to fault this loop with an IOException, and every
            // later export then timed out against a receiver that no longer answered.
            _ = Task.Run(() => HandleAsync(ctx));
        }
    }

    private async Task HandleAsync(HttpListenerContext ctx)
    {
        try
        {
            using var body = new MemoryStream();
            await ctx.Request.InputStream.CopyToAsync(body);
            string type = ctx.Request.ContentType ?? "";
            try
            {
                if (ctx.Request.HttpMethod != "POST")
                {
                    Rejected.Enqueue("method " + ctx.Request.HttpMethod);
                }
                else if (_otlp)
                {
                    if (ctx.Request.Url!.AbsolutePath != "/v1/logs" || !type.StartsWith("application/x-protobuf", StringComparison.Ordinal))
                    {
                        Rejected.Enqueue($"otlp {ctx.Request.Url.AbsolutePath} {type}");
                    }
                    else
                    {
                        Otlp.Enqueue(ExportLogsServiceRequest.Parser.ParseFrom(body.ToArray()));
                        byte[] reply = new ExportLogsServiceResponse().ToByteArray();
                        ctx.Response.ContentType = "application/x-protobuf";
                        ctx.Response.ContentLength64 = reply.Length;
                        await ctx.Response.OutputStream.WriteAsync(reply);
                    }
                }
                else if (!type.StartsWith("application/json", StringComparison.Ordinal))
                {
                    Rejected.Enqueue("json content type " + type);
                }
                else
                {
                    Json.Enqueue(JsonDocument.Parse(body.ToArray()).RootElement.Clone());
                }
            }
            catch (Exception ex) when (ex is JsonException or Google.Protobuf.InvalidProtocolBufferException)
            {
                Rejected.Enqueue(ex.Message);
                ctx.Response.StatusCode = 400;
            }

            ctx.Response.Close();
        }
        catch (Exception ex) when (ex is IOException or HttpListenerException or ObjectDisposedException or InvalidOperationException)
        {
            Aborted.Enqueue(ex.GetType().Name + ": " + ex.Message);
        }
    }

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
        try
        {
            _loop.Wait(TimeSpan.FromSeconds(2));
        }
        catch (AggregateException)
        {
            // stopped
        }
    }
}
