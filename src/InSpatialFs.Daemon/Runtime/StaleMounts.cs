using System.Globalization;
using InSpatialFs.Fuse.Transport;
using InSpatialFs.Interop;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.Daemon.Runtime;

/// <summary>
/// Crash recovery at start. A daemon killed with SIGKILL (or by the OOM killer) leaves its mountpoint and control
/// directory as dead FUSE mounts: every access fails with ENOTCONN and a new mount there would fail too. Before it mounts,
/// an instance detaches such a mount when it is provably its own and dead: /proc/self/mountinfo names this instance as
/// the source (inspatialfs:NAME, inspatialfs-control:NAME), no process holds a /dev/fuse descriptor of that connection
/// (fdinfo's fuse_connection), and a stat of the path answers ENOTCONN. A mount that some process still serves is
/// refused with that pid; a FUSE mount of anything else is refused too. Nothing here unmounts what is alive.
/// </summary>
internal static class StaleMounts
{
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(3);

    public static void Clear(string path, string expectedSource, ILogger log)
    {
        // Dead mounts can be stacked (one per crash, if something mounted again by hand): clear from the top.
        for (int round = 0; round < 16; round++)
        {
            MountInfoEntry? top = MountInfoEntry.TopAt(path);
            if (top is not { } entry || !entry.FsType.StartsWith("fuse", StringComparison.Ordinal))
            {
                return; // nothing, or a non-FUSE mount we mount over as before
            }

            if (FindServer(entry.Minor) is int pid)
            {
                throw new InstanceStartException($"{path} is already mounted ({entry.Source}) and served by pid {pid}; stop that instance first");
            }

            if (entry.Source != expectedSource)
            {
                throw new InstanceStartException($"{path} is a FUSE mount of {entry.Source}, not of this instance; unmount it first");
            }

            Errno probe = ProbePath(path);
            if (probe != Errno.ENOTCONN)
            {
                throw new InstanceStartException($"{path} is mounted ({entry.Source}) and answers ({probe}) although no process here serves it; unmount it first");
            }

            if (LibC.umount2(path, LibC.MNT_DETACH | LibC.UMOUNT_NOFOLLOW) != 0)
            {
                Errno e = ErrnoExtensions.LastPInvoke();
                throw new InstanceStartException($"cannot detach the dead mount at {path}: {e}");
            }

            Log.DeadMountDetached(log, path, entry.Source, entry.Minor);
        }

        throw new InstanceStartException($"{path}: too many stacked FUSE mounts");
    }

    /// <summary>The pid of a process holding a /dev/fuse descriptor of connection <paramref name="connection"/>, or null.</summary>
    internal static int? FindServer(uint connection)
    {
        string wanted = "fuse_connection:\t" + connection.ToString(CultureInfo.InvariantCulture);
        foreach (string procDir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(procDir), NumberStyles.None, CultureInfo.InvariantCulture, out int pid) || pid == Environment.ProcessId)
            {
                continue;
            }

            try
            {
                // fdinfo's entries are plain files: listing fd/ (symlinks) lets the enumerator stat their targets, and a target
                // on a FUSE mount whose server is this process (a restart adopting it) would wait for us forever.
                foreach (string entry in Directory.EnumerateFiles(Path.Combine(procDir, "fdinfo")))
                {
                    string fd = Path.Combine(procDir, "fd", Path.GetFileName(entry));
                    if (new FileInfo(fd).LinkTarget != "/dev/fuse") // readlink(2) only
                    {
                        continue;
                    }

                    string info = File.ReadAllText(entry);
                    if (info.Split('\n').Any(line => line == wanted))
                    {
                        return pid;
                    }
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // the process exited while we looked, or its fd table is not ours to read
            }
        }

        return null;
    }

    /// <summary>stat of the path on a separate thread: a dead mount answers ENOTCONN at once, a hung one never.</summary>
    private static unsafe Errno ProbePath(string path)
    {
        Errno result = Errno.ETIMEDOUT;
        var thread = new Thread(() =>
        {
            StatFsBuf buf;
            result = LibC.statfs(path, &buf) == 0 ? Errno.OK : ErrnoExtensions.LastPInvoke();
        }) { IsBackground = true, Name = "stale mount probe" };
        thread.Start();
        return thread.Join(ProbeTimeout) ? result : Errno.ETIMEDOUT;
    }
}

/// <summary>One line of /proc/self/mountinfo, as far as crash recovery needs it.</summary>
internal readonly record struct MountInfoEntry(string MountPoint, uint Minor, string FsType, string Source)
{
    /// <summary>The topmost mount exactly at <paramref name="path"/> (the last one listed), or null.</summary>
    public static MountInfoEntry? TopAt(string path)
    {
        MountInfoEntry? top = null;
        foreach (string line in File.ReadLines("/proc/self/mountinfo"))
        {
            if (Parse(line) is { } entry && entry.MountPoint == path)
            {
                top = entry;
            }
        }

        return top;
    }

    /// <summary>id parent major:minor root mountpoint options [optional fields] - fstype source superoptions</summary>
    internal static MountInfoEntry? Parse(string line)
    {
        string[] fields = line.Split(' ');
        int separator = Array.IndexOf(fields, "-");
        if (fields.Length < 5 || separator < 5 || separator + 2 >= fields.Length)
        {
            return null;
        }

        string[] device = fields[2].Split(':');
        uint minor = device.Length == 2 && uint.TryParse(device[1], NumberStyles.None, CultureInfo.InvariantCulture, out uint m) ? m : 0;
        return new MountInfoEntry(FuseMount.UnescapeMountinfo(fields[4]), minor, fields[separator + 1], FuseMount.UnescapeMountinfo(fields[separator + 2]));
    }
}
