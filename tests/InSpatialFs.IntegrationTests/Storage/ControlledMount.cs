using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Storage;

/// <summary>
/// One daemon with its control directory, in a private work directory (source/, mnt/, ctl/) that is removed
/// with it. Reads the control files the way an operator would: `status` as text, `events` as JSON lines
/// through `inspatialfs ctl DIR events --json`.
/// </summary>
internal sealed class ControlledMount : IDisposable
{
    private ControlledMount(string work, DaemonProcess daemon)
    {
        Work = work;
        Daemon = daemon;
    }

    public string Work { get; }

    public DaemonProcess Daemon { get; }

    public string Source => Path.Combine(Work, "source");

    public string MountPoint => Path.Combine(Work, "mnt");

    public string Control => Path.Combine(Work, "ctl");

    /// <summary>Mounts with `--control WORK/ctl`; <paramref name="withSource"/> adds `--source WORK/source` first.</summary>
    public static ControlledMount Start(string baseDirectory, bool withSource, params string[] arguments)
    {
        DaemonProcess.RequireMountable();
        string work = Path.Combine(baseDirectory, "inspatialfs-st-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Path.Combine(work, "source"));
        string[] all = withSource
            ? ["--source", Path.Combine(work, "source"), .. arguments, "--control", Path.Combine(work, "ctl"), "--name", Path.GetFileName(work)]
            : [.. arguments, "--control", Path.Combine(work, "ctl"), "--name", Path.GetFileName(work)];
        try
        {
            var mount = new ControlledMount(work, DaemonProcess.Start(Path.Combine(work, "mnt"), all));
            // The container mount comes up first, the control mount follows, and the daemon says "serving" (and
            // notifies systemd) only once the kernel's INIT reached the proxy, which is when the DirectFS mode is known.
            var clock = Stopwatch.StartNew();
            while (!Mounts.IsFuse(mount.Control) || !mount.Daemon.Output.Contains("serving ", StringComparison.Ordinal))
            {
                if (mount.Daemon.HasExited || clock.Elapsed > TimeSpan.FromSeconds(30))
                {
                    string output = mount.Daemon.Output;
                    mount.Dispose();
                    throw new InvalidOperationException("the control directory did not come up:\n" + output);
                }

                Thread.Sleep(20);
            }

            return mount;
        }
        catch
        {
            Shell.Run($"rm -rf '{work}'");
            throw;
        }
    }

    public string Status() => File.ReadAllText(Path.Combine(Control, "status"));

    /// <summary>A numeric `key: value` line of `status`.</summary>
    public long StatusValue(string key)
    {
        foreach (string line in Status().Split('\n'))
        {
            if (line.StartsWith(key + ": ", StringComparison.Ordinal))
            {
                return long.Parse(line[(key.Length + 2)..], CultureInfo.InvariantCulture);
            }
        }

        throw new AssertionException($"status has no '{key}' line:\n{Status()}");
    }

    public long LiveNodes => StatusValue("live_nodes");

    /// <summary>Descriptors the daemon process holds now.</summary>
    public int DaemonFdCount => Directory.GetFiles($"/proc/{Daemon.Pid}/fd").Length;

    /// <summary>Every event recorded so far, parsed.</summary>
    public List<JsonElement> Events()
    {
        ShellResult r = Shell.Run($"'{DaemonProcess.Binary}' ctl '{Control}' events --json", TimeSpan.FromSeconds(60));
        Assert.That(r.ExitCode, Is.Zero, "ctl events: " + r);
        var events = new List<JsonElement>();
        foreach (string line in r.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            using var doc = JsonDocument.Parse(line);
            events.Add(doc.RootElement.Clone());
        }

        return events;
    }

    /// <summary>Waits until <paramref name="done"/> holds for the events (they are queued asynchronously).</summary>
    public List<JsonElement> WaitForEvents(Func<List<JsonElement>, bool> done, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            List<JsonElement> events = Events();
            if (done(events) || clock.Elapsed > timeout)
            {
                return events;
            }

            Thread.Sleep(100);
        }
    }

    /// <summary>Polls `live_nodes` after asking the kernel to drop its dentry and inode caches, until it is at most
    /// <paramref name="limit"/>; returns the last value seen.</summary>
    public long DropCachesUntilLiveNodesAtMost(long limit, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        long live;
        do
        {
            // The kernel sends FORGET for inodes it evicts; eviction of a large tree can take a few rounds.
            File.WriteAllText("/proc/sys/vm/drop_caches", "3");
            live = LiveNodes;
            if (live <= limit)
            {
                return live;
            }

            Thread.Sleep(200);
        }
        while (clock.Elapsed < timeout);
        return live;
    }

    public void AssertAlive() => Assert.That(Daemon.HasExited, Is.False, "the daemon died:\n" + Daemon.Output);

    /// <summary>SIGTERM, wait, and return the exit code; the work directory is removed by <see cref="Dispose"/>.</summary>
    public int Stop() => Daemon.Stop();

    public void Dispose()
    {
        Daemon.Dispose();
        if (Mounts.IsFuse(Control))
        {
            Mounts.ForceUnmount(Control);
        }

        Shell.Run($"rm -rf '{Work}'", TimeSpan.FromMinutes(2));
    }
}
