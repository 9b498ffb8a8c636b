using System.Globalization;
using System.Text.Json;
using InSpatialFs.Security.Policy;

namespace InSpatialFs.Security.Events;

/// <summary>
/// The JSON-lines event format shared by the journal, the events control file, replay and rule tests:
/// one object per event whose keys are the rule field names; evt.time is RFC 3339 UTC with nanoseconds.
/// Null fields are left out (a missing field makes comparisons on it false).
/// </summary>
public static partial class FsEventJson
{
    /// <summary>Property names encoded once (the consumer writes every event through here).</summary>
    private static class K
    {
        public static readonly JsonEncodedText EvtTime = JsonEncodedText.Encode("evt.time");
        public static readonly JsonEncodedText EvtSeq = JsonEncodedText.Encode("evt.seq");
        public static readonly JsonEncodedText EvtOp = JsonEncodedText.Encode("evt.op");
        public static readonly JsonEncodedText EvtFlags = JsonEncodedText.Encode("evt.flags");
        public static readonly JsonEncodedText EvtMode = JsonEncodedText.Encode("evt.mode");
        public static readonly JsonEncodedText EvtRes = JsonEncodedText.Encode("evt.res");
        public static readonly JsonEncodedText EvtIsWrite = JsonEncodedText.Encode("evt.is_write");
        public static readonly JsonEncodedText EvtIsExec = JsonEncodedText.Encode("evt.is_exec");
        public static readonly JsonEncodedText EvtSize = JsonEncodedText.Encode("evt.size");
        public static readonly JsonEncodedText EvtDecision = JsonEncodedText.Encode("evt.decision");
        public static readonly JsonEncodedText EvtReason = JsonEncodedText.Encode("evt.reason");
        public static readonly JsonEncodedText EvtLatencyNs = JsonEncodedText.Encode("evt.latency_ns");
        public static readonly JsonEncodedText FsPath = JsonEncodedText.Encode("fs.path");
        public static readonly JsonEncodedText FsDir = JsonEncodedText.Encode("fs.dir");
        public static readonly JsonEncodedText FsName = JsonEncodedText.Encode("fs.name");
        public static readonly JsonEncodedText FsTarget = JsonEncodedText.Encode("fs.target");
        public static readonly JsonEncodedText FsLinkTarget = JsonEncodedText.Encode("fs.link_target");
        public static readonly JsonEncodedText FsLinkResolved = JsonEncodedText.Encode("fs.link_resolved");
        public static readonly JsonEncodedText FsXattr = JsonEncodedText.Encode("fs.xattr");
        public static readonly JsonEncodedText FsIsNew = JsonEncodedText.Encode("fs.is_new");
        public static readonly JsonEncodedText ProcPid = JsonEncodedText.Encode("proc.pid");
        public static readonly JsonEncodedText ProcName = JsonEncodedText.Encode("proc.name");
        public static readonly JsonEncodedText UserUid = JsonEncodedText.Encode("user.uid");
        public static readonly JsonEncodedText UserGid = JsonEncodedText.Encode("user.gid");
        public static readonly JsonEncodedText ContainerId = JsonEncodedText.Encode("container.id");
        public static readonly JsonEncodedText ContainerLevel = JsonEncodedText.Encode("container.level");
        public static readonly JsonEncodedText PolicyClass = JsonEncodedText.Encode("policy.class");
    }

    /// <summary>The values that come from a fixed set, encoded once: the writer then copies them as they are.</summary>
    private static class V
    {
        public static readonly JsonEncodedText[] Op = [.. Enumerable.Range(0, FsOpNames.Count).Select(i => JsonEncodedText.Encode(((FsOp)i).Name()))];
        public static readonly JsonEncodedText[] Decision = [.. Enum.GetValues<Decision>().Select(d => JsonEncodedText.Encode(DecisionName(d)))];
        public static readonly JsonEncodedText[] Level = [.. Enum.GetValues<IsolationLevel>().Select(l => JsonEncodedText.Encode(LevelName(l)))];
        public static readonly JsonEncodedText[] Class = [.. Enum.GetValues<PathClass>().Select(c => JsonEncodedText.Encode(ClassName(c)))];

