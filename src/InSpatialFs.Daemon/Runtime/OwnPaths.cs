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
