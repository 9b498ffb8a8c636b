using InSpatialFs.Daemon.Config;
using InSpatialFs.Interop;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.Daemon.Runtime;

/// <summary>
/// The directories an instance owns or mounts on: its state directory, its control directory and its mountpoint, each
/// walked and created through <see cref="TrustedPath"/> (0700, no symlinks, root-owned, not writable by others). The two
/// base directories (/var/lib/inspatialfs, /run/inspatialfs) that earlier versions left 0777 are tightened and logged
/// instead of refused, so an upgraded host starts; anything else that is unsafe refuses the start (exit 1, nothing
/// mounted) with the path and the reason.
/// </summary>
internal static class OwnPaths
{
    /// <summary>
    /// Opens (creating) the state directory. Below a default base, what an earlier version left writable by others
    /// (the instance directory 0777, its files 0666) is tightened and logged, like the bases: only root could have
    /// created those root-owned entries, but anyone could have written to them since, so the log says so.
    /// </summary>
    public static SafeFd OpenStateDirectory(string path, ILogger log)
    {
        SafeFd dir = Open(path, log);
        if (IsBelowBase(path))
        {
            TrustedPath.TightenLeftoverFiles(dir, path, (file, from, to) => Log.BaseDirectoryTightened(log, file, Octal(from), Octal(to)));
        }

        return dir;
    }

    public static void PrepareControlDirectory(string path, ILogger log) => Open(path, log).Dispose();

    public static void PrepareMountpoint(string path, ILogger log) => Open(path, log).Dispose();

    /// <summary>
    /// At a clean stop, after the control mount is detached: removes the control directory when it is one of the daemon's
    /// own (directly below /run/inspatialfs) and empty. Without this every container ever started leaves an empty
    /// directory there until reboot. A directory elsewhere is the operator's and stays. Handover and crashes never come
    /// here, so a successor finds its mountpoint in place; the caller still holds the state-directory lock, so an instance
    /// of the same name cannot have prepared the directory anew. rmdir never follows a symlink, and the parent is walked
    /// with the same checks as at start.
    /// </summary>
    public static unsafe void RemoveControlDirectory(string path, ILogger log)
    {
        string? parent = System.IO.Path.GetDirectoryName(path);
        if (parent != InstanceConfig.ControlRoot)
        {
            return;
        }

        try
        {
            using SafeFd dir = TrustedPath.OpenDirectory(parent, create: false);
            byte[] name = System.Text.Encoding.UTF8.GetBytes(System.IO.Path.GetFileName(path) + "\0");
            fixed (byte* n = name)
            {
                if (LibC.unlinkat(dir.Fd, n, LibC.AT_REMOVEDIR) != 0)
                {
                    Log.ControlDirectoryKept(log, path, ErrnoExtensions.LastPInvoke().ToString());
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.ControlDirectoryKept(log, path, e.Message);
        }
    }

    /// <summary>True for the base directories that earlier versions created world-writable.</summary>
    public static bool IsBaseDirectory(string path) => path is InstanceConfig.StateRoot or InstanceConfig.ControlRoot;

    /// <summary>A base directory or anything below one: the daemon's default tree, which earlier versions left open.</summary>
    public static bool IsBelowBase(string path) =>
        Config.ConfigLoader.IsAtOrBelow(path, InstanceConfig.StateRoot) || Config.ConfigLoader.IsAtOrBelow(path, InstanceConfig.ControlRoot);

    /// <summary>A base keeps its read and search bits for others (systemd creates it 0755); an instance directory gets 0700.</summary>
    private static uint? TightenTo(string path, uint mode) =>
        IsBaseDirectory(path) ? mode & ~0x12u : IsBelowBase(path) ? mode & ~0x3Fu : null;

    private static SafeFd Open(string path, ILogger log) =>
        TrustedPath.OpenDirectory(path, create: true, TightenTo, (dir, from, to) => Log.BaseDirectoryTightened(log, dir, Octal(from), Octal(to)));

    private static string Octal(uint mode) => "0" + Convert.ToString(mode, 8);
}
