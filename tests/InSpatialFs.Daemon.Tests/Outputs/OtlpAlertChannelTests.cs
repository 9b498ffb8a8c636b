using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using InSpatialFs.Daemon.Outputs;
using InSpatialFs.Security;
using InSpatialFs.Security.Incidents;
using InSpatialFs.Security.Outputs;

namespace InSpatialFs.Daemon.Tests.Outputs;

/// <summary>The OTLP channel against a local endpoint: it posts protobuf to /v1/logs, fails while nobody listens and resumes after.</summary>
public sealed class OtlpAlertChannelTests
{
    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private static HttpListener Listen(int port, ConcurrentQueue<byte[]> bodies)
    {
        var listener = new HttpListener();
        listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        listener.Start();
        _ = Task.Run(async () =>
        {
            while (listener.IsListening)
            {
                try
                {
                    HttpListenerContext ctx = await listener.GetContextAsync();
                    using var ms = new MemoryStream();
                    await ctx.Request.InputStream.CopyToAsync(ms);
                    bodies.Enqueue(ms.ToArray());
                    ctx.Response.ContentType = "application/x-protobuf";
                    ctx.Response.Close();
                }
                catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or InvalidOperationException)
                {
                    return;
                }
            }
        });
        return listener;
    }

    private static Alert Sample(string id) => new(
        Encoding.UTF8.GetBytes("{}"), "r", "Warning", "12:00:00.000000000: Warning x " + id, "syscall", ["t"],
        [new("fd.name", "/x")], 0, "h", new Incident { Id = id, Time = DateTimeOffset.UtcNow, Source = "r", Severity = Severity.Medium });

    /// <summary>
    /// The incidents the collector received, each once however often it was posted. Delivery is at least once: an
    /// export that times out after the collector read it is posted again, so on a loaded machine a record may arrive
    /// twice, and the test asks what reached the collector, not how many posts it took.
    /// </summary>
    private static string[] IncidentsIn(ConcurrentQueue<byte[]> bodies)
    {
        string[] received = bodies.Select(b => Encoding.UTF8.GetString(b)).ToArray();
        TestContext.Out.WriteLine($"{received.Length} posts received");
        return new[] { "inc-1", "inc-2", "inc-3" }.Where(id => received.Any(body => body.Contains(id, StringComparison.Ordinal))).ToArray();
    }

    [Test]
    public void Delivers_fails_while_the_collector_is_down_and_resumes()
    {
        int port = FreePort();
        var bodies = new ConcurrentQueue<byte[]>();
        HttpListener listener = Listen(port, bodies);
        using var channel = new OtlpAlertChannel(new Uri($"http://127.0.0.1:{port}/v1/logs"), TimeSpan.FromSeconds(15), new Dictionary<string, string>(), "t", 8,
            new RetryPolicy(TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(200), TimeSpan.FromMinutes(1)), null);
        channel.TryEnqueue(Sample("inc-1"));
        Assert.That(channel.WaitIdle(TimeSpan.FromSeconds(40)), Is.True, channel.Status().ToString());
        Assert.That(IncidentsIn(bodies), Is.EqualTo(new[] { "inc-1" }));
        TestContext.Out.WriteLine(Convert.ToHexString(bodies.First()));
        Assert.That(Encoding.UTF8.GetString(bodies.First()), Does.Contain("service.name").And.Contain("inspatialfs").And.Contain("fd.name"));

        listener.Stop();
        listener.Close();
        channel.TryEnqueue(Sample("inc-2"));
        // Connection refused fails at once; a pooled connection the old listener left half-open fails by the timeout.
        DateTime retryBy = DateTime.UtcNow.AddSeconds(30);
        while (!channel.Status().Retrying && DateTime.UtcNow < retryBy)
        {
            Thread.Sleep(50);
        }

        Assert.That(channel.Status().Retrying, Is.True, channel.Status().ToString());

        listener = Listen(port, bodies);
        Assert.That(channel.WaitIdle(TimeSpan.FromSeconds(60)), Is.True, channel.Status().ToString());
        Assert.That(IncidentsIn(bodies), Is.EqualTo(new[] { "inc-1", "inc-2" }));
        Assert.That(channel.Status().Delivered, Is.EqualTo(2));
        listener.Stop();
        listener.Close();
    }
}
