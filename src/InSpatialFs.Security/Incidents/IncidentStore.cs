using System.Globalization;
using System.Text;
using System.Text.Json;
using InSpatialFs.Security.Events;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.Security.Incidents;

/// <summary>What <see cref="IncidentStore.Report"/> did with an occurrence.</summary>
public enum IncidentOutcome : byte
{
    /// <summary>A new incident was opened.</summary>
    Opened,
    /// <summary>Folded into the open incident of the same (source, process, path).</summary>
    Repeated,
    /// <summary>The source's rate limit was exhausted: counted in its latest incident's "suppressed".</summary>
    Suppressed,
}

/// <summary>
/// Incidents in memory and appended to <c>&lt;state_dir&gt;/incidents.jsonl</c> (line types in <see cref="IncidentJson"/>).
/// <see cref="Flush"/> writes pending lines and fsyncs once per batch; an incident is "reported" only after that, so
/// a kill -9 loses none that were reported. Aggregated counts are written at most once a second (update lines).
/// Under attack it stays useful: a repeat of an open incident's (source, process, path) adds to its count, and each
/// source opens at most <see cref="IncidentOptions.MaxBurst"/> incidents at once, refilled at
/// <see cref="IncidentOptions.RatePerSecond"/>. The file rotates past <see cref="IncidentOptions.RotateBytes"/>: the
/// new file starts with a snapshot (id counter, totals, every incident still open or acknowledged), so a start reads
/// only the current file, in time bounded by the rotation size, never by the history; a torn or corrupt line is
/// skipped with a warning. Memory holds at most <see cref="IncidentOptions.MaxInMemory"/> incidents.
/// Lock order: _gate only (no other lock is taken while holding it).
/// </summary>
public sealed class IncidentStore : IDisposable
{
    public const string FileName = "incidents.jsonl";
    private const string RotatingSuffix = ".new";
    private const int MaxSources = 4096;
    private static readonly long UpdateInterval = System.Diagnostics.Stopwatch.Frequency;

    private readonly object _gate = new();
    private readonly List<Incident> _incidents = [];
    private readonly Dictionary<string, Incident> _byId = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Incident> _openByKey = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Incident> _latestBySource = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TokenBucket> _buckets = new(StringComparer.Ordinal);
    private readonly HashSet<Incident> _dirty = [];
    private readonly List<byte[]> _pending = [];
    private readonly IncidentOptions _options;
    private readonly ILogger _log;
    private FileStream? _file;
    private long _size, _snapshotBytes;
    private long _nextId = 1;
    private long _repeats, _suppressed, _lastUpdateWrite;

    /// <summary>Opens (creating) the store under <paramref name="stateDir"/>; null keeps incidents in memory only.</summary>
    public IncidentStore(string? stateDir, ILogger? log = null, IncidentOptions? options = null)
    {
        _log = log ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        _options = options ?? new IncidentOptions();
        if (stateDir is null) return;
        FilePath = Path.Combine(stateDir, FileName);
        RecoverInterruptedRotation(FilePath);
        // Created 0600 beneath a checked directory, never through a symlink; checked before it is read back.
        _file = Interop.TrustedPath.OpenAppendStream(stateDir, FileName, bufferSize: 1);
        if (_file.Length > 0) Load(FilePath);
        _size = _file.Length;
    }

    public string? FilePath { get; }
    /// <summary>Lines skipped at load (torn or corrupt).</summary>
    public int SkippedLines { get; private set; }
    /// <summary>Lines read at load: bounded by the rotation size, not by the history.</summary>
    public int LoadedLines { get; private set; }
    /// <summary>Rotations of incidents.jsonl since this store opened.</summary>
    public int Rotations { get; private set; }

    /// <summary>Incidents held in memory.</summary>
    public int Count
    {
        get
        {
            lock (_gate) return _incidents.Count;
        }
    }