        public static JsonEncodedText Of(JsonEncodedText[] values, int index, string fallback) =>
            (uint)index < (uint)values.Length ? values[index] : JsonEncodedText.Encode(fallback);
    }

    /// <summary>Names go out in display form: invalid UTF-8 bytes as the text \xNN (JSON would fold them to U+FFFD).</summary>
    public static void Write(Utf8JsonWriter w, FsEvent e)
    {
        w.WriteStartObject();
        Span<byte> time = stackalloc byte[TimeLength];
        w.WriteString(K.EvtTime, time[..FormatTimeUtf8(e.TimeUnixNanos, time)]);
        w.WriteNumber(K.EvtSeq, e.Seq);
        w.WriteString(K.EvtOp, V.Of(V.Op, (int)e.Op, e.Op.Name()));
        w.WriteNumber(K.EvtFlags, e.Flags);
        w.WriteNumber(K.EvtMode, e.Mode);
        w.WriteNumber(K.EvtRes, e.Result);
        w.WriteBoolean(K.EvtIsWrite, e.IsWrite);
        w.WriteBoolean(K.EvtIsExec, e.IsExec);
        w.WriteNumber(K.EvtSize, e.Size);
        w.WriteString(K.EvtDecision, V.Of(V.Decision, (int)e.Decision, DecisionName(e.Decision)));
        if (e.Reason != null) w.WriteString(K.EvtReason, e.Reason);
        w.WriteNumber(K.EvtLatencyNs, e.LatencyNanos);
        WritePath(w, e.Path);
        if (e.Target != null) w.WriteString(K.FsTarget, ExactNames.ForDisplay(e.Target));
        if (e.LinkTarget != null) w.WriteString(K.FsLinkTarget, ExactNames.ForDisplay(e.LinkTarget));
        if (e.LinkResolved != null) w.WriteString(K.FsLinkResolved, ExactNames.ForDisplay(e.LinkResolved));
        if (e.XattrName != null) w.WriteString(K.FsXattr, ExactNames.ForDisplay(e.XattrName));
        w.WriteBoolean(K.FsIsNew, e.IsNew);
        w.WriteNumber(K.ProcPid, e.Pid);
        if (e.ProcName != null) w.WriteString(K.ProcName, e.ProcName);
        w.WriteNumber(K.UserUid, e.Uid);
        w.WriteNumber(K.UserGid, e.Gid);
        if (e.ContainerId != null) w.WriteString(K.ContainerId, e.ContainerId);
        w.WriteString(K.ContainerLevel, V.Of(V.Level, (int)e.Level, LevelName(e.Level)));
        w.WriteString(K.PolicyClass, V.Of(V.Class, (int)e.PolicyClass, ClassName(e.PolicyClass)));
        WriteFalco(w, e);
        w.WriteEndObject();
    }

    /// <summary>
    /// fs.path, fs.dir and fs.name: the last two are slices of the first (as <see cref="FsEvent.Dir"/> and
    /// <see cref="FsEvent.Name"/> cut them), written without copying them out. A path with escaped bytes goes out in
    /// display form, cut the same way.
    /// </summary>
    private static void WritePath(Utf8JsonWriter w, string path)
    {
        string shown = ExactNames.ForDisplay(path);
        ReadOnlySpan<char> p = shown;
        int slash = p.LastIndexOf('/');
        w.WriteString(K.FsPath, p);
        w.WriteString(K.FsDir, slash <= 0 ? "/" : p[..slash]);
        w.WriteString(K.FsName, slash < 0 ? p : p[(slash + 1)..]);
    }

