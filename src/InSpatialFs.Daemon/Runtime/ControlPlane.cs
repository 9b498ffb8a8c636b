using System.Globalization;
using System.Text;
using InSpatialFs.Daemon.Control;
using InSpatialFs.Interop;
using InSpatialFs.Security;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Incidents;
using InSpatialFs.Security.Rules;
using InSpatialFs.Storage.Direct;
using InSpatialFs.Storage.Mounts;

namespace InSpatialFs.Daemon.Runtime;

/// <summary>
/// What the control files show and accept, for one instance. Snapshot files are rendered on demand (at OPEN);
/// the event stream and per-operation latency histograms are fed from the security manager's subscription.
/// </summary>
internal sealed class ControlPlane : IControlPlane, IDisposable
{
    private readonly Instance _instance;
    private readonly IDisposable _subscription;
    private readonly OpLatencies _latencies = new();

    public ControlPlane(Instance instance)
    {
        _instance = instance;
        _subscription = instance.Security.Subscribe(OnEvent);
    }

    public EventLog Events { get; } = new();

    private void OnEvent(FsEvent e, ReadOnlySpan<byte> jsonLine)
    {
        _latencies.Add(e.Op, e.LatencyNanos);
        Events.Append(jsonLine);
    }

    public string Render(ControlFile file) => file switch
    {
        ControlFile.Status => Status(),
        ControlFile.Policy => Policy(),
        ControlFile.Rules => RulesText(),
        ControlFile.Mounts => MountsText(),
        ControlFile.Stats => Stats(),
        ControlFile.Metrics => Metrics(),
        ControlFile.Incidents => Incidents(),
        _ => "",
    };

    public Errno Execute(ControlCommand command, out string message)
    {
        SecurityManager security = _instance.Security;
        switch (command.Verb)
        {
            case ControlVerb.Suspend:
                message = security.SuspendContainer("operator: control suspend");
                // Nothing to freeze (no container seen, no cgroup configured): the writer must see it failed.
                return message.StartsWith("suspend refused", StringComparison.Ordinal) ? Errno.EINVAL : Errno.OK;
            case ControlVerb.Resume:
                security.Resume();
                message = "resumed";
                return Errno.OK;
            case ControlVerb.Reload:
                return _instance.ReloadRules(out message);
            case ControlVerb.Ack:
                message = security.Acknowledge(command.Argument!) ? $"incident {command.Argument} acknowledged" : $"no incident {command.Argument}";
                return message.StartsWith("no ", StringComparison.Ordinal) ? Errno.EINVAL : Errno.OK;
            case ControlVerb.Resolve:
                message = security.ResolveIncident(command.Argument!) ? $"incident {command.Argument} resolved" : $"no incident {command.Argument}";
                return message.StartsWith("no ", StringComparison.Ordinal) ? Errno.EINVAL : Errno.OK;
            case ControlVerb.ContainerInit:
                int initPid = int.Parse(command.Argument!, CultureInfo.InvariantCulture); // the parser checked it
                message = security.RecordContainerInit(initPid) is string refused ? refused : $"container init {initPid} recorded";
                return message.StartsWith("container init", StringComparison.Ordinal) ? Errno.OK : Errno.EINVAL;
            default:
                message = $"changing the isolation level of a running instance is not supported; restart with isolation: {command.Argument}";
                return Errno.EINVAL;
        }
    }

