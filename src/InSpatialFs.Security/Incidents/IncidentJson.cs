using System.Buffers;
using System.Globalization;
using System.Text.Json;
using InSpatialFs.Security.Events;

namespace InSpatialFs.Security.Incidents;

/// <summary>
/// The lines of incidents.jsonl: <c>incident</c> (a whole incident), <c>status</c> (ack/resolve, response),
/// <c>update</c> (count, last seen and suppressed of an aggregated incident) and <c>snapshot</c> (first line of a
/// rotated-in file: the id counter and totals, followed by the incidents still open or acknowledged).
/// </summary>
internal static class IncidentJson
{
    public static byte[] Incident(Incident i)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("type", "incident");
            w.WriteString("id", i.Id);
            w.WriteString("time", Time(i.Time));
            w.WriteString("source", i.Source);
            w.WriteString("severity", i.Severity.ToString().ToLowerInvariant());
            if (i.ContainerId != null) w.WriteString("container", i.ContainerId);
            w.WriteNumber("pid", i.Pid);
            if (i.ProcessName != null) w.WriteString("process", i.ProcessName);
            w.WriteNumber("uid", i.Uid);
            if (i.Output != null) w.WriteString("output", i.Output);
            w.WriteString("response", i.Response);
            w.WriteString("status", IncidentStore.StatusName(i.Status));
            w.WriteNumber("count", i.Count);
            w.WriteString("last_seen", Time(i.LastSeen));
            w.WriteNumber("suppressed", i.Suppressed);
            if (i.Key != null) w.WriteString("key", i.Key);
            w.WriteStartArray("evidence");
            foreach (FsEvent e in i.Evidence) FsEventJson.Write(w, e);
            w.WriteEndArray();
            w.WriteEndObject();
        }

        return Line(buffer);
    }

    public static byte[] Status(string id, IncidentStatus s, string response) => Small(w =>
    {
        w.WriteString("type", "status");
        w.WriteString("id", id);
        w.WriteString("status", IncidentStore.StatusName(s));
        w.WriteString("response", response);
        w.WriteString("time", Time(DateTimeOffset.UtcNow));
    });

    public static byte[] Update(Incident i) => Small(w =>
    {
        w.WriteString("type", "update");
        w.WriteString("id", i.Id);
        w.WriteNumber("count", i.Count);
        w.WriteString("last_seen", Time(i.LastSeen));
        w.WriteNumber("suppressed", i.Suppressed);
    });

    public static byte[] Snapshot(long nextId, long repeats, long suppressed) => Small(w =>
    {
        w.WriteString("type", "snapshot");
        w.WriteString("id", "snapshot");
        w.WriteNumber("next_id", nextId);
        w.WriteNumber("repeats", repeats);
        w.WriteNumber("suppressed", suppressed);
        w.WriteString("time", Time(DateTimeOffset.UtcNow));
    });

    /// <summary>An incident line back into an incident (throws JsonException/FormatException/KeyNotFoundException on a bad line).</summary>
    public static Incident ParseIncident(JsonElement o)
    {
        var evidence = new List<FsEvent>();
        if (o.TryGetProperty("evidence", out JsonElement ev))
        {
            foreach (JsonElement e in ev.EnumerateArray()) evidence.Add(FsEventJson.Parse(e));
        }

        DateTimeOffset time = ParseTime(o.GetProperty("time"));
        return new Incident
        {
            Id = o.GetProperty("id").GetString()!,
            Time = time,
            Source = o.GetProperty("source").GetString()!,
            Severity = IncidentStore.ParseSeverity(o.GetProperty("severity").GetString()!),
            ContainerId = o.TryGetProperty("container", out JsonElement c) ? c.GetString() : null,
            Pid = o.GetProperty("pid").GetInt32(),
            ProcessName = o.TryGetProperty("process", out JsonElement p) ? p.GetString() : null,
            Uid = o.GetProperty("uid").GetUInt32(),
            Output = o.TryGetProperty("output", out JsonElement op) ? op.GetString() : null,
            Evidence = evidence,
            Response = o.GetProperty("response").GetString()!,
            Status = IncidentStore.ParseStatus(o.GetProperty("status").GetString()!),
            Count = o.TryGetProperty("count", out JsonElement n) ? n.GetInt64() : 1,
            LastSeen = o.TryGetProperty("last_seen", out JsonElement ls) ? ParseTime(ls) : time,
            Suppressed = o.TryGetProperty("suppressed", out JsonElement s) ? s.GetInt64() : 0,
            Key = o.TryGetProperty("key", out JsonElement k) ? k.GetString() : null,
        };
    }

    public static void ApplyUpdate(Incident i, JsonElement o)
    {
        i.Count = o.GetProperty("count").GetInt64();
        i.LastSeen = ParseTime(o.GetProperty("last_seen"));
        i.Suppressed = o.GetProperty("suppressed").GetInt64();
    }

    public static DateTimeOffset ParseTime(JsonElement e) => DateTimeOffset.Parse(e.GetString()!, CultureInfo.InvariantCulture);

    private static string Time(DateTimeOffset t) => t.UtcDateTime.ToString("O", CultureInfo.InvariantCulture);

    private static byte[] Small(Action<Utf8JsonWriter> body)
    {
        var buffer = new ArrayBufferWriter<byte>(160);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }

        return Line(buffer);
    }

    private static byte[] Line(ArrayBufferWriter<byte> buffer) => [.. buffer.WrittenSpan, (byte)'\n'];
}
