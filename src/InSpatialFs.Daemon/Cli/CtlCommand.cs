using System.CommandLine;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace InSpatialFs.Daemon.Cli;

/// <summary>
/// `inspatialfs ctl NAME ...`: reads and writes a running instance's control files. NAME is an instance name
/// (its control directory is /run/inspatialfs/NAME) or a control directory path.
/// </summary>
internal static class CtlCommand
{
    public const string DefaultControlRoot = "/run/inspatialfs";

    public static Command Create()
    {
        var name = new Argument<string>("NAME") { Description = "Instance name, or the path of its control directory." };
        var json = new Option<bool>("--json") { Description = "Machine-readable JSON output.", Recursive = true };
        var command = new Command("ctl", "Inspect and steer a running instance through its control files.") { name, json };

        command.Subcommands.Add(Reader("status", "State, isolation level, uptime, mounts, counters and warnings.", name, json, ControlFileName.Status));
        command.Subcommands.Add(Reader("policy", "The effective policy (YAML).", name, json, ControlFileName.Policy));
        command.Subcommands.Add(Reader("rules", "Loaded rules with enabled state, mode and hit counts.", name, json, ControlFileName.Rules));
        command.Subcommands.Add(Reader("mounts", "The mount table.", name, json, ControlFileName.Mounts));
        command.Subcommands.Add(Reader("stats", "Per-operation counts and latency percentiles.", name, json, ControlFileName.Stats));
        command.Subcommands.Add(Reader("metrics", "Prometheus text exposition.", name, json, ControlFileName.Metrics));
        command.Subcommands.Add(Reader("incidents", "Incidents (JSON lines with --json).", name, json, ControlFileName.Incidents));

        var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing new events as they happen (until interrupted)." };
        var events = new Command("events", "Recent events; with --follow, new ones as they happen.") { follow };
        events.SetAction(p => Events(Resolve(p.GetValue(name)!), p.GetValue(follow), p.GetValue(json)));
        command.Subcommands.Add(events);

        foreach ((string verb, string help) in new[]
        {
            ("suspend", "Freeze the container (its cgroup) and hold it until resumed."),
            ("resume", "Thaw the container and lift process blocks."),
            ("reload", "Re-read rule files: validate fully, then swap atomically."),
        })
        {
            var c = new Command(verb, help);
            c.SetAction(p => Send(Resolve(p.GetValue(name)!), verb));
            command.Subcommands.Add(c);
        }

        foreach ((string verb, string help) in new[] { ("ack", "Acknowledge an incident."), ("resolve", "Mark an incident resolved.") })
        {
            var id = new Argument<string>("ID") { Description = "Incident id." };
            var c = new Command(verb, help) { id };
            c.SetAction(p => Send(Resolve(p.GetValue(name)!), verb + " " + p.GetValue(id)));
            command.Subcommands.Add(c);
        }

        var level = new Argument<string>("LEVEL") { Description = "standard, enhanced or maximum (relaxing needs --allow-relax on mount)." };
        var isolation = new Command("isolation", "Change the isolation level at run time.") { level };
        isolation.SetAction(p => Send(Resolve(p.GetValue(name)!), "isolation " + p.GetValue(level)));
        command.Subcommands.Add(isolation);
        return command;
    }

    /// <summary>The control directory for NAME.</summary>
    public static string Resolve(string nameOrPath) =>
        nameOrPath.Contains('/', StringComparison.Ordinal) ? nameOrPath : Path.Combine(DefaultControlRoot, nameOrPath);

    private static Command Reader(string verb, string help, Argument<string> name, Option<bool> json, string file)
    {
        var c = new Command(verb, help);
        c.SetAction(p => Print(Resolve(p.GetValue(name)!), file, p.GetValue(json)));
        return c;
    }

    private static int Print(string dir, string file, bool json)
    {
        if (!TryRead(dir, file, out string text))
        {
            return ExitCodes.RuntimeFailure;
        }

        if (!json)
        {
            Console.Out.Write(file == ControlFileName.Incidents ? HumanIncidents(text) : text);
            return ExitCodes.Ok;
        }

        Console.Out.WriteLine(file switch
        {
            ControlFileName.Status => KeyValuesToJson(text),
            ControlFileName.Incidents or ControlFileName.Rules => text.TrimEnd(),
            _ => JsonSerializer.Serialize(new JsonObject { [file] = text }),
        });
        return ExitCodes.Ok;
    }

