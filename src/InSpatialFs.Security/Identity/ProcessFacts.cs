using System.Globalization;
using System.Text;
using InSpatialFs.Interop;

namespace InSpatialFs.Security.Identity;

/// <summary>A namespace as the kernel names it: the nsfs device and inode of /proc/PID/ns/KIND.</summary>
public readonly record struct NamespaceId(ulong Device, ulong Inode)
{
    public bool IsKnown => Inode != 0;

    public override string ToString() => IsKnown ? Inode.ToString(CultureInfo.InvariantCulture) : "unknown";
}

/// <summary>What /proc says about a process when it is pinned; membership is decided from these.</summary>
internal sealed record ProcessFacts(
    int Pid,
    int Tgid,
    ulong StartTime,
    ulong ProcessStartTime,
    int ParentPid,
    CgroupPaths Cgroups,
    string? Root,
    bool RootOnMount,
    NamespaceId PidNamespace,
    NamespaceId UserNamespace);

/// <summary>
/// Reading processes through /proc without trusting anything a process controls: fields are parsed after the
/// last ')' of stat (comm may hold any bytes), namespaces and the root are compared by device and inode, and
/// nothing here reaches the FUSE mount (statx with AT_STATX_DONT_SYNC).
/// </summary>
internal static unsafe class ProcFs
{
    /// <summary>NS_GET_PARENT, _IO(0xb7, 0x2): the parent of a pid (or user) namespace; EPERM past the caller's own.</summary>
    private const ulong NsGetParent = 0xb702;

    /// <summary>Nesting of pid namespaces is limited to 32 levels by the kernel.</summary>
    private const int MaxNamespaceDepth = 33;

    /// <summary>Field 22 of /proc/PID/stat; the comm field may hold spaces and parentheses, so count after the last ')'.</summary>
    public static ulong ParseStartTime(string stat) => ulong.Parse(StatField(stat, 22), CultureInfo.InvariantCulture);

    /// <summary>Field 4 of /proc/PID/stat (the parent pid).</summary>
    public static int ParseParentPid(string stat) => int.Parse(StatField(stat, 4), CultureInfo.InvariantCulture);

    private static string StatField(string stat, int field)
    {
        int close = stat.LastIndexOf(')');
        if (close < 0) throw new FormatException("stat: no ')'");
        string[] fields = stat[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        // fields[0] is field 3 (state).
        if (fields.Length <= field - 3) throw new FormatException("stat: too few fields");
        return fields[field - 3];
    }

    /// <summary>(parent pid, start time) of a live pid, or null when it is gone or unreadable.</summary>
    public static (int ParentPid, ulong StartTime)? ReadParentAndStart(string procRoot, int pid)
    {
        try
        {
            string stat = File.ReadAllText(Path.Combine(procRoot, pid.ToString(CultureInfo.InvariantCulture), "stat"));
            return (ParseParentPid(stat), ParseStartTime(stat));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
        {
            return null;
        }
    }

    public static int? ReadTgid(string procDir)
    {
        try
        {
            foreach (string line in File.ReadLines(Path.Combine(procDir, "status")))
            {
                if (line.StartsWith("Tgid:", StringComparison.Ordinal)
                    && int.TryParse(line.AsSpan(5).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int t))
                {
                    return t;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }

        return null;
    }

    public static string? TryReadLink(string path)
    {
        try
        {
            return new FileInfo(path).LinkTarget;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The namespace /proc/PID/ns/<paramref name="kind"/> refers to (unknown when unreadable).</summary>
    public static NamespaceId ReadNamespace(string procDir, string kind) =>
        Stat(Path.Combine(procDir, "ns", kind), out StatX st) ? new NamespaceId(Device(st), st.Ino) : default;

    /// <summary>(device) of what a /proc magic link such as /proc/PID/root resolves to, without a FUSE round trip.</summary>
    public static bool TryDevice(string path, out ulong device)
    {
        device = 0;
        if (!Stat(path, out StatX st)) return false;
        device = Device(st);
        return true;
    }

    /// <summary>
    /// True when the pid namespace of <paramref name="procDir"/> is <paramref name="ancestor"/> or nested below it,
    /// walking up with NS_GET_PARENT (bounded by the kernel's nesting limit).
    /// </summary>
    public static bool PidNamespaceDescendsFrom(string procDir, NamespaceId ancestor)
    {
        int fd = LibC.open(Path.Combine(procDir, "ns", "pid"), LibC.O_RDONLY | LibC.O_CLOEXEC, 0);
        if (fd < 0) return false;
        try
        {
            for (int depth = 0; depth < MaxNamespaceDepth; depth++)
            {
                if (FStat(fd) is not NamespaceId id) return false;
                if (id == ancestor) return true;
                int parent = LibC.ioctl(fd, NsGetParent, null);
                if (parent < 0) return false; // the initial namespace (or one outside ours): no further ancestor
                LibC.close(fd);
                fd = parent;
            }

            return false;
        }
        finally
        {
            LibC.close(fd);
        }
    }

    private static NamespaceId? FStat(int fd)
    {
        StatX st;
        byte empty = 0;
        return LibC.statx(fd, &empty, LibC.AT_EMPTY_PATH, LibC.STATX_INO, &st) == 0 ? new NamespaceId(Device(st), st.Ino) : null;
    }

    private static bool Stat(string path, out StatX st)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(path + "\0");
        StatX buf;
        int r;
        fixed (byte* p = bytes)
        {
            // DONT_SYNC: /proc/PID/root may be this very FUSE mount, and a GETATTR sent from a reader thread could wait on itself.
            r = LibC.statx(LibC.AT_FDCWD, p, LibC.AT_STATX_DONT_SYNC, LibC.STATX_INO, &buf);
        }

        st = buf;
        return r == 0;
    }

    private static ulong Device(in StatX st) => ((ulong)st.DevMajor << 32) | st.DevMinor;
}
