namespace InSpatialFs.Daemon.Config;

/// <summary>
/// `outputs:` — where alerts go, shaped like Falco's outputs: stdout, a rotated file, syslog, an HTTP(S) JSON webhook
/// (falcosidekick's input) and OpenTelemetry logs over OTLP/HTTP. Each channel has its own bounded queue.
/// </summary>
public sealed record OutputsConfig
{
    public static readonly OutputsConfig None = new();

    /// <summary>Falco's -p / append_output: text with %fields appended to every rule's output.</summary>
    public string? Append { get; init; }
    /// <summary>Alerts each channel holds while its receiver is slow or away; past it they are dropped and counted.</summary>
    public int QueueCapacity { get; init; } = 1024;
    public TimeSpan RetryInitial { get; init; } = TimeSpan.FromMilliseconds(100);
    public TimeSpan RetryMax { get; init; } = TimeSpan.FromSeconds(5);
    public TimeSpan RetryGiveUp { get; init; } = TimeSpan.FromSeconds(60);
    public bool Stdout { get; init; }
    public FileOutputConfig? File { get; init; }
    public SyslogOutputConfig? Syslog { get; init; }
    public HttpOutputConfig? Http { get; init; }
    public OtlpOutputConfig? Otlp { get; init; }

    public bool Any => Stdout || File != null || Syslog != null || Http != null || Otlp != null;
}

/// <summary>`outputs.file`: JSON lines, rotated past MaxBytes keeping Keep old files.</summary>
public sealed record FileOutputConfig(string Path, long MaxBytes, int Keep);

/// <summary>`outputs.syslog`: RFC 5424 on a Unix datagram socket.</summary>
public sealed record SyslogOutputConfig(string Socket, int Facility);

/// <summary>`outputs.http`: POST of each alert's JSON (falcosidekick: http://HOST:2801/).</summary>
public sealed record HttpOutputConfig(Uri Url, TimeSpan Timeout, IReadOnlyDictionary<string, string> Headers);

/// <summary>`outputs.otlp`: OpenTelemetry logs over OTLP/HTTP (protobuf) to a collector (http://HOST:4318).</summary>
public sealed record OtlpOutputConfig(Uri Endpoint, TimeSpan Timeout, IReadOnlyDictionary<string, string> Headers);
