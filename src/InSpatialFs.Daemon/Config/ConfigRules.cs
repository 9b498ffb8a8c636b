using InSpatialFs.Interop;

namespace InSpatialFs.Daemon.Config;

/// <summary>Command-line values that override a config file's (`mount --config F --name N MOUNTPOINT ...`).</summary>
public sealed record ConfigOverrides
{
    public string? Name { get; init; }
    public string? Mountpoint { get; init; }
    public string? Control { get; init; }
    public string? StateDir { get; init; }
    public string? Isolation { get; init; }

    public static readonly ConfigOverrides None = new();
}

/// <summary>Which setting a layout rule refused (so each source of settings can name it: a YAML node or a flag).</summary>
public enum LayoutField
{
    Mountpoint,
    Control,
    StateDir,
    Source,
}

/// <summary>A refused combination of paths: the setting to blame (and, for a source, which mount) and why.</summary>
public readonly record struct LayoutConflict(LayoutField Field, int MountIndex, string Reason);

/// <summary>
/// The checks every source of settings goes through, so a config file, the quick-form flags and flags that override a
/// file accept exactly the same values: the instance-name rule and the layout rules between the mountpoint, the mounts'
/// sources, the control directory and the state directory. Paths are compared as written and as the kernel resolves
/// them (realpath of the part that exists), so a symlinked spelling of a source does not slip past.
/// </summary>
public static class ConfigRules
{
    public const string NameRule = "1-64 characters of letters, digits, '-', '_' or '.', and not '.' or '..'";

    /// <summary>Why <paramref name="name"/> is not an instance name (one path component), or null.</summary>
    public static string? NameProblem(string name) =>
        name.Length is 0 or > 64 || name is "." or ".." || !name.All(ch => char.IsAsciiLetterOrDigit(ch) || ch is '-' or '_' or '.')
            ? $"name '{name}' must be {NameRule}"
            : null;

    public static LayoutConflict? FindConflict(string mountpoint, string control, string stateDir, IReadOnlyList<MountConfig> mounts)
    {
        for (int i = 0; i < mounts.Count; i++)
        foreach (string source in mounts[i].HostDirectories)
        {

            if (Inside(mountpoint, source))
            {
                return new(LayoutField.Source, i, $"source {source} contains the mountpoint {mountpoint}: the mount would contain itself");
            }

            if (Inside(source, mountpoint))
            {
                return new(LayoutField.Source, i, $"source {source} lies inside the mountpoint {mountpoint}, which the mount would hide");
            }

            if (Inside(stateDir, source))
            {
                return new(LayoutField.StateDir, i, $"the state directory {stateDir} must not lie inside the source {source} of mount {mounts[i].Path}: the container could rewrite its own incident record");
            }

            if (Inside(control, source))
            {
                return new(LayoutField.Control, i, $"the control directory {control} must not lie inside the source {source} of mount {mounts[i].Path}");
            }
        }

        if (Inside(control, mountpoint))
        {
            return new(LayoutField.Control, -1, $"the control directory {control} must not lie inside the mountpoint {mountpoint}");
        }

        if (Inside(mountpoint, control))
        {
            return new(LayoutField.Control, -1, $"the mountpoint {mountpoint} must not lie inside the control directory {control}, which hides it");
        }

        if (Inside(stateDir, mountpoint))
        {
            return new(LayoutField.StateDir, -1, $"the state directory {stateDir} must not lie under the mountpoint {mountpoint}");
        }

        if (Inside(stateDir, control) || Inside(control, stateDir))
        {
            return new(LayoutField.StateDir, -1, $"the state directory {stateDir} and the control directory {control} must not contain one another");
        }

        return null;
    }

    /// <summary><paramref name="path"/> is <paramref name="dir"/> or below it, as written or as resolved.</summary>
    internal static bool Inside(string path, string dir) =>
        ConfigLoader.IsAtOrBelow(path, dir) || ConfigLoader.IsAtOrBelow(Resolve(path), Resolve(dir));

    /// <summary>
    /// Container mounts that may be waiting for this very process (a restarted server adopting its live connection, before
    /// it serves): nothing at or below them is looked at while resolving (a stat there would wait for this process); such
    /// a path is taken as written below the mount's parent.
    /// </summary>
    internal static IReadOnlyList<string> LiveMountpoints { get; set; } = [];

    /// <summary>realpath of the longest existing prefix, with the rest appended as written.</summary>
    internal static string Resolve(string path)
    {
        string existing = path;
        string rest = "";
        foreach (string live in LiveMountpoints)
        {
            if (ConfigLoader.IsAtOrBelow(path, live) && live.LastIndexOf('/') is int cut and > 0)
            {
                existing = live[..cut];
                rest = path[cut..];
                break;
            }
        }
        while (true)
        {
            if (LibC.RealPath(existing) is string real)
            {
                return rest.Length == 0 ? real : real.TrimEnd('/') + rest;
            }

            int slash = existing.LastIndexOf('/');
            if (slash <= 0)
            {
                return path;
            }

            rest = existing[slash..] + rest;
            existing = existing[..slash];
        }
    }
}
