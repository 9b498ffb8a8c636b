using System.Globalization;
using System.Text.Json;

namespace InSpatialFs.Security.Events;

/// <summary>
/// The JSON-lines event format shared by the journal, the events control file, replay and rule tests:
/// one object per event whose keys are the rule field names; evt.time is RFC 3339 UTC with nanoseconds.
/// Null fields are left out (a missing field makes comparisons on it false).
/// </summary>
public static class FsEventJson
{
    public static void Write(Utf8JsonWriter w, FsEvent e)
    {
        w.WriteStartObject();
        w.WriteString("evt.time", FormatTime(e.TimeUnixNanos));
        w.WriteNumber("evt.seq", e.Seq);
        w.WriteString("evt.op", e.Op.Name());
        w.WriteNumber("evt.flags", e.Flags);
        w.WriteNumber("evt.mode", e.Mode);
        w.WriteNumber("evt.res", e.Result);
        w.WriteBoolean("evt.is_write", e.IsWrite);
        w.WriteBoolean("evt.is_exec", e.IsExec);
        w.WriteNumber("evt.size", e.Size);
        w.WriteString("evt.decision", DecisionName(e.Decision));
        if (e.Reason != null) w.WriteString("evt.reason", e.Reason);
        w.WriteNumber("evt.latency_ns", e.LatencyNanos);
        w.WriteString("fs.path", e.Path);
        w.WriteString("fs.dir", e.Dir);
        w.WriteString("fs.name", e.Name);
        if (e.Target != null) w.WriteString("fs.target", e.Target);
        if (e.LinkTarget != null) w.WriteString("fs.link_target", e.LinkTarget);
        if (e.XattrName != null) w.WriteString("fs.xattr", e.XattrName);
        w.WriteBoolean("fs.is_new", e.IsNew);
        w.WriteNumber("proc.pid", e.Pid);
        if (e.ProcName != null) w.WriteString("proc.name", e.ProcName);
        w.WriteNumber("user.uid", e.Uid);
        w.WriteNumber("user.gid", e.Gid);
        if (e.ContainerId != null) w.WriteString("container.id", e.ContainerId);
        w.WriteString("container.level", LevelName(e.Level));
        w.WriteString("policy.class", ClassName(e.PolicyClass));
        w.WriteEndObject();
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
                        break;
                    case "evt.flags": e.Flags = v.GetInt32(); break;
                    case "evt.mode": e.Mode = v.GetUInt32(); break;
                    case "evt.res": e.Result = v.GetInt32(); break;
                    case "evt.is_write": e.IsWrite = v.GetBoolean(); break;
                    case "evt.is_exec": e.IsExec = v.GetBoolean(); break;
                    case "evt.size": e.Size = v.GetInt64(); break;
                    case "evt.decision": e.Decision = ParseDecision(v.GetString()!); break;
                    case "evt.reason": e.Reason = v.GetString(); break;
                    case "evt.latency_ns": e.LatencyNanos = v.GetInt64(); break;
                    case "fs.path": e.Path = v.GetString()!; break;
                    case "fs.target": e.Target = v.GetString(); break;
                    case "fs.link_target": e.LinkTarget = v.GetString(); break;
                    case "fs.xattr": e.XattrName = v.GetString(); break;
                    case "fs.is_new": e.IsNew = v.GetBoolean(); break;
                    case "proc.pid": e.Pid = v.GetInt32(); break;
                    case "proc.name": e.ProcName = v.GetString(); break;
                    case "user.uid": e.Uid = v.GetUInt32(); break;
                    case "user.gid": e.Gid = v.GetUInt32(); break;
                    case "container.id": e.ContainerId = v.GetString(); break;
                    case "container.level": e.Level = ParseLevel(v.GetString()!); break;
                    case "policy.class": e.PolicyClass = ParseClass(v.GetString()!); break;
                    default: break; // derived (fs.dir, fs.name) or foreign keys
                }
            }
            catch (Exception ex) when (ex is InvalidOperationException or FormatException or OverflowException)
            {
                throw new FormatException($"field '{p.Name}': {ex.Message}", ex);
            }
        }

        return e;
    }

    /// <summary>RFC 3339 UTC with nanoseconds: 2026-11-27T12:00:00.000000001Z.</summary>
    public static string FormatTime(long unixNanos)
    {
        long seconds = Math.DivRem(unixNanos, 1_000_000_000L, out long nanos);
        if (nanos < 0)
        {
            seconds--;
            nanos += 1_000_000_000L;
        }

        DateTime t = DateTime.UnixEpoch.AddSeconds(seconds);
        return t.ToString("yyyy-MM-dd'T'HH:mm:ss", CultureInfo.InvariantCulture) + "." + nanos.ToString("D9", CultureInfo.InvariantCulture) + "Z";
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
