using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using InSpatialFs.Interop;
using InSpatialFs.TestKit.Processes;
using Microsoft.Win32.SafeHandles;

namespace InSpatialFs.IntegrationTests.Security;

/// <summary>Reads and writes an instance's control directory the way an operator's tools do.</summary>
internal static class ControlFiles
{
    private static readonly TimeSpan DefaultWait = TimeSpan.FromSeconds(10);

    /// <summary>Every event the control directory still holds (JSON lines; O_NONBLOCK so the read ends at the end of the log).</summary>
    public static List<JsonObject> Events(string control)
    {
        string path = Path.Combine(control, "events");
        int fd = LibC.open(path, LibC.O_RDONLY | LibC.O_NONBLOCK | LibC.O_CLOEXEC, 0);
        Errno error = ErrnoExtensions.LastPInvoke();
        if (fd < 0)
        {
            throw new IOException($"open {path}: {error}");
        }

        using var stream = new FileStream(new SafeFileHandle(fd, ownsHandle: true), FileAccess.Read, bufferSize: 0);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return ParseLines(reader.ReadToEnd());
    }

    public static List<JsonObject> Incidents(string control) => ParseLines(File.ReadAllText(Path.Combine(control, "incidents")));

    /// <summary>The status file as key → value (repeated keys keep the last).</summary>
    public static Dictionary<string, string> Status(string control)
    {
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string line in File.ReadAllLines(Path.Combine(control, "status")))
        {
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0)
            {
                d[line[..colon]] = line[(colon + 1)..].Trim();
            }
        }

        return d;
    }

    /// <summary>`bin/inspatialfs ctl DIR VERB...` (suspend, resume, ack ID, ...): the operator's way in.</summary>
    public static ShellResult Ctl(string control, string verb) =>
        Shell.Run($"'{DaemonProcess.Binary}' ctl '{control}' {verb}", TimeSpan.FromSeconds(60));

    /// <summary>Polls the event log until an event matches (events are recorded after the op and analysed asynchronously).</summary>
    public static JsonObject WaitForEvent(string control, Func<JsonObject, bool> match, string what, TimeSpan? timeout = null) =>
        Poll(() => Events(control), match, timeout) ?? throw new AssertionException($"no event {what} within {timeout ?? DefaultWait}; last events:\n{Tail(Events(control))}");

    public static JsonObject WaitForIncident(string control, Func<JsonObject, bool> match, string what, TimeSpan? timeout = null) =>
        Poll(() => Incidents(control), match, timeout) ?? throw new AssertionException($"no incident {what} within {timeout ?? DefaultWait}; incidents:\n{Tail(Incidents(control))}");

    /// <summary>The container mount appears before the control mount: wait for the latter (its status file).</summary>
    public static void WaitUntilServing(string control, DaemonProcess daemon)
    {
        if (!Eventually(() => File.Exists(Path.Combine(control, "status")) || daemon.HasExited, TimeSpan.FromSeconds(20)) || daemon.HasExited)
        {
            throw new InvalidOperationException($"the control directory {control} did not appear:\n{daemon.Output}");
        }
    }

    /// <summary>Polls a condition; true once it holds, false at the timeout.</summary>
    public static bool Eventually(Func<bool> condition, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > timeout)
            {
                return false;
            }

            Thread.Sleep(25);
        }

        return true;
    }

    public static string Str(JsonNode? node, string key) => node?[key]?.ToString() ?? "";

    private static JsonObject? Poll(Func<List<JsonObject>> read, Func<JsonObject, bool> match, TimeSpan? timeout)
    {
        JsonObject? hit = null;
        Eventually(() => (hit = read().LastOrDefault(match)) != null, timeout ?? DefaultWait);
        return hit;
    }

    private static string Tail(List<JsonObject> items) => string.Join("\n", items.TakeLast(15).Select(i => i.ToJsonString()));

    private static List<JsonObject> ParseLines(string text) =>
        [.. text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!.AsObject())];
}
