using System.Net.Sockets;
using System.Runtime.InteropServices;
using InSpatialFs.Daemon.Config;
using InSpatialFs.Interop;

namespace InSpatialFs.Daemon.Hosting;

/// <summary>
/// `inspatialfs mount` in front of a server that may die: the process becomes inspatialfs-keeper (exec, same pid, so a
/// shell's job control, a container engine's wait and mount --background's readiness see no difference), which starts
/// the server and keeps the connection's descriptors across its restarts (<see cref="DescriptorStore"/>).
/// </summary>
internal static class KeeperLaunch
{
    public const string KeeperName = "inspatialfs-keeper";

    /// <summary>
    /// Why this mount runs without a keeper, or null when it should get one: not under one already (or under systemd,
    /// which keeps the descriptors itself or not at all), the keeper installed next to this binary, and only mounts a new
    /// server can find again (host directories; memory mounts through their journal and kept tmpfs; overlays through their
    /// layers, copies by their origin mark). A memory mount whose data the kernel will not put in a private tmpfs is refused later, by
    /// the server, which then says so in `status` and runs on without restarts.
    /// </summary>
    /// <param name="detached">For a server started detached (mount --background), which does not inherit this process's
    /// service manager: only the mount decides.</param>
    public static string? Unkept(InstanceConfig config, out string keeper, bool detached = false)
    {
        keeper = Path.Combine(Path.GetDirectoryName(Environment.ProcessPath) ?? "/", KeeperName);
        if (UnderServiceManager && !detached)
        {
            return "under a service manager";
        }

        if (config.Mounts.FirstOrDefault(m => m.Kind is not (MountSourceKind.Host or MountSourceKind.Memory or MountSourceKind.Overlay)) is { } other)
        {
            return $"the {other.Kind.ToString().ToLowerInvariant()} mount at {other.Path} cannot be rebuilt by a new server";
        }

        return File.Exists(keeper) ? null : $"{keeper} is not installed";
    }

    /// <summary>
    /// Makes <paramref name="log"/> the stdout and stderr of the keeper that started this process (X_INSPATIALFS_STDIO=1;
    /// nothing when not started by inspatialfs-keeper). A keeper its caller started directly (native/keeper/early-detach.c)
    /// otherwise holds the caller's pipes for its whole life, and writes its restart lines where nobody reads them.
    /// </summary>
    public static void ShareStdio(SafeHandle log)
    {
        string? notify = Environment.GetEnvironmentVariable("NOTIFY_SOCKET");
        if (string.IsNullOrEmpty(notify) || string.IsNullOrEmpty(Environment.GetEnvironmentVariable("INSPATIALFS_KEEPER_PID")))
        {
            return;
        }

        bool added = false;
        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
            socket.Connect(SystemdNotifier.EndPointOf(notify));
            log.DangerousAddRef(ref added);
            _ = LibC.SendFds((int)socket.Handle, "X_INSPATIALFS_STDIO=1\n"u8, [(int)log.DangerousGetHandle()]);
        }
        catch (SocketException)
        {
            // The keeper is gone: it cannot hold anything either.
        }
        finally
        {
            if (added)
            {
                log.DangerousRelease();
            }
        }
    }

    /// <summary>Started by the keeper or by systemd (both hand over NOTIFY_SOCKET): this process serves, never becomes a keeper.</summary>
    private static bool UnderServiceManager => !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("NOTIFY_SOCKET"));

    /// <summary>
    /// Replaces this process with the keeper running this same command line (or <paramref name="serverArguments"/>: the
    /// keeper runs the server as this binary, not under the name it was called by); returns only if exec failed. A
    /// readiness pipe this process was given goes to the keeper, which reports the first server's mount through it.
    /// </summary>
    public static Errno Become(string keeper, IReadOnlyList<string>? serverArguments = null)
    {
        string self = Environment.ProcessPath ?? "/proc/self/exe";
        string[] argv = [keeper, "--", self, .. serverArguments ?? Environment.GetCommandLineArgs().Skip(1)];
        ReadinessPipe.KeepAcrossExec();
        string[] environment = [.. Environment.GetEnvironmentVariables().Keys.Cast<string>().Select(k => $"{k}={Environment.GetEnvironmentVariable(k)}")];
        return LibC.Execute(keeper, argv, environment);
    }
}
