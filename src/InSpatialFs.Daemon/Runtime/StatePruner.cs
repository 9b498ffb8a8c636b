using System.Globalization;
using System.Text;
using InSpatialFs.Interop;
using Microsoft.Win32.SafeHandles;
using YamlDotNet.RepresentationModel;

namespace InSpatialFs.Daemon.Runtime;

/// <summary>What `inspatialfs prune` did, or would do, with one entry of the state root.</summary>
internal enum PruneOutcome
{
    Removed,
    WouldRemove,
    Running,
    Recent,
    NotInstanceState,
    Failed,
}

/// <param name="Name">The entry's name in the state root.</param>
/// <param name="Reason">Why it was removed or kept, for the operator.</param>
/// <param name="Bytes">What its files take (0 when not looked at).</param>
internal sealed record PruneEntry(string Name, PruneOutcome Outcome, string Reason, long Bytes);

/// <summary>
/// Removes the state directories of instances that no longer run (`inspatialfs prune`). Every instance keeps one
/// (journal, incidents, marks, its log) after it stops, so that a restart of the same name finds its record; an engine
/// that starts a mount program per container would otherwise keep one per container ever run. A directory goes when no
/// instance holds it and either its overlay layer was removed by the engine (the container or image is gone: nothing
/// can start on it again) or nothing in it changed for the retention time.
/// <para>
/// As THREAT-MODEL.md asks of the daemon's own files: the root is walked with <see cref="TrustedPath"/>; every entry is
/// reached relative to a descriptor with O_NOFOLLOW and deleted by unlinkat, so a symlink planted anywhere is removed as
/// a link and never followed; entries not owned by root (or this user), writable by others, or without an
/// <c>instance.lock</c> are not the daemon's to judge and stay. The instance lock is taken (flock, without waiting) and
/// held until the directory is gone: a running instance holds it, and one that starts meanwhile waits for it, then sees
/// its lock file unlinked and starts on a new directory (<see cref="StateDirLock"/>). An instance between two servers (a live
/// restart) has let go of the lock for a moment; its keeper named in <c>instance.pid</c> is still alive, which counts as
/// running too.
/// </para>
/// </summary>
internal static unsafe class StatePruner
{
    /// <summary>The instance config the overlay mount program writes into each state directory; prune reads its mountpoint.</summary>
    public const string OverlayConfigName = "overlay-instance.yaml";

    /// <summary>Deeper than any state directory the daemon writes (it writes flat ones); a deeper tree is not ours.</summary>
    private const int MaxDepth = 8;

    public static List<PruneEntry> Prune(string stateRoot, TimeSpan olderThan, bool dryRun, DateTimeOffset now)
    {
        var results = new List<PruneEntry>();
        using SafeFd root = TrustedPath.OpenDirectory(stateRoot, create: false);
        foreach (string name in DirectoryNames.Read(root.Fd).Select(n => Encoding.UTF8.GetString(n)).Order(StringComparer.Ordinal))
        {
            results.Add(Consider(root, stateRoot, name, olderThan, dryRun, now));
        }

        return results;
    }

    private static PruneEntry Consider(SafeFd root, string stateRoot, string name, TimeSpan olderThan, bool dryRun, DateTimeOffset now)
    {
        string path = Path.Combine(stateRoot, name);
        int fd = OpenAt(root.Fd, name, LibC.O_RDONLY | LibC.O_DIRECTORY | LibC.O_NOFOLLOW, out Errno error);
        if (fd < 0)
        {
            return error is Errno.ELOOP or Errno.ENOTDIR
                ? new PruneEntry(name, PruneOutcome.NotInstanceState, "not a directory", 0)
                : new PruneEntry(name, PruneOutcome.Failed, $"cannot open {path}: {error}", 0);
        }

        using var dir = new SafeFd(fd);
        StatX st = Stat(dir.Fd);
        if (!TrustedPath.IsTrustedOwner(st.Uid) || (st.Mode & 0x12) != 0)
        {
            return new PruneEntry(name, PruneOutcome.NotInstanceState, $"owned by uid {st.Uid} with mode {Convert.ToString(st.Mode & 0xFFF, 8)}: not the daemon's", 0);
        }

        if (StatAt(dir.Fd, StateDirLock.LockFileName) == Errno.ENOENT)
        {
            return new PruneEntry(name, PruneOutcome.NotInstanceState, $"no {StateDirLock.LockFileName}", 0);
        }

        SafeFileHandle? held = null;
        try
        {
            // As the daemon opens it: no symlink, a regular file with one link, root's, not writable by others. Held
            // until the decision is carried out, the removal included: see the class remarks.
            held = TrustedPath.OpenFile(dir, path, StateDirLock.LockFileName, LibC.O_RDWR);
            return Decide(root, dir, held, stateRoot, name, olderThan, dryRun, now, st);
        }
        catch (UnsafePathException e) when (held is null)
        {
            return new PruneEntry(name, PruneOutcome.NotInstanceState, e.Message, 0);
        }
        finally
        {
            held?.Dispose();
        }
    }

