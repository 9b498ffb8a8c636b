using System.Globalization;
using System.Text;
using InSpatialFs.Daemon.Control;
using InSpatialFs.Fuse;
using InSpatialFs.Interop;
using InSpatialFs.Security;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Incidents;
using InSpatialFs.Security.Rules;
using InSpatialFs.Proxy.Direct;
using InSpatialFs.Storage.Memory;
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
            case ControlVerb.Upgrade:
                return _instance.HandOver(command.Argument, out message);
            case ControlVerb.Ack when security.Incidents.Get(command.Argument!) is { Status: Security.Incidents.IncidentStatus.Resolved }:
                // Acknowledging would reopen it (an acknowledged incident is still open work).
                message = $"incident {command.Argument} is resolved already";
                return Errno.EINVAL;
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
        Line(sb, "transport", _instance.Transport);
        Line(sb, "readers", _instance.ReaderPlacement);
        Line(sb, "ring_requests", _instance.RingRequests);
        Line(sb, "restart_mode", _instance.RestartMode);
        Line(sb, "restarts", _instance.Restarts);
        Line(sb, "last_handover_ms", _instance.LastHandover is TimeSpan h ? ((long)h.TotalMilliseconds).ToString(CultureInfo.InvariantCulture) : "none");
        Line(sb, "requests_resent", _instance.ResentRequests);
        Line(sb, "journal_bytes", _instance.JournalBytes);
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
        Line(sb, "fuse_requests", _instance.FuseRequests.Sum());
        Line(sb, "live_nodes", _instance.Proxy.LiveNodes);
        Line(sb, "open_handles", _instance.Proxy.OpenHandles);
        // Resident memory, the GC's part of it as of its last collection, and the collections run to give back what a
        // burst of work or the nodes the kernel let go of left resident (see IdleMemoryReturn).
        Line(sb, "memory_rss_kib", Environment.WorkingSet / 1024);
        Line(sb, "gc_committed_kib", GC.GetGCMemoryInfo().TotalCommittedBytes / 1024);
        Line(sb, "memory_returns", _instance.IdleMemoryReturns);
        // What reached the daemon rather than the kernel's caches, and what the last cache drop found cached.
        Line(sb, "kernel_lookups", _instance.Proxy.LookupRequests);
        Line(sb, "kernel_getattrs", _instance.Proxy.GetAttrRequests);
        Line(sb, "kernel_readdirs", _instance.Proxy.ReadDirRequests);
        InSpatialFs.Proxy.Nodes.InvalidationStats inval = _instance.Proxy.Invalidations;
        Line(sb, "cache_invalidations", FormattableString.Invariant($"{inval.Passes} last_entries={inval.EntriesDropped} last_nodes={inval.NodesDropped} epoch={(inval.EpochSupported ? "yes" : "no")}"));
        if (_instance.Mounts.Entries.Any(m => m.Direct))
        {
            Line(sb, "spliced_reads", _instance.SplicedReadReplies);
            Line(sb, "spliced_reads_unfit", _instance.UnfitSplicedReads);
            Line(sb, "spliced_reads_failed", _instance.FailedSplicedReads);
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

        if (_instance.Proxy.JournalFailure is string journalFailure)
        {
            Line(sb, "warning", $"the restart journal cannot be written ({journalFailure}): until it can, a restart may not find the files the kernel holds");
        }

        foreach (MountEntry m in _instance.Mounts.Entries)
        {
            if (m.Backend is MemoryFileSystem { JournalFailure: string why })
            {
                Line(sb, "warning", $"memory mount {m.Path}: its journal cannot be written ({why}): changes to names, modes, owners and xattrs get ENOSPC until it can");
            }
        }

        return sb.ToString();
    }

    private string MountLine(MountEntry m) =>
        $"{m.Path} {m.Backend.Kind}{(m.ReadOnly ? " ro" : " rw")}{(m.Direct ? " direct: " + _instance.Proxy.DirectMode.DisplayName() : "")}";

    private string Policy() => PolicyYaml.Render(_instance.Config, _instance.Security.Controls);

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

    /// <summary>count: operations decided; events: those recorded as events, whose latencies the percentiles are of.</summary>
    private string Stats()
    {
        SecurityCounters c = _instance.Security.Counters();
        var sb = new StringBuilder("# op\tcount\tp50_us\tp90_us\tp99_us\tevents\n");
        foreach ((string op, long count) in c.PerOp.OrderByDescending(p => p.Value))
        {
            bool known = FsOpNames.TryParse(op, out FsOp parsed);
            (double p50, double p90, double p99) = known ? _latencies.Percentiles(parsed) : (0, 0, 0);
            sb.Append(CultureInfo.InvariantCulture, $"{op}\t{count}\t{p50:0.#}\t{p90:0.#}\t{p99:0.#}\t{(known ? _latencies.Count(parsed) : 0)}\n");
        }

        return sb.ToString();
    }

    /// <summary>The Prometheus exposition (control file `metrics` and, with metrics_listen, http://ADDRESS/metrics).</summary>
    public string Metrics()
    {
        SecurityCounters c = _instance.Security.Counters();
        var p = new PrometheusText(new StringBuilder(), _instance.Config.Name);
        p.Family("inspatialfs_operations_total", "counter", "Operations decided by the secure proxy, by operation (every one, events or not).");
        foreach ((string op, long count) in c.PerOp.OrderBy(o => o.Key, StringComparer.Ordinal))
        {
            p.Sample("inspatialfs_operations_total", count, ("op", op));
        }

        p.Single("inspatialfs_denials_total", "counter", "Operations denied.", c.Denials);
        p.Single("inspatialfs_throttled_total", "counter", "Operations delayed by rate limits.", c.Throttled);
        p.Single("inspatialfs_incidents_total", "counter", "Incidents recorded.", c.Incidents);
        p.Single("inspatialfs_incidents_open", "gauge", "Incidents neither acknowledged nor resolved.", c.IncidentsOpen);
        p.Single("inspatialfs_events_recorded_total", "counter", "Events queued for analysis.", c.EventsRecorded);
        p.Single("inspatialfs_events_dropped_total", "counter", "Events dropped because the queue was full.", c.EventsDropped);
        p.Single("inspatialfs_events_waited_total", "counter", "Events that must be analysed whose request waited for room in the queue.", c.EventsWaited);
        p.Single("inspatialfs_incident_repeats_total", "counter", "Occurrences folded into an open incident of the same source, process and path.", c.IncidentRepeats);
        p.Single("inspatialfs_incidents_suppressed_total", "counter", "Occurrences the per-source incident rate limit kept from opening incidents.", c.IncidentsSuppressed);
        p.Single("inspatialfs_host_denials_total", "counter", "Operations of host processes refused by host_users.", c.HostDenials);
        p.Single("inspatialfs_suspended", "gauge", "Whether the container is suspended (1) or running (0).", c.Suspended ? 1 : 0);
        p.Single("inspatialfs_blocked_processes", "gauge", "Processes blocked by a block-process response.", c.BlockedProcesses);
        p.Single("inspatialfs_open_files", "gauge", "Files the container holds open.", c.OpenFiles);
        p.Single("inspatialfs_live_nodes", "gauge", "Nodes the kernel holds.", _instance.Proxy.LiveNodes);
        p.Single("inspatialfs_open_handles", "gauge", "Open file and directory handles.", _instance.Proxy.OpenHandles);
        p.Single("inspatialfs_resident_memory_bytes", "gauge", "The server's resident memory.", Environment.WorkingSet);
        p.Single("inspatialfs_gc_committed_bytes", "gauge", "Memory the GC had committed after its last collection.", GC.GetGCMemoryInfo().TotalCommittedBytes);
        p.Single("inspatialfs_memory_returns_total", "counter", "Full collections run, once quiet, to give back what a burst of work or forgotten nodes left resident.", _instance.IdleMemoryReturns);
        p.Single("inspatialfs_server_restarts_total", "counter", "Servers before this one on the same live mount (restarts after a crash and upgrades).", _instance.Restarts);
        p.Single("inspatialfs_last_handover_seconds", "gauge", "From the previous server's end to this one serving (0 for a fresh mount).",
            _instance.LastHandover?.TotalSeconds ?? 0);
        p.Single("inspatialfs_requests_resent_total", "counter", "Requests the previous server read and did not answer, resent to this one.", _instance.ResentRequests);

        var quotas = _instance.Security.Resources.Accounts.OrderBy(a => a.Mount, StringComparer.Ordinal).ToList();
        if (quotas.Count > 0)
        {
            p.Family("inspatialfs_quota_used_bytes", "gauge", "Bytes charged to the mount's quota.");
            foreach (Security.Resources.QuotaAccount q in quotas) p.Sample("inspatialfs_quota_used_bytes", q.Bytes, ("mount", q.Mount));
            p.Family("inspatialfs_quota_limit_bytes", "gauge", "The mount's byte quota (absent: unlimited).");
            foreach (Security.Resources.QuotaAccount q in quotas.Where(q => q.ByteLimit != null)) p.Sample("inspatialfs_quota_limit_bytes", q.ByteLimit!.Value, ("mount", q.Mount));
            p.Family("inspatialfs_quota_used_inodes", "gauge", "Inodes charged to the mount's quota.");
            foreach (Security.Resources.QuotaAccount q in quotas) p.Sample("inspatialfs_quota_used_inodes", q.Inodes, ("mount", q.Mount));
            p.Family("inspatialfs_quota_limit_inodes", "gauge", "The mount's inode quota (absent: unlimited).");
            foreach (Security.Resources.QuotaAccount q in quotas.Where(q => q.InodeLimit != null)) p.Sample("inspatialfs_quota_limit_inodes", q.InodeLimit!.Value, ("mount", q.Mount));
        }

        RuleEngineStats rules = _instance.Rules.GetStats();
        p.Family("inspatialfs_rule_hits_total", "counter", "Matches of each loaded rule.");
        foreach (RuleStats r in rules.PerRule) p.Sample("inspatialfs_rule_hits_total", r.Hits, ("rule", r.Rule));
        p.Family("inspatialfs_rule_suppressed_total", "counter", "Matches of each rule held back by its own rate limit or exceptions.");
        foreach (RuleStats r in rules.PerRule) p.Sample("inspatialfs_rule_suppressed_total", r.Suppressed, ("rule", r.Rule));
        p.Single("inspatialfs_rule_reloads_total", "counter", "Rule reloads that took effect.", rules.Reloads);
        p.Single("inspatialfs_rule_reload_failures_total", "counter", "Rule reloads refused (the old rules stayed).", rules.FailedReloads);

        Outputs.AlertOutputsFactory.Metrics(p, _instance.Alerts);
        _latencies.WritePrometheus(p);

        long[] requests = _instance.FuseRequests;
        p.Family("inspatialfs_fuse_requests_total", "counter", "FUSE requests the kernel sent for the container mount, per opcode.");
        for (int slot = 0; slot < requests.Length; slot++)
        {
            if (requests[slot] != 0) p.Sample("inspatialfs_fuse_requests_total", requests[slot], ("op", ProtocolServer.RequestCountName(slot)));
        }

        using var self = System.Diagnostics.Process.GetCurrentProcess();
        p.Single("process_resident_memory_bytes", "gauge", "Resident memory of the daemon.", self.WorkingSet64);
        p.Single("process_cpu_seconds_total", "counter", "CPU time of the daemon (user and system).", self.TotalProcessorTime.TotalSeconds);
        p.Single("process_start_time_seconds", "gauge", "Start of the instance, seconds since the Unix epoch.", (_instance.StartedUtc - DateTime.UnixEpoch).TotalSeconds);
        return p.Builder.ToString();
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

    public void Dispose() => _subscription.Dispose();
}
