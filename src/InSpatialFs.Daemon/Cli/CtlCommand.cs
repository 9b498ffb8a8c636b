using System.CommandLine;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace InSpatialFs.Daemon.Cli;

/// <summary>
/// `inspatialfs ctl NAME ...`: reads and writes a running instance's control files. NAME is an instance name
/// (its control directory is /run/inspatialfs/NAME) or a control directory path.
/// </summary>
internal static partial class CtlCommand
{
    public const string DefaultControlRoot = "/run/inspatialfs";

    public static Command Create()
    {
        var name = new Argument<string>("NAME") { Description = "Instance name, or the path of its control directory." };
        name.Validators.Add(result =>
        {
            string value = result.GetValueOrDefault<string>() ?? "";
            if (!value.Contains('/', StringComparison.Ordinal) && Config.ConfigRules.NameProblem(value) is { } problem)
            {
                result.AddError($"NAME: {problem} (or give the control directory's path)");
            }
        });
        // `ctl list --json`; each command with data has its own --json (commands that only act have none).
        var json = new Option<bool>("--json") { Description = "With 'ctl list': a JSON array of the running instances." };
        var command = new Command("ctl", "Inspect and steer a running instance through its control files. 'inspatialfs ctl list' lists the running instances.") { name, json };

        command.Subcommands.Add(Reader("status", "State, isolation level, uptime, mounts, counters and warnings (--json: typed values, uptime_seconds).", name, ControlFileName.Status));
        command.Subcommands.Add(Reader("policy", "The effective policy (YAML; --json: the same document as JSON).", name, ControlFileName.Policy));
        command.Subcommands.Add(Reader("rules", "Loaded rules with enabled state, kind and hit counts, and the skipped ones (--json: {rules, skipped, totals}).", name, ControlFileName.Rules));
        command.Subcommands.Add(Reader("mounts", "The mount table (--json: an array of mounts).", name, ControlFileName.Mounts));
        command.Subcommands.Add(Reader("stats", "Per-operation counts and latency percentiles (--json: latencies in seconds).", name, ControlFileName.Stats));
        command.Subcommands.Add(Reader("metrics", "Prometheus text exposition (--json: families with typed samples).", name, ControlFileName.Metrics));
        command.Subcommands.Add(Reader("incidents", "Incidents (--json: one JSON array).", name, ControlFileName.Incidents));

        var summaryJson = JsonOption("{operations, denials, incidents, by_rule: [{rule, severity, count, responses}]}");
        var summary = new Command("summary", "Operations served, denials, and incidents by rule with the response taken.") { summaryJson };
        summary.SetAction(p => Summary(Resolve(p.GetValue(name)!), p.GetValue(summaryJson)));
        command.Subcommands.Add(summary);

        var watchJson = JsonOption("the raw JSON lines of events and incidents (one document per line)");
        var watch = new Command("watch", "Live terminal view: notable events (denials, changes, executions) and new incidents, until interrupted or the instance stops.") { watchJson };
        watch.SetAction(p => Watch(Resolve(p.GetValue(name)!), p.GetValue(watchJson)));
        command.Subcommands.Add(watch);

        var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing new events as they happen (until interrupted)." };
        var eventsJson = JsonOption("one JSON object per event per line (the journal format)");
        var events = new Command("events", "Recent events; with --follow, new ones as they happen.") { follow, eventsJson };
        events.SetAction(p => Events(Resolve(p.GetValue(name)!), p.GetValue(follow), p.GetValue(eventsJson)));
        command.Subcommands.Add(events);

        foreach ((string verb, string help) in new[]
        {
            ("suspend", "Freeze the container (its cgroup) and hold it until resumed."),
            ("resume", "Thaw the container and lift process blocks."),
            ("reload", "Re-read the rule files and the config's paths: (the policy classes): validate fully, then swap atomically."),
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

        var initPid = new Argument<string>("PID") { Description = "Host pid of the container's init (runc state's pid)." };
        var containerInit = new Command("container-init", "Record the container's init: its pid namespace and descendants are the container.") { initPid };
        containerInit.SetAction(p => Send(Resolve(p.GetValue(name)!), "container-init " + p.GetValue(initPid)));
        command.Subcommands.Add(containerInit);

        var binary = new Argument<string?>("BINARY") { Description = "Absolute path of the new inspatialfs (root's, writable by nobody else); default: the binary the keeper started.", Arity = ArgumentArity.ZeroOrOne };
        var upgrade = new Command("upgrade",
            "Hand the live mount to a new server (this binary or BINARY) without unmounting: this server finishes the requests in hand and exits; " +
            "requests that arrive meanwhile wait in the kernel and are answered by the new one. Needs the keeper (inspatialfs mount) or systemd's descriptor store.") { binary };
        upgrade.SetAction(p => Send(Resolve(p.GetValue(name)!), p.GetValue(binary) is string b ? "upgrade " + Path.GetFullPath(b) : "upgrade"));
        command.Subcommands.Add(upgrade);

        // No `isolation LEVEL` command: the level of a running instance cannot be changed (the daemon refuses it with the
        // reason); it is set at mount (isolation: or --isolation).

        // `ctl list` (NAME given as "list" and no command): every running instance.
        command.SetAction(p =>
        {
            if (p.GetValue(name) == "list")
            {
                return List(p.GetValue(json));
            }

            Console.Error.WriteLine("inspatialfs ctl: give a command after NAME (see 'inspatialfs ctl --help'), or 'inspatialfs ctl list'");
            return ExitCodes.UsageError;
        });
        return command;
    }

    /// <summary>
    /// The instances whose control directory under /run/inspatialfs answers: name, state, isolation and mountpoint
    /// (from each status file). Directories whose instance is gone are left out.
    /// </summary>
    private static int List(bool json)
    {
        var rows = new List<Dictionary<string, string>>();
        if (Directory.Exists(DefaultControlRoot))
        {
            foreach (string dir in Directory.GetDirectories(DefaultControlRoot).Order(StringComparer.Ordinal))
            {
                string status = Path.Combine(dir, ControlFileName.Status);
                if (!File.Exists(status)) continue;
                try
                {
                    var row = new Dictionary<string, string>(StringComparer.Ordinal);
                    foreach (string line in File.ReadAllLines(status))
                    {
                        int colon = line.IndexOf(':', StringComparison.Ordinal);
                        if (colon > 0 && line[..colon] is "name" or "state" or "isolation" or "mountpoint") row[line[..colon]] = line[(colon + 1)..].Trim();
                    }

                    if (row.ContainsKey("name")) rows.Add(row);
                }
                catch (IOException)
                {
                    // a dead mount (ENOTCONN): not running
                }
            }
        }

        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(rows, ListJsonContext.Default.ListDictionaryStringString));
            return ExitCodes.Ok;
        }

        foreach (Dictionary<string, string> r in rows)
        {
            Console.WriteLine($"{r["name"]}\t{r.GetValueOrDefault("state", "?")}\t{r.GetValueOrDefault("isolation", "?")}\t{Hosting.TerminalText.Escape(r.GetValueOrDefault("mountpoint", "?"))}");
        }

        return ExitCodes.Ok;
    }