    private static PruneEntry Decide(SafeFd root, SafeFd dir, SafeFileHandle held, string stateRoot, string name, TimeSpan olderThan, bool dryRun, DateTimeOffset now, StatX st)
    {
        string path = Path.Combine(stateRoot, name);
        int? holder = StateDirLock.ReadHolder(dir, path);
        if (LibC.flock((int)held.DangerousGetHandle(), LibC.LOCK_EX | LibC.LOCK_NB) != 0)
        {
            return new PruneEntry(name, PruneOutcome.Running, "locked by a running instance" + (holder is int p ? $" (pid {p})" : ""), 0);
        }

        if (holder is int pid && IsLiveInstanceProcess(pid))
        {
            return new PruneEntry(name, PruneOutcome.Running, $"its instance process {pid} is alive (between two servers)", 0);
        }

        (long bytes, long newest) = Measure(dir.Fd, 0);
        string? why = OrphanedLayer(dir, path) is string layer ? $"its overlay layer {layer} is gone" : null;
        TimeSpan unchanged = now - DateTimeOffset.FromUnixTimeSeconds(Math.Max(newest, st.Mtime.Sec));
        if (why is null && unchanged >= olderThan)
        {
            why = $"unchanged for {Age(unchanged)}";
        }

        if (why is null)
        {
            return new PruneEntry(name, PruneOutcome.Recent, $"stopped, changed {Age(unchanged)} ago", bytes);
        }

        if (dryRun)
        {
            return new PruneEntry(name, PruneOutcome.WouldRemove, why, bytes);
        }

        if (RemoveContents(dir.Fd, path, 0) is string failure)
        {
            return new PruneEntry(name, PruneOutcome.Failed, failure, bytes);
        }

        fixed (byte* n = NulTerminated(name))
        {
            if (LibC.unlinkat(root.Fd, n, LibC.AT_REMOVEDIR) != 0)
            {
                return new PruneEntry(name, PruneOutcome.Failed, $"cannot remove {path}: {ErrnoExtensions.LastPInvoke()}", bytes);
            }
        }

        return new PruneEntry(name, PruneOutcome.Removed, why, bytes);
    }

    /// <summary>
    /// The layer directory an overlay instance served (the mountpoint's parent, containers/storage's
    /// <c>overlay/ID</c>) when it is gone while the storage directory above it is still there: the engine removed the
    /// container or image. A storage directory that is missing too (an unmounted disk) proves nothing.
    /// </summary>
    private static string? OrphanedLayer(SafeFd dir, string path)
    {
        string? text = ReadSmallFile(dir, path, OverlayConfigName, 256 * 1024);
        if (text is null)
        {
            return null;
        }

        string? mountpoint;
        try
        {
            var yaml = new YamlStream();
            yaml.Load(new StringReader(text));
            mountpoint = yaml.Documents.Count > 0 && yaml.Documents[0].RootNode is YamlMappingNode map &&
                map.Children.TryGetValue(new YamlScalarNode("mountpoint"), out YamlNode? node) && node is YamlScalarNode scalar ? scalar.Value : null;
        }
        catch (YamlDotNet.Core.YamlException)
        {
            return null;
        }

        if (mountpoint is null || !Path.IsPathFullyQualified(mountpoint) || Path.GetDirectoryName(mountpoint.TrimEnd('/')) is not string layer ||
            Path.GetDirectoryName(layer) is not string storage)
        {
            return null;
        }

        return StatPath(layer) == Errno.ENOENT && StatPath(storage) == Errno.OK ? layer : null;
    }

    /// <summary>True when the process is alive (not a zombie) and is one of ours (its name starts with "inspatialfs").</summary>
    private static bool IsLiveInstanceProcess(int pid)
    {
        try
        {
            // "PID (comm) STATE ...": a zombie (Z) or dead (X) process serves nothing, whoever has yet to reap it.
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            int open = stat.IndexOf('(', StringComparison.Ordinal), close = stat.LastIndexOf(')');
            bool ours = open >= 0 && close > open && stat.AsSpan(open + 1, close - open - 1).StartsWith("inspatialfs", StringComparison.Ordinal);
            return ours && close + 2 < stat.Length && stat[close + 2] is not ('Z' or 'X');
        }
        catch (IOException)
        {
            return false; // no such process
        }
    }