    public static string ToJsonLine(FsEvent e)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(512);
        using (var w = new Utf8JsonWriter(buffer))
        {
            Write(w, e);
        }

        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>Parses one JSON line. Unknown keys are ignored; a bad value gives a FormatException naming the key.</summary>
    public static FsEvent Parse(string line)
    {
        using var doc = JsonDocument.Parse(line);
        return Parse(doc.RootElement);
    }

    public static FsEvent Parse(JsonElement o)
    {
        if (o.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException("an event must be a JSON object");
        }

        var e = new FsEvent();
        var falco = new FalcoKeys();
        foreach (JsonProperty p in o.EnumerateObject())
        {
            JsonElement v = p.Value;
            try
            {
                switch (p.Name)
                {
                    case "evt.time": e.TimeUnixNanos = ParseTime(v.GetString()!); break;
                    case "evt.seq": e.Seq = v.GetUInt64(); break;
                    case "evt.op":
                        if (!FsOpNames.TryParse(v.GetString()!, out e.Op)) throw new FormatException($"unknown op '{v.GetString()}'");
                        falco.HasOp = true; // evt.op is exact; evt.type (several operations per system call) only fills in without it
                        break;
                    case "evt.flags": e.Flags = v.GetInt32(); break;
                    case "evt.mode": e.Mode = v.GetUInt32(); break;
                    case "evt.res": e.Result = v.ValueKind == JsonValueKind.String ? ParseResult(v.GetString()!) : v.GetInt32(); break;
                    case "evt.is_write": e.IsWrite = v.GetBoolean(); break;
                    case "evt.is_exec": e.IsExec = v.GetBoolean(); break;
                    case "evt.size": e.Size = v.GetInt64(); break;
                    case "evt.decision": e.Decision = ParseDecision(v.GetString()!); break;
                    case "evt.reason": e.Reason = v.GetString(); break;
                    case "evt.latency_ns": e.LatencyNanos = v.GetInt64(); break;
                    case "fs.path": e.Path = v.GetString()!; break;
                    case "fs.target": e.Target = v.GetString(); break;
                    case "fs.link_target": e.LinkTarget = v.GetString(); break;
                    case "fs.link_resolved": e.LinkResolved = v.GetString(); break;
                    case "fs.xattr": e.XattrName = v.GetString(); break;
                    case "fs.is_new": e.IsNew = v.GetBoolean(); break;
                    case "proc.pid": e.Pid = v.GetInt32(); break;
                    case "proc.name": e.ProcName = v.GetString(); break;
                    case "user.uid": e.Uid = v.GetUInt32(); break;
                    case "user.gid": e.Gid = v.GetUInt32(); break;
                    case "container.id" or "container.name": e.ContainerId = v.GetString() is "host" ? null : v.GetString(); break;
                    case "container.level": e.Level = ParseLevel(v.GetString()!); break;
                    case "policy.class": e.PolicyClass = ParseClass(v.GetString()!); break;
                    default:
                        falco.Read(e, p.Name, v); // Falco's names, process context; derived (fs.dir, fs.name) and foreign keys are ignored
                        break;
                }
            }
            catch (Exception ex) when (ex is InvalidOperationException or FormatException or OverflowException)
            {
                throw new FormatException($"field '{p.Name}': {ex.Message}", ex);
            }
        }

        falco.Finish(e);
        return e;
    }

    /// <summary>RFC 3339 UTC with nanoseconds: 2026-11-27T12:00:00.000000001Z.</summary>
    public static string FormatTime(long unixNanos)
    {
        Span<byte> text = stackalloc byte[TimeLength];
        return System.Text.Encoding.ASCII.GetString(text[..FormatTimeUtf8(unixNanos, text)]);
    }

    /// <summary>Bytes of the longest <see cref="FormatTime(long)"/> result ("yyyy-MM-ddTHH:mm:ss.nnnnnnnnnZ").</summary>
    private const int TimeLength = 30;

    /// <summary>Length of the whole-second part, "yyyy-MM-ddTHH:mm:ss" (years 0001-9999).</summary>
    private const int SecondsLength = 19;

