using System.Text.Json;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Incidents;
using InSpatialFs.Security.Rules;

namespace InSpatialFs.Security.Outputs;

/// <summary>
/// One alert as Falco shapes it (<see cref="Json"/> is Falco's JSON output: time, rule, priority, output,
/// output_fields, source, tags, hostname), with the incident's own fields under <c>incident</c>. The structured
/// parts are kept for channels that are not JSON lines (OpenTelemetry log attributes).
/// </summary>
public sealed record Alert(
    byte[] Json,
    string Rule,
    string Priority,
    string Output,
    string Source,
    IReadOnlyList<string> Tags,
    IReadOnlyList<KeyValuePair<string, object?>> OutputFields,
    long TimeUnixNanos,
    string Hostname,
    Incident Incident)
{
    /// <summary>Fields of a policy denial (no rule, so no output template): what Falco's file rules print most.</summary>
    private static readonly string[] DenialFields = ["evt.type", "fd.name", "evt.res", "proc.name", "proc.pid", "proc.cmdline", "user.uid", "container.id"];

    /// <summary>Builds the alert of an incident; <paramref name="rules"/> is the running set (for the rule's template, priority, tags).</summary>
    public static Alert From(Incident incident, RuleSet? rules, string hostname)
    {
        FsEvent? e = incident.Evidence.Count > 0 ? incident.Evidence[^1] : null;
        CompiledRule? rule = rules?.Find(incident.Source);
        string priority = rule?.Priority ?? RuleReader.DefaultPriority(incident.Severity);
        long time = e?.TimeUnixNanos ?? (incident.Time.UtcTicks - DateTime.UnixEpoch.Ticks) * 100;
        var fields = new List<KeyValuePair<string, object?>>();
        if (e != null)
        {
            if (rule != null)
            {
                foreach ((string key, EventField? field) in rule.Output.Fields)
                {
                    fields.Add(new(key, field?.Value(e)));
                }
            }
            else
            {
                foreach (string key in DenialFields)
                {
                    EventFields.TryGet(key, out EventField field);
                    fields.Add(new(key, field.Value(e)));
                }
            }
        }

        string output = $"{FieldDefinitions.FalcoTime(time)}: {priority} {incident.Output}";
        IReadOnlyList<string> tags = rule?.Tags ?? [];
        string source = rule?.Source ?? "syscall";
        byte[] json = ToJson(incident, incident.Source, priority, output, source, tags, fields, time, hostname);
        return new Alert(json, incident.Source, priority, output, source, tags, fields, time, hostname, incident);
    }

    private static byte[] ToJson(Incident incident, string rule, string priority, string output, string source,
        IReadOnlyList<string> tags, List<KeyValuePair<string, object?>> fields, long time, string hostname)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(1024);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("hostname", hostname);
            w.WriteString("output", output);
            w.WriteStartObject("output_fields");
            foreach ((string key, object? value) in fields)
            {
                switch (value)
                {
                    case null: w.WriteNull(key); break;
                    case long n: w.WriteNumber(key, n); break;
                    case bool b: w.WriteBoolean(key, b); break;
                    default: w.WriteString(key, value.ToString()); break;
                }
            }

            w.WriteEndObject();
            w.WriteString("priority", priority);
            w.WriteString("rule", rule);
            w.WriteString("source", source);
            w.WriteStartArray("tags");
            foreach (string t in tags)
            {
                w.WriteStringValue(t);
            }

            w.WriteEndArray();
            w.WriteString("time", FsEventJson.FormatTime(time));
            w.WriteStartObject("incident");
            w.WriteString("id", incident.Id);
            w.WriteString("severity", incident.Severity.ToString().ToLowerInvariant());
            w.WriteString("response", incident.Response);
            w.WriteString("status", IncidentStore.StatusName(incident.Status));
            if (incident.ContainerId != null) w.WriteString("container", incident.ContainerId);
            w.WriteNumber("pid", incident.Pid);
            if (incident.ProcessName != null) w.WriteString("process", incident.ProcessName);
            w.WriteNumber("uid", incident.Uid);
            w.WriteEndObject();
            w.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }
}
