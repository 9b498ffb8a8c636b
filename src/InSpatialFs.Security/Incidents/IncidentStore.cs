using System.Globalization;
using System.Text;
using System.Text.Json;
using InSpatialFs.Security.Events;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.Security.Incidents;

/// <summary>
/// Incidents in memory and appended to <c>&lt;state_dir&gt;/incidents.jsonl</c>: one
/// <c>{"type":"incident",...}</c> line each, later status changes as <c>{"type":"status","id",...}</c> lines.
/// <see cref="Flush"/> writes the pending lines and fsyncs (once per batch); an incident is "reported" only
/// after that, so a kill -9 loses none that were reported. On start the file is replayed; a torn or
/// corrupt line is skipped with a warning.
/// Lock order: _gate only (no other lock is taken while holding it).
/// </summary>
public sealed class IncidentStore : IDisposable
{
    public const string FileName = "incidents.jsonl";

    private readonly object _gate = new();
    private readonly List<Incident> _incidents = [];
    private readonly Dictionary<string, Incident> _byId = new(StringComparer.Ordinal);
    private readonly List<byte[]> _pending = [];
    private readonly FileStream? _file;
    private readonly ILogger _log;
    private long _nextId = 1;

    /// <summary>Opens (creating) the store under <paramref name="stateDir"/>; null keeps incidents in memory only.</summary>
    public IncidentStore(string? stateDir, ILogger? log = null)
    {
        _log = log ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        if (stateDir is null) return;
        FilePath = Path.Combine(stateDir, FileName);
        // Created 0600 beneath a checked directory, never through a symlink; checked before it is read back.
        _file = Interop.TrustedPath.OpenAppendStream(stateDir, FileName, bufferSize: 1);
        if (_file.Length > 0) Load(FilePath);
    }

    public string? FilePath { get; }
    /// <summary>Lines skipped at load (torn or corrupt).</summary>
    public int SkippedLines { get; private set; }

    public int Count
    {
        get
        {
            lock (_gate) return _incidents.Count;
        }
    }

    /// <summary>Assigns an id, keeps the incident and queues its line for the next <see cref="Flush"/>.</summary>
    public Incident Add(Func<string, Incident> create)
    {
        Incident inc;
        lock (_gate)
        {
            string id = "inc-" + _nextId++.ToString("D6", CultureInfo.InvariantCulture);
            inc = create(id);
            _incidents.Add(inc);
            _byId[id] = inc;
            _pending.Add(Serialize(inc));
        }

        Added?.Invoke(inc); // outside the lock: alert outputs format and queue it (never block)
        return inc;
    }

    /// <summary>Raised after each new incident (on the thread that added it); alert outputs subscribe here.</summary>
    public event Action<Incident>? Added;

    /// <summary>Changes an incident's status (acknowledge, resolve); false for an unknown id.</summary>
    public bool SetStatus(string id, IncidentStatus status)
    {
        lock (_gate)
        {
            if (!_byId.TryGetValue(id, out Incident? inc)) return false;
            inc.Status = status;
            _pending.Add(SerializeStatus(id, status, inc.Response));
            return true;
        }
    }

    /// <summary>Records a response taken after the incident line was written.</summary>
    public void SetResponse(string id, string response)
    {
        lock (_gate)
        {
            if (!_byId.TryGetValue(id, out Incident? inc)) return;
            inc.Response = response;
            _pending.Add(SerializeStatus(id, inc.Status, response));
        }
    }

    public Incident? Get(string id)
    {
        lock (_gate) return _byId.GetValueOrDefault(id);
    }

    public IReadOnlyList<Incident> List(IncidentStatus? status = null)
    {
        lock (_gate) return _incidents.Where(i => status is null || i.Status == status).ToList();
    }

    /// <summary>Writes the pending lines and fsyncs. Called once per event batch and after each status change.</summary>
    public void Flush()
    {
        lock (_gate)
        {
            if (_pending.Count == 0) return;
            if (_file is not null)
            {
                foreach (byte[] line in _pending) _file.Write(line);
                _file.Flush(flushToDisk: true);
            }

            _pending.Clear();
        }
    }

    public static string ToJsonLine(Incident i) => Encoding.UTF8.GetString(Serialize(i)).TrimEnd('\n');