    /// <summary>The control directory for NAME (the argument's validator holds a NAME to the instance-name rule) or a path.</summary>
    public static string Resolve(string nameOrPath) =>
        nameOrPath.Contains('/', StringComparison.Ordinal) ? nameOrPath
        : Path.Combine(DefaultControlRoot, nameOrPath);

    private static Option<bool> JsonOption(string shape) => new("--json") { Description = "Machine-readable output: " + shape + "." };

    private static Command Reader(string verb, string help, Argument<string> name, string file)
    {
        var json = JsonOption("one JSON document");
        var c = new Command(verb, help) { json };
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

        Console.Out.WriteLine(CtlJson.Convert(file, text).ToJsonString());
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

#pragma warning disable CA2000 // the stream owns the handle; the catch closes it if the stream cannot be made
        var handle = new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true);
#pragma warning restore CA2000
        try
        {
            return new FileStream(handle, FileAccess.Read, bufferSize: 0);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private static int Send(string dir, string command)
    {
        // Refused here exactly as the daemon would refuse it, with its position, before anything is written.
        if (!Control.ControlCommand.TryParse(command, out _, out int column, out string error))
        {
            Console.Error.WriteLine($"inspatialfs ctl: command:1:{column}: {error}");
            return ExitCodes.UsageError;
        }

        // Opened read-write: the daemon answers each command on the same open file ("ok: ..." or "refused: L:C: why"),
        // so the reason for a refusal reaches the terminal of the one who typed it, not only the daemon's log.
        string path = Path.Combine(dir, ControlFileName.Control);
        Microsoft.Win32.SafeHandles.SafeFileHandle handle;
        try
        {
#pragma warning disable CA2000 // disposed by the using (handle) below; the catch returns before anything was opened
            handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite);
#pragma warning restore CA2000
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"inspatialfs ctl: cannot open {path}: {e.Message}" +
                (Directory.Exists(dir) ? "" : $" (no control directory at {dir}: is the instance running?)"));
            return ExitCodes.RuntimeFailure;
        }

        using (handle)
        {
            string? writeError = null;
            try
            {
                RandomAccess.Write(handle, Encoding.UTF8.GetBytes(command + "\n"), 0);
            }
            catch (IOException e)
            {
                writeError = e.Message;
            }

            string reply = "";
            try
            {
                byte[] buffer = new byte[4096];
                int n = RandomAccess.Read(handle, buffer, 0);
                reply = Encoding.UTF8.GetString(buffer, 0, n).Trim();
            }
            catch (IOException)
            {
                // a daemon without replies: the write's result still tells success from refusal
            }

            if (writeError == null && !reply.StartsWith("refused: ", StringComparison.Ordinal))
            {
                string detail = reply.StartsWith("ok: ", StringComparison.Ordinal) ? reply[4..] : reply;
                Console.Out.WriteLine(detail.Length > 0 ? $"{command}: ok ({Hosting.TerminalText.Escape(detail)})" : $"{command}: ok");
                return ExitCodes.Ok;
            }

            string why = reply.StartsWith("refused: ", StringComparison.Ordinal) ? reply["refused: ".Length..] : writeError + " (the daemon log says why)";
            Console.Error.WriteLine($"inspatialfs ctl: '{command}' refused: {Hosting.TerminalText.Escape(why)}");
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

[System.Text.Json.Serialization.JsonSerializable(typeof(List<Dictionary<string, string>>))]
internal sealed partial class ListJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
