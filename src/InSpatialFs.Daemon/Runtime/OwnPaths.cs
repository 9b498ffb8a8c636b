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
    public static SafeFd OpenStateDirectory(string path, ILogger log) => Open(path, log);

    public static void PrepareControlDirectory(string path, ILogger log) => Open(path, log).Dispose();

    public static void PrepareMountpoint(string path, ILogger log) => Open(path, log).Dispose();

    /// <summary>True for the base directories that earlier versions created world-writable.</summary>
    public static bool IsBaseDirectory(string path) => path is InstanceConfig.StateRoot or InstanceConfig.ControlRoot;

    private static SafeFd Open(string path, ILogger log) =>
        TrustedPath.OpenDirectory(path, create: true, IsBaseDirectory, (dir, from, to) => Log.BaseDirectoryTightened(log, dir, Octal(from), Octal(to)));

    private static string Octal(uint mode) => "0" + Convert.ToString(mode, 8);
}