    private string Status()
    {
        SecurityCounters c = _instance.Security.Counters();
        var sb = new StringBuilder();
        TimeSpan uptime = DateTime.UtcNow - _instance.StartedUtc;
        Line(sb, "name", _instance.Config.Name);
        Line(sb, "state", c.Suspended ? "suspended" : "running");
        Line(sb, "isolation", FsEventJson.LevelName(_instance.Config.Isolation));
        Line(sb, "mountpoint", _instance.Config.Mountpoint);
        Line(sb, "uptime", $"{(long)uptime.TotalSeconds}s");
        foreach (MountEntry m in _instance.Mounts.Entries)
        {
            Line(sb, "mount", MountLine(m));
        }

        Line(sb, "ops", c.Decisions);
        Line(sb, "denials", c.Denials);
        Line(sb, "throttled", c.Throttled);
        Line(sb, "incidents", c.Incidents);
        Line(sb, "incidents_open", c.IncidentsOpen);
        Line(sb, "incident_repeats", c.IncidentRepeats);
        Line(sb, "incidents_suppressed", c.IncidentsSuppressed);
        Line(sb, "events_recorded", c.EventsRecorded);
        Line(sb, "events_dropped", c.EventsDropped);
        Line(sb, "events_waited", c.EventsWaited);
        Line(sb, "events_processed", c.EventsProcessed);
        Line(sb, "host_denials", c.HostDenials);
        foreach ((string key, string value) in _instance.Security.MembershipStatus())
        {
            Line(sb, key, value);
        }

        Line(sb, "blocked_processes", c.BlockedProcesses);
        Line(sb, "open_files", c.OpenFiles);
        Line(sb, "live_nodes", _instance.Proxy.LiveNodes);
        Line(sb, "open_handles", _instance.Proxy.OpenHandles);
        if (_instance.Mounts.Entries.Any(m => m.Direct))
        {
            Line(sb, "spliced_reads", _instance.SplicedReadReplies);
        }

        foreach (Security.Resources.QuotaAccount q in _instance.Security.Resources.Accounts.OrderBy(a => a.Mount, StringComparer.Ordinal))
        {
            Line(sb, "quota", FormattableString.Invariant(
                $"{q.Mount} bytes={q.Bytes}/{q.ByteLimit?.ToString(CultureInfo.InvariantCulture) ?? "none"} inodes={q.Inodes}/{q.InodeLimit?.ToString(CultureInfo.InvariantCulture) ?? "none"}"));
        }
        Outputs.AlertOutputsFactory.StatusLines(sb, _instance.Alerts);

        foreach (string warning in _instance.Security.Warnings)
        {
            Line(sb, "warning", warning);
        }

        return sb.ToString();
    }

    private string MountLine(MountEntry m) =>
        $"{m.Path} {m.Backend.Kind}{(m.ReadOnly ? " ro" : " rw")}{(m.Direct ? " direct: " + _instance.Proxy.DirectMode.DisplayName() : "")}";

    private string Policy()
    {
        var sb = new StringBuilder();
        Config.InstanceConfig config = _instance.Config;
        sb.Append("isolation: ").Append(FsEventJson.LevelName(config.Isolation)).Append('\n');
        sb.Append("paths:\n");
        List(sb, "forbidden", config.Paths.Forbidden);
        List(sb, "readonly", config.Paths.ReadOnly);
        List(sb, "allowed", config.Paths.Allowed);
        sb.Append("effective: ").Append(_instance.Security.Controls.ToString()).Append('\n');
        Config.ResourcesConfig r = config.Resources;
        sb.Append(CultureInfo.InvariantCulture, $"resources: {{ memory: {r.Memory?.ToString(CultureInfo.InvariantCulture) ?? "none"}, disk: {r.Disk?.ToString(CultureInfo.InvariantCulture) ?? "none"}, inodes: {r.Inodes?.ToString(CultureInfo.InvariantCulture) ?? "none"}, open_files: {r.OpenFiles?.ToString(CultureInfo.InvariantCulture) ?? "none"}, ops_per_second: {r.OpsPerSecond?.ToString(CultureInfo.InvariantCulture) ?? "none"}, bytes_per_second: {r.BytesPerSecond?.ToString(CultureInfo.InvariantCulture) ?? "none"} }}\n");
        sb.Append("response: { suspend_on: ").Append(config.Response.SuspendOn?.ToString().ToLowerInvariant() ?? "default").Append(" }\n");
        sb.Append("warnings:\n");
        foreach (string w in _instance.Security.Warnings)
        {
            sb.Append("  - \"").Append(w.Replace("\"", "'", StringComparison.Ordinal)).Append("\"\n");
        }

        return sb.ToString();
    }

    private string RulesText()
    {
        RuleEngineStats stats = _instance.Rules.GetStats();
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"# {stats.Rules} rules ({stats.InlineRules} inline), reloads {stats.Reloads}, failed reloads {stats.FailedReloads}, state keys {stats.StateKeys}, evictions {stats.Evictions}, key-cap hits {stats.CapHits}\n");
        sb.Append("# rule\tkind\tinline\tenabled\thits\tsuppressed\tkeys\n");
        foreach (RuleStats r in stats.PerRule)
        {
            sb.Append(CultureInfo.InvariantCulture, $"{r.Rule}\t{r.Kind}\t{(r.Inline ? "inline" : "async")}\t{(r.Enabled ? "enabled" : "disabled")}\t{r.Hits}\t{r.Suppressed}\t{r.Keys}\n");
        }

        foreach (SkippedRule skipped in _instance.Rules.RuleSet.Skipped)
        {
            sb.Append(CultureInfo.InvariantCulture, $"# skipped: {skipped.Name}: {skipped.Reason}\n");
        }

