using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace InSpatialFs.Daemon.Cli;

/// <summary>
/// `ctl ... --json`: each control file as one JSON document with typed values — counts as numbers, durations in
/// seconds (keys ending in _seconds), flags as booleans, repeated lines as arrays of objects. The control files stay
/// text for `cat`; this is their machine-readable form, parsed from the formats the daemon writes.
/// </summary>
internal static partial class CtlJson
{
    public static JsonNode Convert(string file, string text) => file switch
    {
        ControlFileName.Status => Status(text),
        ControlFileName.Policy => Yaml(text),
        ControlFileName.Rules => Rules(text),
        ControlFileName.Mounts => Mounts(text),
        ControlFileName.Stats => Stats(text),
        ControlFileName.Metrics => Metrics(text),
        ControlFileName.Incidents => Incidents(text),
        _ => throw new ArgumentOutOfRangeException(nameof(file), file, "no JSON form"),
    };

    private static JsonNode? Typed(string value) =>
        long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long n) ? JsonValue.Create(n)
        : value is "true" or "false" ? JsonValue.Create(value == "true")
        : JsonValue.Create(value);

    /// <summary>"key: value" lines: numbers typed, uptime in seconds, mount/quota/output/warning lines as arrays.</summary>
    public static JsonObject Status(string text)
    {
        var o = new JsonObject();
        JsonArray Array(string key) => o[key] as JsonArray ?? (JsonArray)(o[key] = new JsonArray());
        foreach (string line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0) continue;
            string key = line[..colon].Trim();
            string value = line[(colon + 1)..].Trim();
            switch (key)
            {
                case "uptime":
                    o["uptime_seconds"] = long.Parse(value.TrimEnd('s'), CultureInfo.InvariantCulture);
                    break;
                case "mount":
                    Array("mounts").Add((JsonNode)StatusMount(value));
                    break;
                case "quota":
                    Array("quotas").Add((JsonNode)Quota(value));
                    break;
                case "output":
                    Array("outputs").Add((JsonNode)Output(value));
                    break;
                case "warning":
                    Array("warnings").Add((JsonNode?)JsonValue.Create(value));
                    break;
                default:
                    o[key] = Typed(value);
                    break;
            }
        }

        if (!o.ContainsKey("warnings")) o["warnings"] = new JsonArray();
        return o;
    }

    /// <summary>"PATH KIND rw|ro[ direct: MODE]" (PATH may hold spaces: read from the end).</summary>
    private static JsonObject StatusMount(string value)
    {
        string? direct = null;
        int d = value.IndexOf(" direct: ", StringComparison.Ordinal);
        if (d >= 0)
        {
            direct = value[(d + 9)..];
            value = value[..d];
        }

        int access = value.LastIndexOf(' ');
        int kind = value.LastIndexOf(' ', access - 1);
        return new JsonObject
        {
            ["path"] = value[..kind], ["kind"] = value[(kind + 1)..access], ["readonly"] = value[(access + 1)..] == "ro",
            ["direct"] = direct != null, ["direct_mode"] = direct,
        };
    }

    [GeneratedRegex(@"^(?<mount>.*) bytes=(?<b>\d+)/(?<bl>\d+|none) inodes=(?<i>\d+)/(?<il>\d+|none)$")]
    private static partial Regex QuotaLine();

    private static JsonObject Quota(string value)
    {
        Match m = QuotaLine().Match(value);
        if (!m.Success) return new JsonObject { ["text"] = value };
        JsonNode? Limit(string g) => m.Groups[g].Value == "none" ? null : JsonValue.Create(long.Parse(m.Groups[g].Value, CultureInfo.InvariantCulture));
        return new JsonObject
        {
            ["mount"] = m.Groups["mount"].Value, ["bytes"] = long.Parse(m.Groups["b"].Value, CultureInfo.InvariantCulture), ["byte_limit"] = Limit("bl"),
            ["inodes"] = long.Parse(m.Groups["i"].Value, CultureInfo.InvariantCulture), ["inode_limit"] = Limit("il"),
        };
    }

    [GeneratedRegex(@"^(?<name>\S+) (?<target>.*) queued=(?<q>\d+) delivered=(?<d>\d+) dropped=(?<dr>\d+) failed=(?<f>\d+) retries=(?<r>\d+) (?<state>ok|retrying)(?: \((?<error>.*)\))?$")]
    private static partial Regex OutputLine();

    private static JsonObject Output(string value)
    {
        Match m = OutputLine().Match(value);
        if (!m.Success) return new JsonObject { ["text"] = value };
        long N(string g) => long.Parse(m.Groups[g].Value, CultureInfo.InvariantCulture);
        return new JsonObject
        {
            ["channel"] = m.Groups["name"].Value, ["target"] = m.Groups["target"].Value, ["queued"] = N("q"), ["delivered"] = N("d"),
            ["dropped"] = N("dr"), ["failed"] = N("f"), ["retries"] = N("r"), ["state"] = m.Groups["state"].Value,
            ["last_error"] = m.Groups["error"].Success ? m.Groups["error"].Value : null,
        };
    }

    /// <summary>The policy file is YAML: the same document as JSON, plain scalars typed.</summary>
    public static JsonNode Yaml(string text)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(text));
        return stream.Documents.Count == 0 ? new JsonObject() : YamlToJson(stream.Documents[0].RootNode) ?? new JsonObject();
    }

    internal static JsonNode? YamlToJson(YamlNode node) => node switch
    {
        YamlMappingNode m => new JsonObject(m.Children.Select(c => KeyValuePair.Create(((YamlScalarNode)c.Key).Value ?? "", YamlToJson(c.Value)))),
        YamlSequenceNode s => new JsonArray([.. s.Children.Select(YamlToJson)]),
        YamlScalarNode { Style: ScalarStyle.Plain, Value: null or "" or "~" or "null" } => null,
        YamlScalarNode { Style: ScalarStyle.Plain } p when p.Value is "true" or "false" => JsonValue.Create(p.Value == "true"),
        YamlScalarNode { Style: ScalarStyle.Plain } p when long.TryParse(p.Value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long n) => JsonValue.Create(n),
        YamlScalarNode { Style: ScalarStyle.Plain } p when double.TryParse(p.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => JsonValue.Create(d),
        YamlScalarNode s => JsonValue.Create(s.Value),
        _ => null,
    };

    [GeneratedRegex(@"^# (?<rules>\d+) rules \((?<inline>\d+) inline\), reloads (?<reloads>\d+), failed reloads (?<failed>\d+), state keys (?<keys>\d+), evictions (?<evictions>\d+), key-cap hits (?<cap>\d+)$")]
    private static partial Regex RulesHeader();

    /// <summary>The rules table: totals, one object per rule, and the skipped rules with their reason.</summary>
    public static JsonObject Rules(string text)
    {
        var rules = new JsonArray();
        var skipped = new JsonArray();
        var o = new JsonObject();
        foreach (string line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (RulesHeader().Match(line) is { Success: true } h)
            {
                foreach (string g in new[] { "rules", "inline", "reloads", "failed", "keys", "evictions", "cap" })
                {
                    o[g switch { "rules" => "rule_count", "inline" => "inline_rules", "failed" => "failed_reloads", "keys" => "state_keys", "cap" => "key_cap_hits", _ => g }] =
                        long.Parse(h.Groups[g].Value, CultureInfo.InvariantCulture);
                }
            }
            else if (line.StartsWith("# skipped: ", StringComparison.Ordinal))
            {
                string rest = line["# skipped: ".Length..];
                int sep = rest.LastIndexOf(": ", StringComparison.Ordinal);
                skipped.Add((JsonNode)new JsonObject { ["rule"] = sep < 0 ? rest : rest[..sep], ["reason"] = sep < 0 ? "" : rest[(sep + 2)..] });
            }
            else if (!line.StartsWith('#'))
            {
                string[] f = line.Split('\t');
                if (f.Length < 7) continue;
                rules.Add((JsonNode)new JsonObject
                {
                    ["rule"] = f[0], ["kind"] = f[1], ["inline"] = f[2] == "inline", ["enabled"] = f[3] == "enabled",
                    ["hits"] = long.Parse(f[4], CultureInfo.InvariantCulture), ["suppressed"] = long.Parse(f[5], CultureInfo.InvariantCulture),
                    ["keys"] = long.Parse(f[6], CultureInfo.InvariantCulture),
                });
            }
        }

        o["rules"] = rules;
        o["skipped"] = skipped;
        return o;
    }

    /// <summary>"PATH\tKIND\tSOURCE\tro|rw\tdirect=MODE|proxied".</summary>
    public static JsonArray Mounts(string text)
    {
        var a = new JsonArray();
        foreach (string line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] f = line.Split('\t');
            if (f.Length < 5) continue;
            a.Add((JsonNode)new JsonObject
            {
                ["path"] = f[0], ["kind"] = f[1], ["source"] = f[2], ["readonly"] = f[3] == "ro",
                ["direct"] = f[4].StartsWith("direct=", StringComparison.Ordinal),
                ["direct_mode"] = f[4].StartsWith("direct=", StringComparison.Ordinal) ? f[4]["direct=".Length..] : null,
            });
        }

        return a;
    }

    /// <summary>"op count p50_us p90_us p99_us events": latencies in seconds (percentiles of the events of that operation).</summary>
    public static JsonArray Stats(string text)
    {
        var a = new JsonArray();
        foreach (string line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.StartsWith('#')) continue;
            string[] f = line.Split('\t');
            if (f.Length < 5) continue;
            double Seconds(string us) => double.Parse(us, CultureInfo.InvariantCulture) / 1e6;
            a.Add((JsonNode)new JsonObject
            {
                ["op"] = f[0], ["count"] = long.Parse(f[1], CultureInfo.InvariantCulture),
                ["p50_seconds"] = Seconds(f[2]), ["p90_seconds"] = Seconds(f[3]), ["p99_seconds"] = Seconds(f[4]),
                ["events"] = f.Length > 5 ? long.Parse(f[5], CultureInfo.InvariantCulture) : null,
            });
        }

        return a;
    }

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>.*)\})? (?<value>\S+)$")]
    private static partial Regex Sample();

    [GeneratedRegex(@"(?<k>[a-zA-Z_][a-zA-Z0-9_]*)=""(?<v>(?:[^""\\]|\\.)*)""")]
    private static partial Regex Label();

    /// <summary>The Prometheus exposition as families: name, type, help, and samples with their labels and numeric value.</summary>
    public static JsonArray Metrics(string text)
    {
        var families = new List<JsonObject>();
        var byName = new Dictionary<string, JsonObject>(StringComparer.Ordinal);
        JsonObject Family(string name)
        {
            if (!byName.TryGetValue(name, out JsonObject? f))
            {
                f = new JsonObject { ["name"] = name, ["type"] = "untyped", ["help"] = "", ["samples"] = new JsonArray() };
                byName[name] = f;
                families.Add(f);
            }

            return f;
        }

        foreach (string line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.StartsWith("# HELP ", StringComparison.Ordinal) || line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                string[] parts = line.Split(' ', 4);
                Family(parts[2])[line[2] == 'H' ? "help" : "type"] = parts.Length > 3 ? parts[3] : "";
                continue;
            }

            Match m = Sample().Match(line);
            if (line.StartsWith('#') || !m.Success) continue;
            string name = m.Groups["name"].Value;
            string family = byName.ContainsKey(name) ? name : Regex.Replace(name, "_(bucket|sum|count|total)$", "");
            var labels = new JsonObject();
            foreach (Match l in Label().Matches(m.Groups["labels"].Value))
            {
                labels[l.Groups["k"].Value] = l.Groups["v"].Value.Replace("\\\"", "\"", StringComparison.Ordinal).Replace("\\\\", "\\", StringComparison.Ordinal);
            }

            string v = m.Groups["value"].Value;
            double value = v switch { "+Inf" => double.PositiveInfinity, "-Inf" => double.NegativeInfinity, _ => double.Parse(v, CultureInfo.InvariantCulture) };
            ((JsonArray)Family(byName.ContainsKey(family) ? family : name)["samples"]!).Add((JsonNode)new JsonObject
            {
                ["name"] = name, ["labels"] = labels,
                // JSON has no infinity: +Inf (only ever a bucket bound's count, never a value here) is written as a string.
                ["value"] = double.IsFinite(value) ? JsonValue.Create(value) : JsonValue.Create(v),
            });
        }

        return [.. families.Select(f => (JsonNode?)f)];
    }

    /// <summary>incidents.jsonl lines as one array.</summary>
    public static JsonArray Incidents(string text)
    {
        var a = new JsonArray();
        foreach (string line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            try
            {
                a.Add(JsonNode.Parse(line));
            }
            catch (System.Text.Json.JsonException)
            {
                // a line torn by a concurrent write is complete on the next read
            }
        }

        return a;
    }
}
