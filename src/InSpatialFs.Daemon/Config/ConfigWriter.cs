using System.Globalization;
using InSpatialFs.Security;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Identity;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace InSpatialFs.Daemon.Config;

/// <summary>
/// Writes an <see cref="InstanceConfig"/> back as YAML the loader accepts (`inspatialfs config print`): every value the
/// instance will use, defaults made explicit, sizes in bytes, durations in their largest whole unit. Settings that
/// are "not set" (a limit with no value, a control left to the isolation level) are left out, because writing a
/// default in their place would change what they mean.
/// </summary>
public static class ConfigWriter
{
    public static string ToYaml(InstanceConfig c)
    {
        ArgumentNullException.ThrowIfNull(c);
        var root = new YamlMappingNode
        {
            { "name", Plain(c.Name) },
            { "mountpoint", Plain(c.Mountpoint) },
            { "control", Plain(c.Control) },
            { "state_dir", Plain(c.StateDir) },
            { "isolation", Plain(FsEventJson.LevelName(c.Isolation)) },
            { "mounts", new YamlSequenceNode(c.Mounts.Select(Mount)) },
            {
                "paths", new YamlMappingNode
                {
                    { "forbidden", Paths(c.Paths.Forbidden) }, { "readonly", Paths(c.Paths.ReadOnly) }, { "allowed", Paths(c.Paths.Allowed) },
                }
            },
        };
        Section(root, "resources", [
            ("memory", Number(c.Resources.Memory)), ("disk", Number(c.Resources.Disk)), ("inodes", Number(c.Resources.Inodes)),
            ("open_files", Number(c.Resources.OpenFiles)), ("ops_per_second", Number(c.Resources.OpsPerSecond)),
            ("bytes_per_second", Number(c.Resources.BytesPerSecond))]);
        // controls.exec_runtime_written is the same setting as exec.runtime_written (the loader folds it into Exec): one of them.
        Section(root, "exec", [("runtime_written", c.Exec.RuntimeWritten == RuntimeWrittenExec.Default ? null : c.Exec.RuntimeWritten.ToString().ToLowerInvariant())]);
        ControlsConfig k = c.Controls;
        Section(root, "controls", [
            ("refuse_setuid", Bool(k.RefuseSetuid)), ("refuse_devices", Bool(k.RefuseDevices)), ("refuse_fifos_sockets", Bool(k.RefuseFifosSockets)),
            ("refuse_security_xattrs", Bool(k.RefuseSecurityXattrs)), ("refuse_all_xattr_writes", Bool(k.RefuseAllXattrWrites)),
            ("restrict_hardlinks", Bool(k.RestrictHardlinks)), ("restrict_symlinks", Bool(k.RestrictSymlinks)), ("allow_direct", Bool(k.AllowDirect))]);
        Section(root, "response", [("suspend_on", c.Response.SuspendOn is { } s ? SeverityName(s) : null)]);
        Section(root, "container", [("cgroup", c.Container.Cgroup), ("init_pid", Number(c.Container.InitPid))]);
        root.Add("rules", new YamlMappingNode
        {
            { "files", Paths(c.Rules.Files) },
            { "builtins", Plain(c.Rules.BuiltIns ? "true" : "false") },
        });
        if (c.Outputs.Any || c.Outputs.Append != null) root.Add("outputs", Outputs(c.Outputs));
        root.Add("host_users", new YamlMappingNode { { "root", Plain(HostAccessName(c.HostUsers.Root)) }, { "others", Plain(HostAccessName(c.HostUsers.Others)) } });
        Section(root, "incidents", [
            ("rate", c.Incidents.Rate?.ToString("0.############", CultureInfo.InvariantCulture)), ("max_burst", Number(c.Incidents.MaxBurst)),
            ("rotate_bytes", Number(c.Incidents.RotateBytes)), ("keep", Number(c.Incidents.Keep))]);
        Section(root, "events", [
            ("journal", c.Events.Journal ? null : "false"), ("rotate_bytes", Number(c.Events.RotateBytes)), ("keep", Number(c.Events.Keep))]);
        if (c.MetricsListen is { } listen) root.Add("metrics_listen", Quoted(listen));
        if (c.IoUring) root.Add("io_uring", Plain("true"));

        using var writer = new StringWriter(CultureInfo.InvariantCulture);
        writer.Write("# The effective configuration of '" + c.Name.Replace("\n", " ", StringComparison.Ordinal) + "' (defaults and overrides applied); `inspatialfs config validate` accepts it.\n");
        new YamlStream(new YamlDocument(root)).Save(writer, assignAnchors: false);
        string text = writer.ToString();
        // YamlStream ends a document with "...": legal, but not what a person writes.
        return text.EndsWith("...\n", StringComparison.Ordinal) ? text[..^4] : text;
    }