    /// <summary>Incidents opened over the instance's life (kept across restarts and rotations).</summary>
    public long Total
    {
        get
        {
            lock (_gate) return _nextId - 1;
        }
    }

    /// <summary>Raised after each new incident (on the thread that added it); alert outputs subscribe here.</summary>
    public event Action<Incident>? Added;

    /// <summary>Occurrences folded into open incidents.</summary>
    public long Repeats => Interlocked.Read(ref _repeats);

    /// <summary>Occurrences the per-source rate limit kept from opening incidents.</summary>
    public long Suppressed => Interlocked.Read(ref _suppressed);

    /// <summary>Incidents open right now.</summary>
    public int OpenCount
    {
        get
        {
            lock (_gate) return _incidents.Count(i => i.Status == IncidentStatus.Open);
        }
    }

    /// <summary>Assigns an id, keeps the incident and queues its line for the next <see cref="Flush"/> (no aggregation, no rate limit).</summary>
    public Incident Add(Func<string, Incident> create)
    {
        ArgumentNullException.ThrowIfNull(create);
        Incident inc;
        lock (_gate) inc = Open(create);
        Added?.Invoke(inc); // outside the lock: alert outputs format and queue it (never block)
        return inc;
    }

    /// <summary>
    /// One occurrence of <paramref name="source"/>: folded into the open incident with the same <paramref name="key"/>,
    /// else a new incident if the source's rate limit allows, else counted as suppressed on the source's latest
    /// incident (null when it has none yet). <paramref name="create"/> runs only when an incident is opened.
    /// </summary>
    public (Incident? Incident, IncidentOutcome Outcome) Report(string source, string? key, Func<string, Incident> create)
    {
        (Incident? Incident, IncidentOutcome Outcome) result = ReportLocked(source, key, create);
        if (result.Outcome == IncidentOutcome.Opened) Added?.Invoke(result.Incident!); // outside the lock, as in Add
        return result;
    }

