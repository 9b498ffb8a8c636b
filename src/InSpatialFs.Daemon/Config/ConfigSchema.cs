using System.Text.Json;
using System.Text.Json.Nodes;

namespace InSpatialFs.Daemon.Config;

/// <summary>
/// The JSON Schema (draft 2020-12) of the config file, for editors (yaml-language-server's `# yaml-language-server:
/// $schema=...`) and CI: generated from the loader's own key tables (<see cref="ConfigLoader.KeyTables"/>), so a key
/// the loader accepts is in the schema and a key it refuses is not (every section has additionalProperties: false).
/// The value shapes are the loader's checks in JSON Schema form; the loader stays the authority (it also checks what a
/// schema cannot: that directories exist, that mount paths do not overlap the control directory, ...).
/// </summary>
public static class ConfigSchema
{
    public const string Id = "https://inspatialfs.dev/schemas/config.schema.json";

    private static JsonObject Str(string? pattern = null, string? description = null)
    {
        var o = new JsonObject { ["type"] = "string" };
        if (pattern != null) o["pattern"] = pattern;
        if (description != null) o["description"] = description;
        return o;
    }

    private static JsonObject AbsolutePath(string description) => Str("^/", description);

    private static JsonObject Size(string description) => new()
    {
        ["description"] = description + " A size: 4096, 512K, 64MiB, 1GiB (K/Ki = 1024, KB = 1000).",
        ["oneOf"] = new JsonArray(
            new JsonObject { ["type"] = "integer", ["minimum"] = 1 },
            Str(@"^\s*[0-9]+\s*([kKmMgGtT]([iI]?[bB]?)?|[bB]|[kKmMgGtT][bB])?\s*$")),
    };

    private static JsonObject Count(string description) => new() { ["type"] = "integer", ["minimum"] = 1, ["description"] = description };

    private static JsonObject Flag(string description) => new()
    {
        ["description"] = description,
        ["enum"] = new JsonArray(true, false, "true", "false", "yes", "no", "on", "off"),
    };

    private static JsonObject Choice(string description, params string[] values) =>
        new() { ["type"] = "string", ["enum"] = new JsonArray(values.Select(v => (JsonNode?)v).ToArray()), ["description"] = description };

    private static JsonObject Duration(string description) => Str("^[0-9]+(ms|s|m)$", description + " A duration: 500ms, 5s, 1m.");

    private static JsonObject PathList(string description) => new() { ["type"] = "array", ["items"] = Str("^/"), ["description"] = description };

    private static JsonObject Headers() => new()
    {
        ["type"] = "object",
        ["additionalProperties"] = new JsonObject { ["type"] = new JsonArray("string", "number", "boolean") },
        ["description"] = "Extra HTTP headers (name: value), e.g. Authorization.",
    };

