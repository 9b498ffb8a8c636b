using InSpatialFs.Security.Incidents;
using InSpatialFs.Security.Rules;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace InSpatialFs.Security.Outputs;

/// <summary>
/// Fans each incident out to the configured channels as a Falco-shaped <see cref="Alert"/>: formatted once (on the
/// security manager's consumer thread, never on the request path), then handed to every channel's bounded queue.
/// </summary>
public sealed class AlertOutputs : IDisposable
{
    private readonly AlertChannel[] _channels;
    private readonly Func<RuleSet?> _rules;
    private readonly ILogger _log;
    private readonly string _hostname;
    private long _published;

    public AlertOutputs(IEnumerable<AlertChannel> channels, Func<RuleSet?> rules, ILogger? log = null, string? hostname = null)
    {
        _channels = [.. channels];
        _rules = rules;
        _log = log ?? NullLogger.Instance;
        _hostname = hostname ?? Environment.MachineName;
    }

    public IReadOnlyList<AlertChannel> Channels => _channels;

    /// <summary>Alerts formatted and handed to the channels so far.</summary>
    public long Published => Interlocked.Read(ref _published);

    /// <summary>Formats the incident and queues it on every channel (never blocks).</summary>
    public void Publish(Incident incident)
    {
        if (_channels.Length == 0)
        {
            return;
        }

        Alert alert;
        try
        {
            alert = Alert.From(incident, _rules(), _hostname);
        }
        catch (Exception ex) when (ex is InvalidOperationException or FormatException or ArgumentException)
        {
            OutputsLog.FormatFailed(_log, ex, incident.Id);
            return;
        }

        Interlocked.Increment(ref _published);
        foreach (AlertChannel channel in _channels)
        {
            channel.TryEnqueue(alert);
        }
    }

    public IReadOnlyList<AlertChannelStatus> Status() => [.. _channels.Select(c => c.Status())];

    public void Dispose()
    {
        foreach (AlertChannel c in _channels)
        {
            c.Dispose();
        }
    }
}