    private static YamlMappingNode Mount(MountConfig m)
    {
        var node = new YamlMappingNode { { "path", Plain(m.Path) } };
        switch (m.Kind)
        {
            case MountSourceKind.Memory:
                node.Add("memory", new YamlMappingNode { { "size", Plain(m.MemorySize!.Value.ToString(CultureInfo.InvariantCulture)) } });
                break;
            case MountSourceKind.Overlay:
                var overlay = new YamlMappingNode { { "lower", Paths(m.Overlay!.Lower) } };
                if (m.Overlay.Upper != null) overlay.Add("upper", Plain(m.Overlay.Upper));
                if (m.Overlay.Work != null) overlay.Add("work", Plain(m.Overlay.Work));
                node.Add("overlay", overlay);
                break;
            default:
                node.Add("source", Plain(m.Source!));
                break;
        }

        node.Add("readonly", Plain(m.ReadOnly ? "true" : "false"));
        if (m.Kind != MountSourceKind.Memory) node.Add("direct", Plain(m.Direct ? "true" : "false"));
        return node;
    }

    private static YamlMappingNode Outputs(OutputsConfig o)
    {
        var node = new YamlMappingNode();
        if (o.Append != null) node.Add("append", Quoted(o.Append));
        node.Add("queue", Plain(o.QueueCapacity.ToString(CultureInfo.InvariantCulture)));
        node.Add("retry", new YamlMappingNode
        {
            { "initial", Plain(Duration(o.RetryInitial)) }, { "max", Plain(Duration(o.RetryMax)) }, { "give_up", Plain(Duration(o.RetryGiveUp)) },
        });
        node.Add("stdout", Plain(o.Stdout ? "true" : "false"));
        if (o.File is { } f)
        {
            node.Add("file", new YamlMappingNode
            {
                { "path", Plain(f.Path) }, { "max_size", Plain(f.MaxBytes.ToString(CultureInfo.InvariantCulture)) }, { "keep", Plain(f.Keep.ToString(CultureInfo.InvariantCulture)) },
            });
        }

        if (o.Syslog is { } s)
        {
            node.Add("syslog", new YamlMappingNode { { "socket", Plain(s.Socket) }, { "facility", Plain(FacilityName(s.Facility)) } });
        }

        if (o.Http is { } h) node.Add("http", Http("url", h.Url, h.Timeout, h.Headers));
        if (o.Otlp is { } otlp) node.Add("otlp", Http("endpoint", otlp.Endpoint, otlp.Timeout, otlp.Headers));
        return node;
    }

    private static YamlMappingNode Http(string urlKey, Uri url, TimeSpan timeout, IReadOnlyDictionary<string, string> headers)
    {
        var node = new YamlMappingNode { { urlKey, Quoted(url.ToString()) }, { "timeout", Plain(Duration(timeout)) } };
        if (headers.Count > 0)
        {
            var h = new YamlMappingNode();
            foreach ((string k, string v) in headers.OrderBy(p => p.Key, StringComparer.Ordinal)) h.Add(Quoted(k), Quoted(v));
            node.Add("headers", h);
        }

        return node;
    }

    /// <summary>Adds the section with its set values only; a section with none is left out (the loader's defaults are "not set").</summary>
    private static void Section(YamlMappingNode root, string key, (string Key, string? Value)[] values)
    {
        var node = new YamlMappingNode();
        foreach ((string k, string? v) in values)
        {
            if (v != null) node.Add(k, k is "cgroup" ? Plain(v) : Scalar(v));
        }

        if (node.Children.Count > 0) root.Add(key, node);
    }

    private static string? Number(long? value) => value?.ToString(CultureInfo.InvariantCulture);

    private static string? Bool(bool? value) => value is { } b ? b ? "true" : "false" : null;

    /// <summary>The largest whole unit the loader reads (m, s, ms).</summary>
    internal static string Duration(TimeSpan t) =>
        t.Ticks % TimeSpan.TicksPerMinute == 0 ? FormattableString.Invariant($"{(long)t.TotalMinutes}m")
        : t.Ticks % TimeSpan.TicksPerSecond == 0 ? FormattableString.Invariant($"{(long)t.TotalSeconds}s")
        : FormattableString.Invariant($"{(long)t.TotalMilliseconds}ms");

    private static string SeverityName(Severity s) => s.ToString().ToLowerInvariant();

    private static string HostAccessName(HostAccess a) => a switch
    {
        HostAccess.Full => "full",
        HostAccess.NoQuotaWrites => "no-quota-writes",
        HostAccess.ReadOnly => "read-only",
        _ => "none",
    };

    private static readonly string[] Facilities =
        ["kern", "user", "daemon", "auth", "syslog", "authpriv", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"];

    private static string FacilityName(int facility) =>
        Facilities.FirstOrDefault(n => Security.Outputs.SyslogAlertChannel.ParseFacility(n) == facility) ?? "user";

    private static YamlSequenceNode Paths(IEnumerable<string> items)
    {
        var seq = new YamlSequenceNode(items.Select(Plain)) { Style = YamlDotNet.Core.Events.SequenceStyle.Flow };
        return seq;
    }

    /// <summary>Names and paths as written (the loader holds them to rules that keep them plain-safe); anything odd is quoted.</summary>
    private static YamlScalarNode Plain(string value) =>
        value.Length > 0 && value.All(ch => char.IsAsciiLetterOrDigit(ch) || ch is '/' or '.' or '-' or '_' or '*' or '+' or '@') && value[0] != '*' && value[0] != '@'
            ? new YamlScalarNode(value) { Style = ScalarStyle.Plain }
            : Quoted(value);

    private static YamlScalarNode Scalar(string value) => Plain(value);

    private static YamlScalarNode Quoted(string value) => new(value) { Style = ScalarStyle.DoubleQuoted };
}