    private (Incident? Incident, IncidentOutcome Outcome) ReportLocked(string source, string? key, Func<string, Incident> create)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(create);
        lock (_gate)
        {
            if (key is not null && _openByKey.TryGetValue(key, out Incident? open))
            {
                open.Count++;
                open.LastSeen = DateTimeOffset.UtcNow;
                _dirty.Add(open);
                _repeats++;
                return (open, IncidentOutcome.Repeated);
            }

            if (!Bucket(source).TryTake(System.Diagnostics.Stopwatch.GetTimestamp()))
            {
                _suppressed++;
                if (!_latestBySource.TryGetValue(source, out Incident? latest)) return (null, IncidentOutcome.Suppressed);
                latest.Suppressed++;
                _dirty.Add(latest);
                return (latest, IncidentOutcome.Suppressed);
            }

            return (Open(create), IncidentOutcome.Opened);
        }
    }

    /// <summary>Adds <paramref name="occurrences"/> to an incident's count (a burst counted elsewhere, such as dropped events).</summary>
    public void AddOccurrences(string id, long occurrences)
    {
        lock (_gate)
        {
            if (!_byId.TryGetValue(id, out Incident? inc)) return;
            inc.Count += occurrences;
            inc.LastSeen = DateTimeOffset.UtcNow;
            _dirty.Add(inc);
        }
    }

    private TokenBucket Bucket(string source)
    {
        if (_buckets.TryGetValue(source, out TokenBucket? b)) return b;
        if (_buckets.Count >= MaxSources) _buckets.Clear(); // sources are rules and policy patterns: this only bounds a pathological set
        b = new TokenBucket(_options.RatePerSecond, Math.Max(1, _options.MaxBurst));
        _buckets[source] = b;
        return b;
    }

    /// <summary>Precondition: _gate held.</summary>
    private Incident Open(Func<string, Incident> create)
    {
        string id = "inc-" + _nextId++.ToString("D6", CultureInfo.InvariantCulture);
        Incident inc = create(id);
        if (inc.LastSeen == default) inc.LastSeen = inc.Time;
        Keep(inc);
        _pending.Add(IncidentJson.Incident(inc));
        return inc;
    }

    /// <summary>Indexes an incident (new or loaded) and evicts the oldest past the memory cap. Precondition: _gate held.</summary>
    private void Keep(Incident inc)
    {
        if (_byId.TryGetValue(inc.Id, out Incident? known))
        {
            _incidents.Remove(known);
            Unindex(known);
        }

        _incidents.Add(inc);
        _byId[inc.Id] = inc;
        _latestBySource[inc.Source] = inc;
        if (inc.Key is not null && inc.Status == IncidentStatus.Open) _openByKey[inc.Key] = inc;
        if (_incidents.Count > Math.Max(1, _options.MaxInMemory)) Evict();
    }

    private void Evict()
    {
        Incident victim = _incidents.FirstOrDefault(i => i.Status == IncidentStatus.Resolved)
            ?? _incidents.FirstOrDefault(i => i.Status == IncidentStatus.Acknowledged)
            ?? _incidents[0];
        _incidents.Remove(victim);
        Unindex(victim);
        _dirty.Remove(victim);
    }

    private void Unindex(Incident inc)
    {
        _byId.Remove(inc.Id);
        if (inc.Key is not null && _openByKey.TryGetValue(inc.Key, out Incident? o) && o == inc) _openByKey.Remove(inc.Key);
        if (_latestBySource.TryGetValue(inc.Source, out Incident? l) && l == inc) _latestBySource.Remove(inc.Source);
    }

    /// <summary>Changes an incident's status (acknowledge, resolve); false for an unknown id. Only an open incident takes repeats.</summary>
    public bool SetStatus(string id, IncidentStatus status)
    {
        lock (_gate)
        {
            if (!_byId.TryGetValue(id, out Incident? inc)) return false;
            inc.Status = status;
            if (status != IncidentStatus.Open && inc.Key is not null && _openByKey.TryGetValue(inc.Key, out Incident? o) && o == inc) _openByKey.Remove(inc.Key);
            _pending.Add(IncidentJson.Status(id, status, inc.Response));
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
            _pending.Add(IncidentJson.Status(id, inc.Status, response));
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

    /// <summary>One incident's JSON line (under the lock, so count and last-seen are consistent).</summary>
    public string ToJsonLine(string id)
    {
        lock (_gate) return _byId.TryGetValue(id, out Incident? i) ? ToJsonLine(i) : "";
    }

    /// <summary>
    /// Writes the pending lines (new incidents, status changes; updates of aggregated counts at most once a second
    /// unless <paramref name="force"/>) and fsyncs, then rotates when the file is past its size. Called once per event batch.
    /// </summary>
    public void Flush(bool force = false)
    {
        lock (_gate)
        {
            long now = System.Diagnostics.Stopwatch.GetTimestamp();
            bool updates = _dirty.Count > 0 && (force || now - _lastUpdateWrite >= UpdateInterval);
            if (_pending.Count == 0 && !updates) return;
            if (updates)
            {
                foreach (Incident inc in _dirty) _pending.Add(IncidentJson.Update(inc));
                _dirty.Clear();
                _lastUpdateWrite = now;
            }

            if (_file is not null)
            {
                foreach (byte[] line in _pending)
                {
                    _file.Write(line);
                    _size += line.Length;
                }

                _file.Flush(flushToDisk: true);
            }

            _pending.Clear();
            // Past twice the snapshot as well: a snapshot near the rotation size must not rotate at every flush.
            if (_file is not null && _size >= Math.Max(_options.RotateBytes, 2 * _snapshotBytes)) Rotate();
        }
    }

    public static string ToJsonLine(Incident i) => Encoding.UTF8.GetString(IncidentJson.Incident(i)).TrimEnd('\n');

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

    /// <summary>
    /// Starts a new file that holds what a restart needs (snapshot line, then every incident not resolved, with its
    /// count), and shifts the old ones to .1 .. .keep. The new file is written and fsynced under a temporary name first;
    /// <see cref="RecoverInterruptedRotation"/> finishes or discards a rotation a crash interrupted. Precondition: _gate held.
    /// </summary>
    private void Rotate()
    {
        string path = FilePath!;
        string next = path + RotatingSuffix;
        File.Delete(next); // a leftover of an interrupted rotation (unlink: never follows a symlink)
        // CreateNew is O_CREAT|O_EXCL: it never follows a symlink planted at the name, and the mode is explicit.
        var fresh = new FileStream(next, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            Share = FileShare.Read,
            BufferSize = 0,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        long size = 0;
        try
        {
            foreach (byte[] line in Snapshot())
            {
                fresh.Write(line);
                size += line.Length;
            }

            fresh.Flush(flushToDisk: true);
            ShiftRotated(path); // the live stream follows its file to .1 and is closed below
        }
        catch (IOException ex)
        {
            // Nothing moved (or only older rotated files): keep appending to the live file, try again at the next flush.
            fresh.Dispose();
            File.Delete(next);
            SecurityLog.ResponseFailed(_log, ex, "incidents.jsonl rotation");
            return;
        }

        try
        {
            File.Move(next, path);
        }
        catch (IOException ex)
        {
            // The live name is missing until the next start completes the rename (RecoverInterruptedRotation).
            SecurityLog.ResponseFailed(_log, ex, "incidents.jsonl rotation");
        }

        _file!.Dispose();
        _file = fresh; // the same file, now under the live name: appends continue in it
        _size = _snapshotBytes = size;
        Rotations++;
        _dirty.Clear(); // the snapshot carries every count
    }

    private IEnumerable<byte[]> Snapshot()
    {
        yield return IncidentJson.Snapshot(_nextId, _repeats, _suppressed);
        foreach (Incident i in _incidents)
        {
            if (i.Status != IncidentStatus.Resolved) yield return IncidentJson.Incident(i);
        }
    }

    private void ShiftRotated(string path)
    {
        int keep = Math.Max(0, _options.Keep);
        if (keep == 0)
        {
            File.Delete(path);
            return;
        }

        File.Delete($"{path}.{keep}");
        for (int i = keep - 1; i >= 1; i--)
        {
            string from = $"{path}.{i}";
            if (File.Exists(from)) File.Move(from, $"{path}.{i + 1}", overwrite: true);
        }

        File.Move(path, path + ".1", overwrite: true);
    }

    /// <summary>
    /// A crash during <see cref="Rotate"/>: with the live file gone the fsynced new one takes its place; with the live
    /// file still there the rotation never happened, and the half-written new file is discarded.
    /// </summary>
    private static void RecoverInterruptedRotation(string path)
    {
        string next = path + RotatingSuffix;
        if (!File.Exists(next)) return;
        if (File.Exists(path)) File.Delete(next);
        else File.Move(next, path);
    }

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
                switch (type)
                {
                    case "snapshot":
                        _nextId = Math.Max(_nextId, o.GetProperty("next_id").GetInt64());
                        _repeats = o.GetProperty("repeats").GetInt64();
                        _suppressed = o.GetProperty("suppressed").GetInt64();
                        break;
                    case "incident":
                        Keep(IncidentJson.ParseIncident(o));
                        break;
                    case "status" when _byId.TryGetValue(id, out Incident? known):
                        known.Status = ParseStatus(o.GetProperty("status").GetString()!);
                        if (o.TryGetProperty("response", out JsonElement r)) known.Response = r.GetString()!;
                        if (known.Status != IncidentStatus.Open && known.Key is not null) _openByKey.Remove(known.Key);
                        break;
                    case "update" when _byId.TryGetValue(id, out Incident? known):
                        IncidentJson.ApplyUpdate(known, o);
                        break;
                    default:
                        break;
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

        LoadedLines = lineNo;
    }

    public void Dispose()
    {
        Flush(force: true);
        _file?.Dispose();
    }
}
