namespace InSpatialFs.Storage.Mounts;

/// <summary>What serves a mount.</summary>
public enum MountKind
{
    Host,
    Direct,
    Memory,
    Overlay,
}

/// <summary>One mount of an instance's namespace.</summary>
/// <param name="Path">Absolute, normalized namespace path ("/", "/usr", "/tmp").</param>
public sealed record MountEntry(string Path, IFileSystemBackend Backend, bool ReadOnly, bool Direct, MountKind Kind)
{
    /// <summary>Position in the table (0 = the first mount added); stable for the table's life.</summary>
    public int Index { get; internal set; }
}

/// <summary>A namespace path resolved to its mount: <see cref="RelativePath"/> is "" for the mount's own root,
/// otherwise components joined by '/' without a leading slash.</summary>
public readonly record struct MountResolution(MountEntry Mount, string RelativePath);

/// <summary>
/// The mounts of one instance, longest prefix wins. Immutable once built (<see cref="Create"/> validates everything),
/// so resolution is lock-free. Paths must be absolute and normalized (no "//", ".", "..", trailing '/'), unique, and
/// the table must contain "/". Rename and link across mounts are refused with EXDEV by the proxy using
/// <see cref="SameMount"/>.
/// </summary>
public sealed class MountTable
{
    private readonly MountEntry[] _byLength; // longest path first

    private MountTable(MountEntry[] entries)
    {
        Entries = entries;
        _byLength = [.. entries.OrderByDescending(e => e.Path.Length)];
        Root = entries.Single(e => e.Path == "/");
    }

    /// <summary>Mounts in the order given.</summary>
    public IReadOnlyList<MountEntry> Entries { get; }

    public MountEntry Root { get; }

    /// <summary>Validates and builds a table; throws <see cref="ArgumentException"/> naming the offending path.</summary>
    public static MountTable Create(IEnumerable<MountEntry> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var list = entries.ToArray();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < list.Length; i++)
        {
            string? problem = ValidatePath(list[i].Path);
            if (problem != null) throw new ArgumentException($"mount path '{list[i].Path}': {problem}", nameof(entries));
            if (!seen.Add(list[i].Path)) throw new ArgumentException($"mount path '{list[i].Path}' is given twice", nameof(entries));
            ArgumentNullException.ThrowIfNull(list[i].Backend);
            list[i].Index = i;
        }
        if (!seen.Contains("/")) throw new ArgumentException("the mount table must contain a mount at '/'", nameof(entries));
        return new MountTable(list);
    }

    /// <summary>Null when <paramref name="path"/> is an absolute normalized namespace path; otherwise why not.</summary>
    public static string? ValidatePath(string? path)
    {
        if (string.IsNullOrEmpty(path)) return "must not be empty";
        if (path[0] != '/') return "must be absolute";
        if (path == "/") return null;
        if (path.EndsWith('/')) return "must not end with '/'";
        if (path.Contains('\0')) return "must not contain NUL";
        foreach (string part in path[1..].Split('/'))
        {
            if (part.Length == 0) return "must not contain '//'";
            if (part is "." or "..") return "must be normalized (no '.' or '..' components)";
            if (part.Length > 255) return "has a component longer than 255 bytes";
        }
        return null;
    }

    /// <summary>The mount that serves <paramref name="namespacePath"/> (absolute, normalized) and the path inside it.</summary>
    public MountResolution Resolve(string namespacePath)
    {
        ArgumentNullException.ThrowIfNull(namespacePath);
        foreach (MountEntry m in _byLength)
        {
            if (IsAtOrBelow(namespacePath, m.Path))
            {
                string rel = m.Path == "/" ? namespacePath.TrimStart('/')
                    : namespacePath.Length == m.Path.Length ? "" : namespacePath[(m.Path.Length + 1)..];
                return new MountResolution(m, rel);
            }
        }
        return new MountResolution(Root, namespacePath.TrimStart('/'));
    }

    /// <summary>The mount whose root is exactly <paramref name="namespacePath"/>, if any.</summary>
    public MountEntry? MountAt(string namespacePath)
    {
        foreach (MountEntry m in Entries)
        {
            if (m.Path == namespacePath) return m;
        }
        return null;
    }

    /// <summary>True when <paramref name="namespacePath"/> is the root of a mount other than "/" (a mount point in
    /// its parent mount: the proxy must not let it be removed or renamed, and looks it up in the child mount).</summary>
    public bool IsMountPoint(string namespacePath) => namespacePath != "/" && MountAt(namespacePath) != null;

    /// <summary>Mounts directly below <paramref name="namespacePath"/> whose mount point is a child name of it (for listing
    /// mount points that do not exist as names in the parent mount).</summary>
    public IEnumerable<MountEntry> ChildMountPoints(string namespacePath)
    {
        foreach (MountEntry m in Entries)
        {
            if (IsChildMountPoint(m, namespacePath)) yield return m;
        }
    }

    /// <summary>Whether any mount point is a child name of <paramref name="namespacePath"/> (no allocation: per READDIR).</summary>
    public bool HasChildMountPoints(string namespacePath)
    {
        foreach (MountEntry m in Entries)
        {
            if (IsChildMountPoint(m, namespacePath)) return true;
        }

        return false;
    }

    private static bool IsChildMountPoint(MountEntry m, string namespacePath)
    {
        if (m.Path == "/" || m.Path == namespacePath) return false;
        int slash = m.Path.LastIndexOf('/');
        ReadOnlySpan<char> parent = slash == 0 ? "/" : m.Path.AsSpan(0, slash);
        return parent.SequenceEqual(namespacePath);
    }

    /// <summary>True when both paths are served by the same mount (rename and link across mounts get EXDEV).</summary>
    public bool SameMount(string pathA, string pathB) => ReferenceEquals(Resolve(pathA).Mount, Resolve(pathB).Mount);

    private static bool IsAtOrBelow(string path, string mountPath)
    {
        if (mountPath == "/") return true;
        return path.StartsWith(mountPath, StringComparison.Ordinal)
            && (path.Length == mountPath.Length || path[mountPath.Length] == '/');
    }
}