    private static int Events(string dir, bool follow, bool json)
    {
        string path = Path.Combine(dir, ControlFileName.Events);
        try
        {
            // Without --follow, O_NONBLOCK makes the daemon answer end-of-file once the backlog is read.
            var options = new FileStreamOptions { Mode = FileMode.Open, Access = FileAccess.Read, Options = FileOptions.None, BufferSize = 0 };
            using var stream = follow ? new FileStream(path, options) : OpenNonBlocking(path);
            using var reader = new StreamReader(stream, Encoding.UTF8);
            string? line;
            while ((line = reader.ReadLine()) != null)
            {
                Console.Out.WriteLine(json ? line : HumanEvent(line));
                Console.Out.Flush();
            }

            return ExitCodes.Ok;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"inspatialfs ctl: cannot read {path}: {e.Message}");
            return ExitCodes.RuntimeFailure;
        }
    }

    private static FileStream OpenNonBlocking(string path)
    {
        int fd = Interop.LibC.open(path, Interop.LibC.O_RDONLY | Interop.LibC.O_NONBLOCK | Interop.LibC.O_CLOEXEC, 0);
        Interop.Errno error = Interop.ErrnoExtensions.LastPInvoke();
        if (fd < 0)
        {
            throw new IOException($"open: {error}");
        }

        return new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true), FileAccess.Read, bufferSize: 0);
    }

    private static int Send(string dir, string command)
    {
        string path = Path.Combine(dir, ControlFileName.Control);
        try
        {
            File.WriteAllText(path, command + "\n");
            Console.Out.WriteLine($"{command}: ok");
            return ExitCodes.Ok;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"inspatialfs ctl: '{command}' refused: {e.Message} (the daemon log says why)");
            return ExitCodes.RuntimeFailure;
        }
    }

    private static bool TryRead(string dir, string file, out string text)
    {
        string path = Path.Combine(dir, file);
        try
        {
            text = File.ReadAllText(path);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"inspatialfs ctl: cannot read {path}: {e.Message}" +
                (Directory.Exists(dir) ? "" : $" (no control directory at {dir}: is the instance running?)"));
            text = "";
            return false;
        }
    }

    /// <summary>"key: value" lines → one JSON object (repeated keys become arrays).</summary>
    internal static string KeyValuesToJson(string text)
    {
        var o = new JsonObject();
        foreach (string line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
            {
                continue;
            }

            string key = line[..colon].Trim();
            string value = line[(colon + 1)..].Trim();
            if (o[key] is JsonArray array)
            {
                array.Add(value);
            }
            else if (o[key] is JsonNode existing)
            {
                o[key] = new JsonArray(existing.GetValue<string>(), value);
            }
            else
            {
                o[key] = value;
            }
        }

        return o.ToJsonString();
    }

    /// <summary>One event as a terminal line: time, decision, op, path, process.</summary>
    internal static string HumanEvent(string jsonLine)
    {
        try
        {
            using var doc = JsonDocument.Parse(jsonLine);
            JsonElement e = doc.RootElement;
            string Get(string k) => e.TryGetProperty(k, out JsonElement v) ? v.ToString() : "";
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
            return jsonLine;
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
                string Get(string k) => e.TryGetProperty(k, out JsonElement v) ? v.ToString() : "";
                sb.Append(CultureInvariant($"{Get("id"),-8} {Get("severity"),-8} {Get("status"),-12} {Get("rule"),-40} {Get("process")}:{Get("pid")}  {Get("response")}"));
                sb.Append('\n');
            }
            catch (JsonException)
            {
                sb.Append(line).Append('\n');
            }
        }

        return sb.ToString();
    }

    private static string CultureInvariant(FormattableString s) => FormattableString.Invariant(s);
}

/// <summary>File names of the control directory.</summary>
internal static class ControlFileName
{
    public const string Status = "status";
    public const string Policy = "policy";
    public const string Rules = "rules";
    public const string Mounts = "mounts";
    public const string Stats = "stats";
    public const string Metrics = "metrics";
    public const string Events = "events";
    public const string Incidents = "incidents";
    public const string Control = "control";
}
