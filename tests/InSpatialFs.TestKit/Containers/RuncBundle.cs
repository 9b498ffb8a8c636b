using System.Text.Json.Nodes;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.TestKit.Containers;

/// <summary>
/// An OCI bundle for runc whose rootfs is an InSpatialFs mount: config.json from `runc spec`, adjusted for a
/// non-interactive run of one command. Dispose deletes the container if it is still there.
/// </summary>
public sealed class RuncBundle : IDisposable
{
    private RuncBundle(string directory, string id)
    {
        Directory = directory;
        Id = id;
    }

    public string Directory { get; }

    public string Id { get; }

    public string ConfigPath => Path.Combine(Directory, "config.json");

    /// <summary>Why runc tests cannot run here, or null.</summary>
    public static string? WhyCannotRun() =>
        DaemonProcess.WhyCannotMount() ?? (Shell.Has("runc") ? null : "runc is not installed (make deps installs it)");

    /// <summary>Writes a bundle running <paramref name="args"/> in <paramref name="rootfs"/>; <paramref name="edit"/> may change more.</summary>
    public static RuncBundle Create(string rootfs, IReadOnlyList<string> args, Action<JsonObject>? edit = null)
    {
        string dir = Path.Combine(Path.GetTempPath(), "inspatialfs-bundle-" + Guid.NewGuid().ToString("N")[..8]);
        System.IO.Directory.CreateDirectory(dir);
        Shell.Check("runc spec", workingDirectory: dir);
        JsonObject config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
        config["root"] = new JsonObject { ["path"] = rootfs, ["readonly"] = false };
        JsonObject process = config["process"]!.AsObject();
        process["terminal"] = false;
        process["args"] = new JsonArray(args.Select(a => (JsonNode)JsonValue.Create(a)!).ToArray());
        process["cwd"] = "/";
        edit?.Invoke(config);
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        return new RuncBundle(dir, "isfs-" + Guid.NewGuid().ToString("N")[..10]);
    }

    /// <summary>Runs the container to completion (foreground, no terminal).</summary>
    public ShellResult Run(TimeSpan? timeout = null) => Shell.Run($"runc run --bundle '{Directory}' {Id}", timeout ?? TimeSpan.FromMinutes(2));

    /// <summary>Starts the container detached (`runc run -d`); use <see cref="State"/> and <see cref="Wait"/>.</summary>
    public ShellResult RunDetached() => Shell.Run($"runc run -d --bundle '{Directory}' {Id} > '{Directory}/out.log' 2>&1");

    /// <summary>`runc state` status: created, running, paused, stopped (or null when gone).</summary>
    public string? State()
    {
        ShellResult r = Shell.Run($"runc state {Id}");
        return r.ExitCode != 0 ? null : JsonNode.Parse(r.StdOut)?["status"]?.GetValue<string>();
    }

    public int? Pid()
    {
        ShellResult r = Shell.Run($"runc state {Id}");
        return r.ExitCode != 0 ? null : JsonNode.Parse(r.StdOut)?["pid"]?.GetValue<int>();
    }

    /// <summary>Waits until the container stopped; returns false on timeout.</summary>
    public bool Wait(TimeSpan timeout)
    {
        DateTime end = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < end)
        {
            string? state = State();
            if (state is null or "stopped")
            {
                return true;
            }

            Thread.Sleep(100);
        }

        return false;
    }

    public string Output => File.Exists(Path.Combine(Directory, "out.log")) ? File.ReadAllText(Path.Combine(Directory, "out.log")) : "";

    public void Dispose()
    {
        Shell.Run($"runc kill {Id} KILL 2>/dev/null; runc delete -f {Id} 2>/dev/null");
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