    private static byte[] Serialize(Incident i)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(1024);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("type", "incident");
            w.WriteString("id", i.Id);
            w.WriteString("time", i.Time.UtcDateTime.ToString("O", CultureInfo.InvariantCulture));
            w.WriteString("source", i.Source);
            w.WriteString("severity", i.Severity.ToString().ToLowerInvariant());
            if (i.ContainerId != null) w.WriteString("container", i.ContainerId);
            w.WriteNumber("pid", i.Pid);
            if (i.ProcessName != null) w.WriteString("process", i.ProcessName);
            w.WriteNumber("uid", i.Uid);
            if (i.Output != null) w.WriteString("output", i.Output);
            w.WriteString("response", i.Response);
            w.WriteString("status", StatusName(i.Status));
            w.WriteStartArray("evidence");
            foreach (FsEvent e in i.Evidence) FsEventJson.Write(w, e);
            w.WriteEndArray();
            w.WriteEndObject();
        }

        return [.. buffer.WrittenSpan, (byte)'\n'];
    }

    private static byte[] SerializeStatus(string id, IncidentStatus s, string response)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(128);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("type", "status");
            w.WriteString("id", id);
            w.WriteString("status", StatusName(s));
            w.WriteString("response", response);
            w.WriteString("time", DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture));
            w.WriteEndObject();
        }

        return [.. buffer.WrittenSpan, (byte)'\n'];
    }

    public static string StatusName(IncidentStatus s) => s switch
    {
        IncidentStatus.Open => "open",
        IncidentStatus.Acknowledged => "acknowledged",
        _ => "resolved",
    };

    public static IncidentStatus ParseStatus(string s) => s switch
    {
        "open" => IncidentStatus.Open,
        "acknowledged" => IncidentStatus.Acknowledged,
        "resolved" => IncidentStatus.Resolved,
        _ => throw new FormatException($"unknown incident status '{s}'"),
    };

    public static Severity ParseSeverity(string s) => s switch
    {
        "info" => Severity.Info,
        "low" => Severity.Low,
        "medium" => Severity.Medium,
        "high" => Severity.High,
        "critical" => Severity.Critical,
        _ => throw new FormatException($"unknown severity '{s}'"),
    };

    private void Load(string path)
    {
        int lineNo = 0;
        foreach (string line in File.ReadLines(path))
        {
            lineNo++;
            if (line.Length == 0) continue;
            try
            {
                using var doc = JsonDocument.Parse(line);
                JsonElement o = doc.RootElement;
                string type = o.GetProperty("type").GetString()!;
                string id = o.GetProperty("id").GetString()!;
                if (type == "incident")
                {
                    var evidence = new List<FsEvent>();
                    if (o.TryGetProperty("evidence", out JsonElement ev))
                    {
                        foreach (JsonElement e in ev.EnumerateArray()) evidence.Add(FsEventJson.Parse(e));
                    }

                    var inc = new Incident
                    {
                        Id = id,
                        Time = DateTimeOffset.Parse(o.GetProperty("time").GetString()!, CultureInfo.InvariantCulture),
                        Source = o.GetProperty("source").GetString()!,
                        Severity = ParseSeverity(o.GetProperty("severity").GetString()!),
                        ContainerId = o.TryGetProperty("container", out JsonElement c) ? c.GetString() : null,
                        Pid = o.GetProperty("pid").GetInt32(),
                        ProcessName = o.TryGetProperty("process", out JsonElement p) ? p.GetString() : null,
                        Uid = o.GetProperty("uid").GetUInt32(),
                        Output = o.TryGetProperty("output", out JsonElement op) ? op.GetString() : null,
                        Evidence = evidence,
                        Response = o.GetProperty("response").GetString()!,
                        Status = ParseStatus(o.GetProperty("status").GetString()!),
                    };
                    if (_byId.TryAdd(id, inc)) _incidents.Add(inc);
                }
                else if (type == "status" && _byId.TryGetValue(id, out Incident? known))
                {
                    known.Status = ParseStatus(o.GetProperty("status").GetString()!);
                    if (o.TryGetProperty("response", out JsonElement r)) known.Response = r.GetString()!;
                }

                if (id.StartsWith("inc-", StringComparison.Ordinal)
                    && long.TryParse(id.AsSpan(4), NumberStyles.None, CultureInfo.InvariantCulture, out long n) && n >= _nextId)
                {
                    _nextId = n + 1;
                }
            }
            catch (Exception ex) when (ex is JsonException or FormatException or KeyNotFoundException or InvalidOperationException)
            {
                SkippedLines++;
                SecurityLog.IncidentLineSkipped(_log, path, lineNo, ex.Message);
            }
        }
    }

    public void Dispose()
    {
        Flush();
        _file?.Dispose();
    }
}
