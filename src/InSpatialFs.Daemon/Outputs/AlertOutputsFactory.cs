using System.Globalization;
using System.Text;
using InSpatialFs.Daemon.Config;
using InSpatialFs.Security.Outputs;
using InSpatialFs.Security.Rules;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.Daemon.Outputs;

/// <summary>Builds an instance's alert channels from `outputs:` and renders their counters for the control files.</summary>
internal static class AlertOutputsFactory
{
    public static AlertOutputs Create(InstanceConfig config, Func<RuleSet?> rules, ILoggerFactory logs)
    {
        OutputsConfig o = config.Outputs;
        ILogger log = logs.CreateLogger("InSpatialFs.Outputs");
        var retry = new RetryPolicy(o.RetryInitial, o.RetryMax, o.RetryGiveUp);
        var channels = new List<AlertChannel>();
        if (o.Stdout) channels.Add(new StdoutAlertChannel(o.QueueCapacity, log));
        if (o.File is { } f)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(f.Path) ?? "/", UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            channels.Add(new FileAlertChannel(f.Path, f.MaxBytes, f.Keep, o.QueueCapacity, retry, log));
        }

        if (o.Syslog is { } s) channels.Add(new SyslogAlertChannel(s.Socket, s.Facility, o.QueueCapacity, retry, log));
        if (o.Http is { } h) channels.Add(new HttpAlertChannel(h.Url, h.Timeout, h.Headers, o.QueueCapacity, retry, log));
        if (o.Otlp is { } t) channels.Add(new OtlpAlertChannel(t.Endpoint, t.Timeout, t.Headers, config.Name, o.QueueCapacity, retry, log));
        return new AlertOutputs(channels, rules, log);
    }

    /// <summary>One `output:` line per channel for the status file.</summary>
    public static void StatusLines(StringBuilder sb, AlertOutputs? outputs)
    {
        foreach (AlertChannelStatus c in outputs?.Status() ?? [])
        {
            sb.Append(CultureInfo.InvariantCulture,
                $"output: {c.Name} {c.Target} queued={c.Queued} delivered={c.Delivered} dropped={c.Dropped} failed={c.Failed} retries={c.Retries} {(c.Retrying ? "retrying" : "ok")}{(c.Retrying && c.LastError != null ? " (" + c.LastError + ")" : "")}\n");
        }
    }

    /// <summary>Per-channel counters in the Prometheus text format (label `channel`).</summary>
    internal static void Metrics(Runtime.PrometheusText p, AlertOutputs? outputs)
    {
        IReadOnlyList<AlertChannelStatus> all = outputs?.Status() ?? [];
        if (all.Count == 0) return;
        foreach ((string metric, string help, Func<AlertChannelStatus, long> value, string type) in new (string, string, Func<AlertChannelStatus, long>, string)[]
        {
            ("inspatialfs_alerts_delivered_total", "Alerts delivered by the output channel.", c => c.Delivered, "counter"),
            ("inspatialfs_alerts_dropped_total", "Alerts dropped because the channel's queue was full.", c => c.Dropped, "counter"),
            ("inspatialfs_alerts_failed_total", "Alerts given up on after retrying.", c => c.Failed, "counter"),
            ("inspatialfs_alerts_retries_total", "Delivery retries.", c => c.Retries, "counter"),
            ("inspatialfs_alerts_queued", "Alerts waiting in the channel's queue.", c => c.Queued, "gauge"),
        })
        {
            p.Family(metric, type, help);
            foreach (AlertChannelStatus c in all)
            {
                p.Sample(metric, value(c), ("channel", c.Name));
            }
        }
    }
}
