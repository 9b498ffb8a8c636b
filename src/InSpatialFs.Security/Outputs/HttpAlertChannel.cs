using System.Net.Http.Headers;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.Security.Outputs;

/// <summary>
/// Falco's http output: each alert POSTed as its JSON document (application/json), the payload falcosidekick reads
/// (time, rule, priority, output, output_fields, source, tags, hostname). HTTPS with the system's trust store. A
/// non-2xx answer, a refused connection or a timeout is a failed delivery (retried).
/// </summary>
public sealed class HttpAlertChannel : AlertChannel
{
    private readonly HttpClient _client;
    private readonly Uri _url;

    public HttpAlertChannel(Uri url, TimeSpan timeout, IReadOnlyDictionary<string, string>? headers = null, int capacity = DefaultCapacity, RetryPolicy? retry = null, ILogger? log = null)
        : base("http", url.ToString(), capacity, retry, log)
    {
        _url = url;
        _client = new HttpClient { Timeout = timeout };
        _client.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("inspatialfs", "1"));
        foreach ((string name, string value) in headers ?? new Dictionary<string, string>())
        {
            _client.DefaultRequestHeaders.TryAddWithoutValidation(name, value);
        }
    }

    protected override async Task SendAsync(Alert alert, CancellationToken cancel)
    {
        using var content = new ByteArrayContent(alert.Json);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using HttpResponseMessage response = await _client.PostAsync(_url, content, cancel).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw new HttpRequestException($"{_url} answered {(int)response.StatusCode} {response.ReasonPhrase}");
        }
    }

    protected override void Close() => _client.Dispose();
}