    /// <summary>
    /// The last whole second formatted, per thread: events come many to a second, and formatting the date is most of the
    /// cost of the time stamp (the consumer writes one per event).
    /// </summary>
    [ThreadStatic] private static long t_second;
    [ThreadStatic] private static byte[]? t_secondText;

    /// <summary>Formats into <paramref name="destination"/> (at least <see cref="TimeLength"/> bytes) without allocating; returns the length.</summary>
    private static int FormatTimeUtf8(long unixNanos, Span<byte> destination)
    {
        long seconds = Math.DivRem(unixNanos, 1_000_000_000L, out long nanos);
        if (nanos < 0)
        {
            seconds--;
            nanos += 1_000_000_000L;
        }

        byte[]? cached = t_secondText;
        if (cached is null || t_second != seconds)
        {
            cached ??= t_secondText = new byte[SecondsLength];
            DateTime t = DateTime.UnixEpoch.AddSeconds(seconds);
            t.TryFormat(cached, out _, "yyyy-MM-dd'T'HH:mm:ss", CultureInfo.InvariantCulture);
            t_second = seconds;
        }

        cached.CopyTo(destination);
        int n = SecondsLength;
        destination[n++] = (byte)'.';
        for (int i = n + 8; i >= n; i--)
        {
            destination[i] = (byte)('0' + (int)(nanos % 10));
            nanos /= 10;
        }

        n += 9;
        destination[n++] = (byte)'Z';
        return n;
    }

    public static long ParseTime(string text)
    {
        // Split off the fraction ourselves: DateTime keeps only 100 ns ticks.
        int dot = text.IndexOf('.', StringComparison.Ordinal);
        string whole = dot < 0 ? text : text[..dot] + text[text.IndexOfAny(['Z', 'z', '+', '-'], dot)..];
        DateTimeOffset t = DateTimeOffset.Parse(whole, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);
        long nanos = 0;
        if (dot >= 0)
        {
            int end = text.IndexOfAny(['Z', 'z', '+', '-'], dot);
            string frac = text[(dot + 1)..end].PadRight(9, '0')[..9];
            nanos = long.Parse(frac, CultureInfo.InvariantCulture);
        }

        return (t.UtcTicks - DateTime.UnixEpoch.Ticks) * 100 + nanos;
    }

    public static string DecisionName(Decision d) => d switch
    {
        Decision.Allow => "allow",
        Decision.AllowDirect => "allow_direct",
        Decision.Deny => "deny",
        Decision.WouldDeny => "would_deny",
        _ => "allow",
    };

    public static Decision ParseDecision(string s) => s switch
    {
        "allow" => Decision.Allow,
        "allow_direct" => Decision.AllowDirect,
        "deny" => Decision.Deny,
        "would_deny" => Decision.WouldDeny,
        _ => throw new FormatException($"unknown decision '{s}'"),
    };

    public static string LevelName(IsolationLevel l) => l switch
    {
        IsolationLevel.Standard => "standard",
        IsolationLevel.Enhanced => "enhanced",
        _ => "maximum",
    };

    public static IsolationLevel ParseLevel(string s) => s switch
    {
        "standard" => IsolationLevel.Standard,
        "enhanced" => IsolationLevel.Enhanced,
        "maximum" => IsolationLevel.Maximum,
        _ => throw new FormatException($"unknown isolation level '{s}' (standard, enhanced, maximum)"),
    };

    public static string ClassName(PathClass c) => c switch
    {
        PathClass.Allowed => "allowed",
        PathClass.ReadOnly => "readonly",
        _ => "forbidden",
    };

    public static PathClass ParseClass(string s) => s switch
    {
        "allowed" => PathClass.Allowed,
        "readonly" => PathClass.ReadOnly,
        "forbidden" => PathClass.Forbidden,
        _ => throw new FormatException($"unknown policy class '{s}'"),
    };
}
