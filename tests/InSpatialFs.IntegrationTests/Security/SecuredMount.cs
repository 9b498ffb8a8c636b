using System.Diagnostics;
using System.Text.Json.Nodes;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Security;

/// <summary>
/// A real instance (bin/inspatialfs mount --config) serving a small host tree at "/" and memory at /tmp, with
/// the policy the security tests share:
/// <code>
///   /etc/hosts      no class: the level's default      /usr/bin/tool  readonly  (/usr/**), a copy of /bin/true
///   /etc/shadow     forbidden (exact)                    /data/         allowed   (/data/**)
///   /secret/key     forbidden (/secret/**)               /opt/          no class: the level's default
///   /tmp            memory, allowed (/tmp/**)
/// </code>
/// Reads the control directory's events and incidents; always unmounts both mounts on Dispose.
/// </summary>
internal sealed class SecuredMount : IDisposable
{
    public const string Policy = """
        paths:
          forbidden: [/etc/shadow, /secret/**]
          readonly: [/usr/**]
          allowed: [/tmp/**, /data/**]
        """;

    private SecuredMount(string work, string level, string extraConfig)
    {
        Work = work;
        Level = level;
        Name = "sec-" + Path.GetFileName(work)[^8..];
        Directory.CreateDirectory(Source);
        File.WriteAllText(ConfigPath, $$"""
            name: {{Name}}
            mountpoint: {{MountPoint}}
            control: {{ControlDirectory}}
            state_dir: {{StateDirectory}}
            isolation: {{level}}
            mounts:
              - { path: /, source: {{Source}} }
              - { path: /tmp, memory: { size: 32MiB } }
            {{Policy}}
            {{extraConfig}}
            """);
    }

    public string Work { get; }

    public string Level { get; }

    public string Name { get; }

    public string Source => Path.Combine(Work, "source");

    public string MountPoint => Path.Combine(Work, "mnt");

    public string ControlDirectory => Path.Combine(Work, "control");

    public string StateDirectory => Path.Combine(Work, "state");

    public string ConfigPath => Path.Combine(Work, "instance.yaml");

    public DaemonProcess Daemon { get; private set; } = null!;

    public static string FsopTool => Path.Combine(DaemonProcess.RepoRoot, "native", "build", "fsop");

    /// <summary>Builds the tree, writes the config (<paramref name="extraConfig"/> is appended) and mounts.</summary>
    public static SecuredMount Start(string level, string extraConfig = "")
    {
        DaemonProcess.RequireMountable();
        if (!File.Exists(FsopTool))
        {
            Assert.Fail($"{FsopTool} is missing: `make native` builds it");
        }

        string work = Path.Combine("/var/tmp", "inspatialfs-sec-" + Guid.NewGuid().ToString("N")[..8]);
        var mount = new SecuredMount(work, level, extraConfig);
        try
        {
            Shell.Check($"cd '{mount.Source}' && " +
                "mkdir -p etc secret usr/bin data opt tmp && echo '127.0.0.1 localhost' > etc/hosts && echo 'root:*:1:0:::::' > etc/shadow && " +
                "echo key > secret/key && cp /bin/true usr/bin/tool && chmod 0755 usr/bin/tool");
            mount.StartDaemon();
            return mount;
        }
        catch
        {
            mount.Dispose();
            throw;
        }
    }

    /// <summary>Starts bin/inspatialfs on the config and waits until both the mount and the control directory serve.</summary>
    public void StartDaemon()
    {
        Daemon = DaemonProcess.Start(MountPoint, ["--config", ConfigPath], appendMountPoint: false);
        ControlFiles.WaitUntilServing(ControlDirectory, Daemon);
    }

    /// <summary>kill -9 the daemon and clear away both dead mounts (nothing is flushed or unmounted by the daemon).</summary>
    public void KillDaemon()
    {
        int pid = Daemon.Pid;
        Shell.Check($"kill -KILL {pid}");
        var clock = Stopwatch.StartNew();
        while (!Daemon.HasExited && clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            Thread.Sleep(20);
        }

        Mounts.ForceUnmount(MountPoint);
        Mounts.ForceUnmount(ControlDirectory);
        Daemon.Dispose();
    }

    /// <summary>Runs native/build/fsop with <paramref name="arguments"/> (shell words; $M is the mountpoint) and returns its one-line outcome.</summary>
    public string Fsop(string arguments)
    {
        ShellResult r = Shell.Run($"'{FsopTool}' {arguments}", TimeSpan.FromSeconds(30), environment: ShellEnvironment());
        Assert.That(r.ExitCode, Is.Zero, $"fsop {arguments}: {r}");
        return r.StdOut.Trim();
    }

    /// <summary>Runs a shell script in the source directory with $M (mountpoint) and $S (source) set.</summary>
    public ShellResult Sh(string script) => Shell.Run(script, TimeSpan.FromSeconds(60), Source, ShellEnvironment());

    private Dictionary<string, string> ShellEnvironment() => new() { ["M"] = MountPoint, ["S"] = Source, ["FSOP"] = FsopTool };

    public List<JsonObject> Events() => ControlFiles.Events(ControlDirectory);

    public List<JsonObject> Incidents() => ControlFiles.Incidents(ControlDirectory);

    public Dictionary<string, string> Status() => ControlFiles.Status(ControlDirectory);

    public JsonObject WaitForEvent(Func<JsonObject, bool> match, string what, TimeSpan? timeout = null) =>
        ControlFiles.WaitForEvent(ControlDirectory, match, what, timeout);

    public JsonObject WaitForIncident(Func<JsonObject, bool> match, string what, TimeSpan? timeout = null) =>
        ControlFiles.WaitForIncident(ControlDirectory, match, what, timeout);

    public static string Str(JsonNode? node, string key) => ControlFiles.Str(node, key);

    public void Dispose()
    {
        Daemon?.Dispose();
        Mounts.ForceUnmount(ControlDirectory);
        Shell.Run($"umount -l '{ControlDirectory}' 2>/dev/null; rm -rf '{Work}'");
    }
}
