using System.CommandLine;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace InSpatialFs.Daemon.Cli;

// What `ctl` shows on a terminal: events and incidents as lines, the summary table, and `watch`.
internal static partial class CtlCommand
{
    /// <summary>One event as a terminal line: time, decision, op, path, process.</summary>
    internal static string HumanEvent(string jsonLine)
    {
        try
        {
            using var doc = JsonDocument.Parse(jsonLine);
            JsonElement e = doc.RootElement;
            string Get(string k) => e.TryGetProperty(k, out JsonElement v) ? Hosting.TerminalText.Escape(v.ToString()) : "";
            string time = Get("evt.time");
            time = time.Length >= 23 ? time[11..23] : time;
            string decision = Get("evt.decision");
            string target = Get("fs.target");
            string reason = Get("evt.reason");
            return $"{time} {decision.ToUpperInvariant(),-10} {Get("evt.op"),-9} {Get("fs.path")}{(target.Length > 0 ? " -> " + target : "")}" +
                $"  [{Get("proc.name")}:{Get("proc.pid")} uid {Get("user.uid")}]{(reason.Length > 0 ? "  " + reason : "")}";
        }
        catch (JsonException)
        {
            return Hosting.TerminalText.Escape(jsonLine);
        }
    }

    private static string HumanIncidents(string jsonLines)
    {
        var sb = new StringBuilder();
        foreach (string line in jsonLines.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            try
            {
                using var doc = JsonDocument.Parse(line);
                JsonElement e = doc.RootElement;
                sb.Append(HumanIncident(e));
                sb.Append('\n');
            }
            catch (JsonException)
            {
                sb.Append(Hosting.TerminalText.Escape(line)).Append('\n');
            }
        }

        return sb.ToString();
    }

    /// <summary>One incident (IncidentStore.ToJsonLine) as a terminal line: id, severity, status, rule, process, response.</summary>
    internal static string HumanIncident(JsonElement e)
    {
        string Get(string k) => e.TryGetProperty(k, out JsonElement v) ? Hosting.TerminalText.Escape(v.ToString()) : "";
        return FormattableString.Invariant($"{Get("id"),-10} {Get("severity"),-8} {Get("status"),-12} {Get("source"),-42} {Get("process")}:{Get("pid")}  response: {Get("response")}  {Get("output")}");
    }

    /// <summary>Counts from `status` and incidents grouped by rule (the incident's source) with the responses taken.</summary>
    internal sealed record SummaryRow(string Rule, string Severity, int Count, IReadOnlyList<string> Responses);