    /// <summary>Bytes allocated below the directory and the newest modification time (Unix seconds) of anything in it.</summary>
    private static (long Bytes, long Newest) Measure(int dirFd, int depth)
    {
        long bytes = 0, newest = 0;
        foreach (byte[] raw in DirectoryNames.Read(dirFd))
        {
            fixed (byte* n = NulTerminated(raw))
            {
                StatX st;
                if (LibC.statx(dirFd, n, LibC.AT_SYMLINK_NOFOLLOW, LibC.STATX_BASIC_STATS, &st) != 0)
                {
                    continue;
                }

                bytes += (long)st.Blocks * 512;
                newest = Math.Max(newest, st.Mtime.Sec);
                if ((st.Mode & LibC.S_IFMT) == LibC.S_IFDIR && depth < MaxDepth)
                {
                    int sub = LibC.openat(dirFd, n, LibC.O_RDONLY | LibC.O_DIRECTORY | LibC.O_NOFOLLOW | LibC.O_CLOEXEC, 0);
                    if (sub >= 0)
                    {
                        using var child = new SafeFd(sub);
                        (long b, long t) = Measure(child.Fd, depth + 1);
                        bytes += b;
                        newest = Math.Max(newest, t);
                    }
                }
            }
        }

        return (bytes, newest);
    }

    /// <summary>Deletes everything below the directory, depth first, without following links; null, or why it stopped.</summary>
    private static string? RemoveContents(int dirFd, string path, int depth)
    {
        foreach (byte[] raw in DirectoryNames.Read(dirFd))
        {
            string full = Path.Combine(path, Encoding.UTF8.GetString(raw));
            fixed (byte* n = NulTerminated(raw))
            {
                if (LibC.unlinkat(dirFd, n, 0) == 0)
                {
                    continue;
                }

                Errno e = ErrnoExtensions.LastPInvoke();
                if (e != Errno.EISDIR)
                {
                    return $"cannot remove {full}: {e}";
                }

                if (depth >= MaxDepth)
                {
                    return $"cannot remove {full}: deeper than {MaxDepth} levels (not a tree the daemon writes; left for a look)";
                }

                int sub = LibC.openat(dirFd, n, LibC.O_RDONLY | LibC.O_DIRECTORY | LibC.O_NOFOLLOW | LibC.O_CLOEXEC, 0);
                if (sub < 0)
                {
                    return $"cannot open {full}: {ErrnoExtensions.LastPInvoke()}";
                }

                using (var child = new SafeFd(sub))
                {
                    if (RemoveContents(child.Fd, full, depth + 1) is string failure)
                    {
                        return failure;
                    }
                }

                if (LibC.unlinkat(dirFd, n, LibC.AT_REMOVEDIR) != 0)
                {
                    return $"cannot remove {full}: {ErrnoExtensions.LastPInvoke()}";
                }
            }
        }

        return null;
    }

    /// <summary>A small state file's text, opened as the daemon opens its own (<see cref="TrustedPath.OpenFile"/>) and bounded; null when absent or refused.</summary>
    private static string? ReadSmallFile(SafeFd dir, string path, string name, int max)
    {
        try
        {
            using SafeFileHandle file = TrustedPath.OpenFile(dir, path, name, LibC.O_RDONLY);
            byte[] buffer = new byte[max];
            int total = 0, n;
            while (total < max && (n = RandomAccess.Read(file, buffer.AsSpan(total), total)) > 0)
            {
                total += n;
            }

            return Encoding.UTF8.GetString(buffer, 0, total);
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static string Age(TimeSpan t) =>
        t.TotalDays >= 1 ? $"{(int)t.TotalDays}d" : t.TotalHours >= 1 ? $"{(int)t.TotalHours}h" : t.TotalMinutes >= 1 ? $"{(int)t.TotalMinutes}m" : $"{Math.Max(0, (int)t.TotalSeconds)}s";

    private static Errno StatPath(string path) => StatAt(LibC.AT_FDCWD, path);

    /// <summary>Whether <paramref name="name"/> exists (relative to <paramref name="dirFd"/>), without following a final symlink.</summary>
    private static Errno StatAt(int dirFd, string name)
    {
        StatX st;
        fixed (byte* p = NulTerminated(name))
        {
            return LibC.statx(dirFd, p, LibC.AT_SYMLINK_NOFOLLOW, LibC.STATX_BASIC_STATS, &st) == 0 ? Errno.OK : ErrnoExtensions.LastPInvoke();
        }
    }

    private static StatX Stat(int fd)
    {
        StatX st;
        byte empty = 0;
        if (LibC.statx(fd, &empty, LibC.AT_EMPTY_PATH | LibC.AT_SYMLINK_NOFOLLOW, LibC.STATX_BASIC_STATS, &st) != 0)
        {
            throw new IOException($"cannot stat descriptor {fd}: {ErrnoExtensions.LastPInvoke()}");
        }

        return st;
    }

    private static int OpenAt(int dirFd, string name, int flags, out Errno error)
    {
        fixed (byte* n = NulTerminated(name))
        {
            int fd = LibC.openat(dirFd, n, flags | LibC.O_CLOEXEC, 0);
            error = fd < 0 ? ErrnoExtensions.LastPInvoke() : Errno.OK;
            return fd;
        }
    }

    private static byte[] NulTerminated(string s) => NulTerminated(Encoding.UTF8.GetBytes(s));

    private static byte[] NulTerminated(byte[] raw)
    {
        byte[] z = new byte[raw.Length + 1];
        raw.CopyTo(z, 0);
        return z;
    }
}
