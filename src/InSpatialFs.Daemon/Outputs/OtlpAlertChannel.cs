using InSpatialFs.Security.Outputs;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Logs;
using OpenTelemetry.Resources;

namespace InSpatialFs.Daemon.Outputs;

/// <summary>
/// Alerts as OpenTelemetry log records over OTLP/HTTP (protobuf), through the OpenTelemetry .NET exporter: the fleet
/// path into any collector. The body is Falco's output line; attributes are rule, priority, source, tags, hostname,
/// every output field (fd.name, proc.cmdline...) and the incident's id, severity and response. Each record is exported
/// synchronously on the channel's pump and its result read back, so a collector that is down is a failed delivery the
/// channel retries and counts, not a record lost inside a batch. Lives in the daemon: the exporter brings
/// Microsoft.Extensions.Logging, which the library layers do not reference.
/// </summary>
internal sealed class OtlpAlertChannel : AlertChannel
{
    private readonly ILoggerFactory _factory;
    private readonly ILogger _otel;
    private readonly ResultProcessor _processor;

    public OtlpAlertChannel(Uri endpoint, TimeSpan timeout, IReadOnlyDictionary<string, string> headers, string instance, int capacity, RetryPolicy? retry, ILogger? log)
        : base("otlp", endpoint.ToString(), capacity, retry, log)
    {
        var options = new OtlpExporterOptions
        {
            Endpoint = endpoint,
            Protocol = OtlpExportProtocol.HttpProtobuf,
            TimeoutMilliseconds = (int)Math.Clamp(timeout.TotalMilliseconds, 100, 60_000),
            Headers = headers.Count == 0 ? null : string.Join(",", headers.Select(h => $"{h.Key}={h.Value}")),
        };
#pragma warning disable CA2000 // the processor owns the exporter and the logger provider built below owns the processor: _factory.Dispose frees both
        _processor = new ResultProcessor(new OtlpLogExporter(options));
#pragma warning restore CA2000
        _factory = LoggerFactory.Create(builder =>
        {
            builder.AddOpenTelemetry(o =>
            {
                o.IncludeFormattedMessage = true;
                o.ParseStateValues = true;
                o.AddProcessor(_processor);
            });
            builder.Services.ConfigureOpenTelemetryLoggerProvider(provider =>
                provider.SetResourceBuilder(ResourceBuilder.CreateDefault().AddService("inspatialfs", serviceInstanceId: instance)));
        });
        _otel = _factory.CreateLogger("inspatialfs.alerts");
    }

    private static LogLevel LevelOf(string priority) => priority switch
    {
        "Emergency" or "Alert" or "Critical" => LogLevel.Critical,
        "Error" => LogLevel.Error,
        "Warning" => LogLevel.Warning,
        "Notice" or "Informational" => LogLevel.Information,
        _ => LogLevel.Debug,
    };

    protected override Task SendAsync(Alert alert, CancellationToken cancel)
    {
        var state = new List<KeyValuePair<string, object?>>(alert.OutputFields.Count + 10)
        {
            new("rule", alert.Rule),
            new("priority", alert.Priority),
            new("source", alert.Source),
            new("tags", string.Join(",", alert.Tags)),
            new("hostname", alert.Hostname),
            new("time", Security.Events.FsEventJson.FormatTime(alert.TimeUnixNanos)),
            new("incident.id", alert.Incident.Id),
            new("incident.severity", alert.Incident.Severity.ToString().ToLowerInvariant()),
            new("incident.response", alert.Incident.Response),
        };
        foreach (KeyValuePair<string, object?> field in alert.OutputFields)
        {
            state.Add(new(field.Key, field.Value ?? "<NA>"));
        }

        _processor.Last = ExportResult.Failure;
        _otel.Log(LevelOf(alert.Priority), new EventId(4700, "alert"), state, null, (_, _) => alert.Output);
        if (_processor.Last != ExportResult.Success)
        {
            throw new IOException($"OTLP export to {Target} failed");
        }

        return Task.CompletedTask;
    }

    protected override void Close() => _factory.Dispose();

    /// <summary>
    /// Exports each record as it ends, on the caller's thread, and keeps the result. A simple export processor, so the
    /// SDK hands the exporter its provider (and with it the resource: service.name).
    /// </summary>
    private sealed class ResultProcessor(BaseExporter<LogRecord> exporter) : SimpleLogRecordExportProcessor(exporter)
    {
        public ExportResult Last { get; set; }

        protected override void OnExport(LogRecord data) => Last = exporter.Export(new Batch<LogRecord>([data], 1));
    }
}