    internal static (long Ops, long Denials, long Incidents, List<SummaryRow> Rows) Summarize(string status, string incidentLines)
    {
        long Number(string key)
        {
            foreach (string line in status.Split('\n'))
            {
                if (line.StartsWith(key + ":", StringComparison.Ordinal) && long.TryParse(line[(key.Length + 1)..].Trim(), System.Globalization.CultureInfo.InvariantCulture, out long n))
                {
                    return n;
                }
            }

            return 0;
        }

        var groups = new Dictionary<string, (string Severity, int Count, SortedSet<string> Responses)>(StringComparer.Ordinal);
        foreach (string line in incidentLines.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            try
            {
                using var doc = JsonDocument.Parse(line);
                JsonElement e = doc.RootElement;
                string Get(string k) => e.TryGetProperty(k, out JsonElement v) ? v.ToString() : "";
                string rule = Get("source");
                if (!groups.TryGetValue(rule, out var g))
                {
                    g = (Get("severity"), 0, new SortedSet<string>(StringComparer.Ordinal));
                }

                g.Responses.Add(Get("response"));
                groups[rule] = (g.Severity, g.Count + 1, g.Responses);
            }
            catch (JsonException)
            {
                // a torn line cannot be attributed; the total from status still counts it
            }
        }

        List<SummaryRow> rows = groups.OrderByDescending(g => g.Value.Count).ThenBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => new SummaryRow(g.Key, g.Value.Severity, g.Value.Count, g.Value.Responses.ToList())).ToList();
        return (Number("ops"), Number("denials"), Number("incidents"), rows);
    }

    private static int Summary(string dir, bool json)
    {
        if (!TryRead(dir, ControlFileName.Status, out string status) || !TryRead(dir, ControlFileName.Incidents, out string incidents))
        {
            return ExitCodes.RuntimeFailure;
        }

        (long ops, long denials, long total, List<SummaryRow> rows) = Summarize(status, incidents);
        if (json)
        {
            var byRule = new JsonArray();
            foreach (SummaryRow r in rows)
            {
                byRule.Add((JsonNode)new JsonObject { ["rule"] = r.Rule, ["severity"] = r.Severity, ["count"] = r.Count, ["responses"] = new JsonArray(r.Responses.Select(x => (JsonNode?)x).ToArray()) });
            }

            Console.Out.WriteLine(new JsonObject { ["operations"] = ops, ["denials"] = denials, ["incidents"] = total, ["by_rule"] = byRule }.ToJsonString());
            return ExitCodes.Ok;
        }

        var sb = new StringBuilder();
        sb.Append(FormattableString.Invariant($"operations served  {ops}\ndenials            {denials}\nincidents          {total}\n"));
        if (rows.Count > 0)
        {
            sb.Append(FormattableString.Invariant($"\n{"COUNT",5}  {"SEVERITY",-8}  {"RULE",-42}  RESPONSE\n"));
            foreach (SummaryRow r in rows)
            {
                sb.Append(FormattableString.Invariant($"{r.Count,5}  {r.Severity,-8}  {Hosting.TerminalText.Escape(r.Rule),-42}  {Hosting.TerminalText.Escape(string.Join(", ", r.Responses))}\n"));
            }
        }

        Console.Out.Write(sb.ToString());
        return ExitCodes.Ok;
    }

    private static readonly HashSet<string> ChangingOps = new(StringComparer.Ordinal)
    {
        "create", "mkdir", "mknod", "unlink", "rmdir", "rename", "symlink", "link", "chmod", "chown", "truncate", "setxattr", "removexattr", "tmpfile", "escape",
    };

    /// <summary>What a person watching wants to see: anything not plainly allowed, tree changes and executions.</summary>
    internal static bool IsNotable(string jsonLine)
    {
        try
        {
            using var doc = JsonDocument.Parse(jsonLine);
            JsonElement e = doc.RootElement;
            string Get(string k) => e.TryGetProperty(k, out JsonElement v) ? v.ToString() : "";
            string decision = Get("evt.decision");
            return (decision.Length > 0 && !decision.StartsWith("allow", StringComparison.Ordinal))
                || ChangingOps.Contains(Get("evt.op"))
                || Get("evt.is_exec") == "True";
        }
        catch (JsonException)
        {
            return true;
        }
    }

    /// <summary>Same op, decision and process: consecutive events a live view folds together.</summary>
    internal static string RepeatKey(string jsonLine)
    {
        try
        {
            using var doc = JsonDocument.Parse(jsonLine);
            JsonElement e = doc.RootElement;
            string Get(string k) => e.TryGetProperty(k, out JsonElement v) ? Hosting.TerminalText.Escape(v.ToString()) : "";
            return $"{Get("evt.op")} {Get("evt.decision")} by {Get("proc.name")}:{Get("proc.pid")}";
        }
        catch (JsonException)
        {
            return "";
        }
    }

    private static int Watch(string dir, bool json)
    {
        var output = new object();
        string eventsPath = Path.Combine(dir, ControlFileName.Events);
        var follower = new Thread(() =>
        {
            try
            {
                using var stream = new FileStream(eventsPath, new FileStreamOptions { Mode = FileMode.Open, Access = FileAccess.Read, BufferSize = 0 });
                using var reader = new StreamReader(stream, Encoding.UTF8);
                string? line;
                string lastKey = "";
                int repeats = 0;
                while ((line = reader.ReadLine()) != null)
                {
                    if (!IsNotable(line))
                    {
                        continue;
                    }

                    // A burst (120 creates by one process) is one line and a count, not a screenful.
                    string key = json ? "" : RepeatKey(line);
                    lock (output)
                    {
                        if (key.Length > 0 && key == lastKey)
                        {
                            if (++repeats == 1)
                            {
                                Console.Out.WriteLine("  event       ... more of the same (" + key + ")");
                            }

                            continue;
                        }

                        lastKey = key;
                        repeats = 0;
                        Console.Out.WriteLine(json ? line : "  event     " + HumanEvent(line));
                    }
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // the instance stopped; the incident poller notices too
            }
        }) { IsBackground = true, Name = "ctl watch events" };
        follower.Start();

        var seen = new HashSet<string>(StringComparer.Ordinal);
        while (true)
        {
            string incidents;
            try
            {
                incidents = File.ReadAllText(Path.Combine(dir, ControlFileName.Incidents));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return ExitCodes.Ok; // the control directory went away: the instance stopped
            }

            foreach (string line in incidents.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                try
                {
                    using var doc = JsonDocument.Parse(line);
                    if (doc.RootElement.TryGetProperty("id", out JsonElement id) && seen.Add(id.ToString()))
                    {
                        lock (output)
                        {
                            Console.Out.WriteLine(json ? line : "  INCIDENT  " + HumanIncident(doc.RootElement));
                        }
                    }
                }
                catch (JsonException)
                {
                    // a line being written; it is complete on the next poll
                }
            }

            if (!follower.IsAlive)
            {
                return ExitCodes.Ok;
            }

            Thread.Sleep(250);
        }
    }
}
