namespace InSpatialFs.TestKit.Processes;

/// <summary>What /proc/self/mountinfo says about FUSE mounts, and how to get rid of a stuck one.</summary>
public static class Mounts
{
    /// <summary>The filesystem type of the mount exactly at <paramref name="path"/>, or null.</summary>
    public static string? TypeAt(string path)
    {
        string full = Path.GetFullPath(path).TrimEnd('/');
        if (full.Length == 0)
        {
            full = "/";
        }

        string? type = null;
        foreach (string line in File.ReadLines("/proc/self/mountinfo"))
        {
            // id parent major:minor root mountpoint options [optional...] - fstype source superopts
            string[] parts = line.Split(' ');
            if (parts.Length < 10 || Unescape(parts[4]) != full)
            {
                continue;
            }

            int dash = Array.IndexOf(parts, "-");
            type = dash > 0 && dash + 1 < parts.Length ? parts[dash + 1] : null; // the last one stacked wins
        }

        return type;
    }

    public static bool IsFuse(string path) => TypeAt(path)?.StartsWith("fuse", StringComparison.Ordinal) == true;

    /// <summary>The device minor of a FUSE mount = its connection number under /sys/fs/fuse/connections.</summary>
    public static int? ConnectionOf(string path)
    {
        string full = Path.GetFullPath(path).TrimEnd('/');
        foreach (string line in File.ReadLines("/proc/self/mountinfo"))
        {
            string[] parts = line.Split(' ');
            if (parts.Length > 4 && Unescape(parts[4]) == full && line.Contains(" - fuse", StringComparison.Ordinal))
            {
                string[] dev = parts[2].Split(':');
                return int.Parse(dev[1], System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        return null;
    }

    /// <summary>Aborts the connection (processes stuck on it return) and lazily unmounts. Never throws.</summary>
    public static void ForceUnmount(string path)
    {
        try
        {
            int? connection = ConnectionOf(path);
            if (connection != null)
            {
                Shell.Run("mountpoint -q /sys/fs/fuse/connections || mount -t fusectl none /sys/fs/fuse/connections");
                string abort = $"/sys/fs/fuse/connections/{connection}/abort";
                if (File.Exists(abort))
                {
                    File.WriteAllText(abort, "1");
                }
            }

            Shell.Run($"umount -l '{path}' 2>/dev/null");
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private static string Unescape(string s) => s.Replace("\\040", " ", StringComparison.Ordinal).Replace("\\011", "\t", StringComparison.Ordinal)
        .Replace("\\012", "\n", StringComparison.Ordinal).Replace("\\134", "\\", StringComparison.Ordinal);
}
