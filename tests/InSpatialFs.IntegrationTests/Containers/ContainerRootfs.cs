using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Containers;

/// <summary>
/// A busybox image built by scripts/make-rootfs.sh (shared with `make run`) and an InSpatialFs instance
/// serving it: "/" from the image, "/usr" read-only and direct, "/tmp" in memory.
/// </summary>
internal sealed class ContainerRootfs : IDisposable
{
    private ContainerRootfs(string work, string image, string mountPoint, DaemonProcess daemon, string control)
    {
        Work = work;
        Image = image;
        MountPoint = mountPoint;
        Daemon = daemon;
        ControlDirectory = control;
    }

    public string Work { get; }

    /// <summary>The host directory the root mount serves.</summary>
    public string Image { get; }

    public string MountPoint { get; }

    public string ControlDirectory { get; }

    public DaemonProcess Daemon { get; private set; }

    /// <summary>The instance's config file (restarts use it again).</summary>
    public string ConfigPath => Path.Combine(Work, "instance.yaml");

    /// <summary>Stops the daemon (SIGTERM, a clean unmount) and starts it again on the same config and state.</summary>
    public void Restart()
    {
        Assert.That(Daemon.Stop(), Is.Zero, Daemon.Output);
        Daemon.Dispose();
        Daemon = DaemonProcess.Start(MountPoint, ["--config", ConfigPath], appendMountPoint: false);
    }

    public string StateDirectory => Path.Combine(Work, "state");

    /// <summary>Builds a fresh image and mounts it with the given extra config lines (isolation, paths, ...).</summary>
    /// <param name="extraMounts">More `mounts:` entries, one per line, indented as list items.</param>
    public static ContainerRootfs Start(string extraConfig = "", bool directUsr = true, string extraMounts = "")
    {
        string work = Path.Combine("/var/tmp", "inspatialfs-ct-" + Guid.NewGuid().ToString("N")[..8]);
        string image = Path.Combine(work, "image");
        string mountPoint = Path.Combine(work, "rootfs");
        string control = Path.Combine(work, "control");
        Directory.CreateDirectory(work);
        Shell.Check($"'{DaemonProcess.RepoRoot}/scripts/make-rootfs.sh' '{image}'", TimeSpan.FromMinutes(3));
        string config = Path.Combine(work, "instance.yaml");
        File.WriteAllText(config, $$"""
            name: ct-{{Path.GetFileName(work)[^8..]}}
            mountpoint: {{mountPoint}}
            control: {{control}}
            state_dir: {{work}}/state
            mounts:
              - { path: /,    source: {{image}} }
              - { path: /usr, source: {{image}}/usr, readonly: true, direct: {{(directUsr ? "true" : "false")}} }
              - { path: /tmp, memory: { size: 64MiB } }
            {{extraMounts}}
            {{extraConfig}}
            """);
        DaemonProcess daemon = DaemonProcess.Start(mountPoint, ["--config", config], appendMountPoint: false);
        return new ContainerRootfs(work, image, mountPoint, daemon, control);
    }

    public void Dispose()
    {
        Daemon.Dispose();
        Shell.Run($"umount -l '{ControlDirectory}' 2>/dev/null; rm -rf '{Work}'");
    }
}