    /// <summary>Every leaf key, by dotted section path, with its value's shape. A key the loader reads that is missing here fails generation (and its test).</summary>
    private static Dictionary<string, Func<JsonObject>> Leaves() => new(StringComparer.Ordinal)
    {
        ["name"] = () => Str("^[A-Za-z0-9_.-]{1,64}$", "Instance name, one path component (default: the mountpoint's base name)."),
        ["mountpoint"] = () => AbsolutePath("Where the container filesystem is mounted (MOUNTPOINT on the command line overrides it)."),
        ["control"] = () => AbsolutePath("Control directory mount (default /run/inspatialfs/NAME)."),
        ["state_dir"] = () => AbsolutePath("Journal and incidents directory (default /var/lib/inspatialfs/NAME)."),
        ["isolation"] = () => Choice("Isolation level.", "standard", "enhanced", "maximum"),
        ["metrics_listen"] = () => Str(@"^(\d{1,3}(\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]):\d{1,5}$", "Serve Prometheus metrics over HTTP at http://ADDRESS:PORT/metrics (e.g. 127.0.0.1:9464)."),
        ["io_uring"] = () => Flag("Take the container mount's requests over FUSE over io_uring (as mount --io-uring): needs /sys/module/fuse/parameters/enable_uring Y; the instance is then not kept across a server crash."),
        ["mounts[].path"] = () => AbsolutePath("Namespace path of the mount, absolute and normalized; one mount must be at /."),
        ["mounts[].source"] = () => AbsolutePath("Host directory served (reached only through descriptors)."),
        ["mounts[].readonly"] = () => Flag("Write-class operations get EROFS."),
        ["mounts[].direct"] = () => Flag("DirectFS: trusted files' data goes straight to the host file (host sources only)."),
        ["mounts[].memory.size"] = () => Size("Size limit of the in-memory mount."),
        ["mounts[].overlay.lower"] = () => new JsonObject { ["type"] = "array", ["minItems"] = 1, ["items"] = Str("^/"), ["description"] = "Lower directories, top first." },
        ["mounts[].overlay.upper"] = () => AbsolutePath("Writable upper directory (with work)."),
        ["mounts[].overlay.work"] = () => AbsolutePath("Work directory on the upper's filesystem (with upper)."),
        ["paths.forbidden"] = () => PathList("Globs that are denied (EACCES) and hidden; * within a component, ** across."),
        ["paths.readonly"] = () => PathList("Globs whose writes get EROFS."),
        ["paths.allowed"] = () => PathList("Globs that are allowed."),
        ["resources.memory"] = () => Size("Memory of the in-memory mounts together."),
        ["resources.disk"] = () => Size("Bytes written through the proxy (quota)."),
        ["resources.inodes"] = () => Count("Files and directories created (quota)."),
        ["resources.open_files"] = () => Count("Open files at once."),
        ["resources.ops_per_second"] = () => Count("Operations per second (rate limit)."),
        ["resources.bytes_per_second"] = () => Size("Bytes per second read and written (rate limit)."),
        ["exec.runtime_written"] = () => Choice("exec of files written at run time.", "allow", "alert", "deny"),
        ["controls.refuse_setuid"] = () => Flag("Refuse setuid/setgid bits."),
        ["controls.refuse_devices"] = () => Flag("Refuse device nodes."),
        ["controls.refuse_fifos_sockets"] = () => Flag("Refuse FIFOs and sockets."),
        ["controls.refuse_security_xattrs"] = () => Flag("Refuse security.* and trusted.* xattr writes."),
        ["controls.refuse_all_xattr_writes"] = () => Flag("Refuse every xattr write."),
        ["controls.restrict_hardlinks"] = () => Flag("Hard links only to files the caller owns."),
        ["controls.restrict_symlinks"] = () => Flag("Symlink targets stay inside the container."),
        ["controls.allow_direct"] = () => Flag("Allow DirectFS mounts."),
        ["controls.exec_runtime_written"] = () => Choice("The same setting as exec.runtime_written (give one).", "allow", "alert", "deny"),
        ["response.suspend_on"] = () => Choice("Suspend the container on detections of this severity or higher.", "info", "low", "medium", "high", "critical"),
        ["container.cgroup"] = () => AbsolutePath("The container's cgroup path as in /proc/PID/cgroup (runc's linux.cgroupsPath, e.g. /inspatial/web-1), for membership and suspend."),
        ["container.init_pid"] = () => Count("Host pid of the container's init."),
        ["rules.files"] = () => new JsonObject { ["type"] = "array", ["items"] = Str(), ["description"] = "Rule files (YAML); relative names are taken from the config file's directory." },
        ["rules.builtins"] = () => Flag("Load the built-in rules (false: only files, Falco's -r)."),
        ["outputs.append"] = () => Str(null, "Text with %fields appended to every rule's output."),
        ["outputs.queue"] = () => Count("Alerts each channel holds while its receiver is slow or away."),
        ["outputs.retry.initial"] = () => Duration("First retry delay."),
        ["outputs.retry.max"] = () => Duration("Longest retry delay."),
        ["outputs.retry.give_up"] = () => Duration("Give an alert up after retrying this long."),
        ["outputs.stdout"] = () => Flag("Alerts as JSON lines on stdout."),
        ["outputs.file.path"] = () => AbsolutePath("JSON lines file."),
        ["outputs.file.max_size"] = () => Size("Rotate past this size."),
        ["outputs.file.keep"] = () => Count("Rotated files kept."),
        ["outputs.syslog.socket"] = () => AbsolutePath("Unix datagram socket (default /dev/log)."),
        ["outputs.syslog.facility"] = () => Choice("Syslog facility.", "kern", "user", "daemon", "auth", "syslog", "authpriv", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"),
        ["outputs.http.url"] = () => Str("^https?://", "Webhook receiving each alert's JSON (falcosidekick: http://HOST:2801/)."),
        ["outputs.http.timeout"] = () => Duration("Request timeout."),
        ["outputs.http.headers"] = Headers,
        ["outputs.otlp.endpoint"] = () => Str("^https?://", "OpenTelemetry collector (OTLP/HTTP, e.g. http://HOST:4318)."),
        ["outputs.otlp.timeout"] = () => Duration("Request timeout."),
        ["outputs.otlp.headers"] = Headers,
        ["host_users.root"] = () => Choice("What host root may do.", "full", "no-quota-writes", "read-only", "none"),
        ["host_users.others"] = () => Choice("What other host users may do.", "full", "no-quota-writes", "read-only", "none"),
        ["incidents.rate"] = () => new JsonObject { ["type"] = "number", ["exclusiveMinimum"] = 0, ["description"] = "Incidents per second per source (rate limit)." },
        ["incidents.max_burst"] = () => Count("Burst of incidents per source."),
        ["incidents.rotate_bytes"] = () => Size("Rotate incidents.jsonl past this size."),
        ["incidents.keep"] = () => Count("Rotated incident files kept."),
        ["events.journal"] = () => Flag("Write every event to STATE_DIR/events.jsonl (default true); alert outputs, the events control file and incidents do not depend on it."),
        ["events.rotate_bytes"] = () => Size("Rotate events.jsonl past this size (default 64MiB)."),
        ["events.keep"] = () => Count("Rotated event journals kept (default 4)."),
    };

    private static readonly Dictionary<string, string[]> Required = new(StringComparer.Ordinal)
    {
        [""] = ["mounts"],
        ["mounts[]"] = ["path"],
        ["mounts[].memory"] = ["size"],
        ["mounts[].overlay"] = ["lower"],
        ["outputs.file"] = ["path"],
        ["outputs.http"] = ["url"],
        ["outputs.otlp"] = ["endpoint"],
    };

    /// <summary>The schema document.</summary>
    public static JsonObject Build()
    {
        var tables = ConfigLoader.KeyTables().ToDictionary(t => t.Section, t => t.Keys, StringComparer.Ordinal);
        Dictionary<string, Func<JsonObject>> leaves = Leaves();
        var used = new HashSet<string>(StringComparer.Ordinal);

        JsonObject Section(string section)
        {
            var properties = new JsonObject();
            foreach (string key in tables[section])
            {
                string path = section.Length == 0 ? key : section + "." + key;
                if (key == "mounts" && section.Length == 0)
                {
                    properties[key] = new JsonObject { ["type"] = "array", ["minItems"] = 1, ["items"] = Section("mounts[]"), ["description"] = "The mount table; one mount at /." };
                }
                else if (tables.ContainsKey(path))
                {
                    properties[key] = Section(path);
                }
                else
                {
                    properties[key] = leaves.TryGetValue(path, out Func<JsonObject>? leaf) ? leaf()
                        : throw new InvalidOperationException($"config key '{path}' has no schema shape (add it to ConfigSchema.Leaves)");
                    used.Add(path);
                }
            }

            var o = new JsonObject { ["type"] = "object", ["additionalProperties"] = false, ["properties"] = properties };
            if (Required.TryGetValue(section, out string[]? required)) o["required"] = new JsonArray(required.Select(r => (JsonNode?)r).ToArray());
            return o;
        }

        JsonObject root = Section("");
        string[] stale = [.. leaves.Keys.Where(k => !used.Contains(k))];
        if (stale.Length > 0) throw new InvalidOperationException("schema shapes for keys the loader does not read: " + string.Join(", ", stale));
        var schema = new JsonObject
        {
            ["$schema"] = "https://json-schema.org/draft/2020-12/schema",
            ["$id"] = Id,
            ["title"] = "InSpatialFs instance configuration",
            ["description"] = "Generated by `inspatialfs config schema` from the loader's key tables; `inspatialfs config validate FILE` checks what a schema cannot.",
        };
        foreach ((string k, JsonNode? v) in root.ToList())
        {
            root.Remove(k);
            schema[k] = v;
        }

        return schema;
    }

    /// <summary>Indented, and with quotes and apostrophes as written (a file for people and editors, never embedded in HTML).</summary>
    public static string ToJson() => Build().ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n";
}