        return sb.ToString();
    }

    private string MountsText()
    {
        var sb = new StringBuilder();
        foreach ((MountEntry m, Config.MountConfig c) in _instance.Mounts.Entries.Zip(_instance.Config.Mounts))
        {
            sb.Append(CultureInfo.InvariantCulture, $"{m.Path}\t{m.Backend.Kind}\t{c.Source ?? (c.Overlay is { } o ? $"overlay:lower={string.Join(':', o.Lower)},upper={o.Upper ?? "-"}" : "memory:" + c.MemorySize)}\t{(m.ReadOnly ? "ro" : "rw")}\t{(m.Direct ? "direct=" + _instance.Proxy.DirectMode.DisplayName() : "proxied")}\n");
        }

        return sb.ToString();
    }

    private string Stats()
    {
        SecurityCounters c = _instance.Security.Counters();
        var sb = new StringBuilder("# op\tcount\tp50_us\tp90_us\tp99_us\n");
        foreach ((string op, long count) in c.PerOp.OrderByDescending(p => p.Value))
        {
            (double p50, double p90, double p99) = FsOpNames.TryParse(op, out FsOp parsed) ? _latencies.Percentiles(parsed) : (0, 0, 0);
            sb.Append(CultureInfo.InvariantCulture, $"{op}\t{count}\t{p50:0.#}\t{p90:0.#}\t{p99:0.#}\n");
        }

        return sb.ToString();
    }

    private string Metrics()
    {
        SecurityCounters c = _instance.Security.Counters();
        var sb = new StringBuilder();
        string name = _instance.Config.Name;
        Counter(sb, "inspatialfs_operations_total", "Operations decided by the secure proxy.", name, c.Decisions);
        Counter(sb, "inspatialfs_denials_total", "Operations denied.", name, c.Denials);
        Counter(sb, "inspatialfs_throttled_total", "Operations delayed by rate limits.", name, c.Throttled);
        Counter(sb, "inspatialfs_incidents_total", "Incidents recorded.", name, c.Incidents);
        Counter(sb, "inspatialfs_events_recorded_total", "Events queued for analysis.", name, c.EventsRecorded);
        Counter(sb, "inspatialfs_events_dropped_total", "Events dropped because the queue was full.", name, c.EventsDropped);
        Counter(sb, "inspatialfs_events_waited_total", "Events that must be analysed whose request waited for room in the queue.", name, c.EventsWaited);
        Counter(sb, "inspatialfs_incident_repeats_total", "Occurrences folded into an open incident of the same source, process and path.", name, c.IncidentRepeats);
        Counter(sb, "inspatialfs_incidents_suppressed_total", "Occurrences the per-source incident rate limit kept from opening incidents.", name, c.IncidentsSuppressed);
        Counter(sb, "inspatialfs_host_denials_total", "Operations of host processes refused by host_users.", name, c.HostDenials);
        sb.Append("# HELP inspatialfs_suspended Whether the container is suspended.\n# TYPE inspatialfs_suspended gauge\n");
        sb.Append(CultureInfo.InvariantCulture, $"inspatialfs_suspended{{instance=\"{name}\"}} {(c.Suspended ? 1 : 0)}\n");
        sb.Append("# HELP inspatialfs_live_nodes Nodes the kernel holds.\n# TYPE inspatialfs_live_nodes gauge\n");
        sb.Append(CultureInfo.InvariantCulture, $"inspatialfs_live_nodes{{instance=\"{name}\"}} {_instance.Proxy.LiveNodes}\n");
        sb.Append("# HELP inspatialfs_op_total Operations by type.\n# TYPE inspatialfs_op_total counter\n");
        foreach ((string op, long count) in c.PerOp)
        {
            sb.Append(CultureInfo.InvariantCulture, $"inspatialfs_op_total{{instance=\"{name}\",op=\"{op}\"}} {count}\n");
        }

        Outputs.AlertOutputsFactory.Metrics(sb, _instance.Alerts, name);
        _latencies.WritePrometheus(sb, name);
        return sb.ToString();
    }

    private string Incidents()
    {
        var sb = new StringBuilder();
        foreach (Incident i in _instance.Security.Incidents.List())
        {
            sb.Append(IncidentStore.ToJsonLine(i)).Append('\n');
        }

        return sb.ToString();
    }

    private static void Line(StringBuilder sb, string key, object value) => sb.Append(key).Append(": ").Append(Convert.ToString(value, CultureInfo.InvariantCulture)).Append('\n');

    private static void List(StringBuilder sb, string key, IReadOnlyList<string> items) =>
        sb.Append("  ").Append(key).Append(": [").Append(string.Join(", ", items)).Append("]\n");

    private static void Counter(StringBuilder sb, string metric, string help, string instance, long value) =>
        sb.Append(CultureInfo.InvariantCulture, $"# HELP {metric} {help}\n# TYPE {metric} counter\n{metric}{{instance=\"{instance}\"}} {value}\n");

    public void Dispose() => _subscription.Dispose();
}
