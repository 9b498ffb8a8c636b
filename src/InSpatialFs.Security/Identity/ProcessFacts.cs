using System.Buffers;
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
    public static ulong ParseStartTime(string stat) => ulong.Parse(StatField(stat, 22), NumberStyles.None, CultureInfo.InvariantCulture);

    /// <summary>Field 4 of /proc/PID/stat (the parent pid).</summary>
    public static int ParseParentPid(string stat) => int.Parse(StatField(stat, 4), NumberStyles.None, CultureInfo.InvariantCulture);

    /// <summary>Field 2 of /proc/PID/stat: comm, between the first '(' and the last ')' (it may hold both).</summary>
    public static string ParseComm(string stat)
    {
        int open = stat.IndexOf('('), close = stat.LastIndexOf(')');
        if (open < 0 || close < open) throw new FormatException("stat: no (comm)");
        return stat[(open + 1)..close];
    }

    /// <summary>Field <paramref name="field"/> (1-based, 3 or later) of a stat line, counted after comm's last ')' without allocating.</summary>
    public static ReadOnlySpan<char> StatField(string stat, int field)
    {
        int close = stat.LastIndexOf(')');
        if (close < 0) throw new FormatException("stat: no ')'");
        int n = 2; // comm is field 2
        foreach (Range r in stat.AsSpan(close + 1).Split(' '))
        {
            ReadOnlySpan<char> f = stat.AsSpan(close + 1)[r];
            if (f.IsEmpty) continue;
            if (++n == field) return f.TrimEnd('\n');
        }

        throw new FormatException("stat: too few fields");
    }

    /// <summary>(parent pid, start time) of a live pid, or null when it is gone or unreadable.</summary>
    public static (int ParentPid, ulong StartTime)? ReadParentAndStart(string procRoot, int pid, StatReads? reads = null)
    {
        try
        {
            return (reads is null ? ReadStat(procRoot, pid) : reads.Read(pid)) is { } stat
                ? (ParseParentPid(stat), ParseStartTime(stat))
                : null;
        }
        catch (FormatException)
        {
            return null;
        }
    }

    /// <summary>/proc/PID/stat as text, or null when the process is gone.</summary>
    public static string? ReadStat(string procRoot, int pid) =>
        ReadText(Path.Combine(procRoot, pid.ToString(CultureInfo.InvariantCulture), "stat"), StatMax);

    /// <summary>The Tgid: line of /proc/PID/status (a FUSE request names the calling thread), or null when unreadable.</summary>
    public static int? ReadTgid(string procDir)
    {
        string? status = ReadText(Path.Combine(procDir, "status"), StatusMax);
        int at = status is null ? -1 : status.IndexOf("\nTgid:", StringComparison.Ordinal);
        if (at < 0) return null;
        ReadOnlySpan<char> rest = status.AsSpan(at + 6);
        int end = rest.IndexOf('\n');
        return int.TryParse((end < 0 ? rest : rest[..end]).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int t) ? t : null;
    }

    /// <summary>Room for /proc/PID/stat (52 numbers and a comm of at most 64 bytes).</summary>
    public const int StatMax = 1024;

    /// <summary>Room for /proc/PID/status (about 1.5 KiB today).</summary>
    public const int StatusMax = 8192;

    /// <summary>
    /// Reads a small /proc file whole, as text (null when it cannot be read: the process is gone). See <see cref="ReadBytes"/>.
    /// </summary>
    public static string? ReadText(string path, int max)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(max);
        try
        {
            int n = ReadBytes(path, buffer.AsSpan(0, max));
            return n < 0 ? null : Encoding.UTF8.GetString(buffer, 0, n);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Reads a /proc file into <paramref name="buffer"/> (at most its length) with open, one read and close; -1 when it
    /// cannot be opened or read. Every new caller has a dozen of these files read, so not through File.ReadAllText or
    /// File.OpenHandle: .NET adds an fstat and a flock/unlock pair to each open (its FileShare emulation) and reads until
    /// a read returns 0, 7 syscalls where 3 do. One read is enough: procfs renders these files whole and hands a read
    /// all that fits (the text is cut at the buffer's length otherwise).
    /// </summary>
    public static int ReadBytes(string path, Span<byte> buffer)
    {
        int fd = LibC.open(path, LibC.O_RDONLY | LibC.O_CLOEXEC, 0);
        if (fd < 0) return -1;
        try
        {
            fixed (byte* p = buffer)
            {
                nint n = LibC.read(fd, p, buffer.Length);
                return n < 0 ? -1 : (int)n;
            }
        }
        finally
        {
            LibC.close(fd);
        }
    }

    /// <summary>
    /// The target of a /proc symlink (exe, cwd, root) with one readlink(2); null when it cannot be read (the process is
    /// gone). Not through FileInfo.LinkTarget: that normalises the path and allocates on the way, for each of the three
    /// links every new caller has read.
    /// </summary>
    public static string? TryReadLink(string path)
    {
        const int Room = 4096; // PATH_MAX: procfs renders no longer target
        int length = Encoding.UTF8.GetByteCount(path);
        Span<byte> pathZ = length < 512 ? stackalloc byte[length + 1] : new byte[length + 1];
        Encoding.UTF8.GetBytes(path, pathZ);
        pathZ[length] = 0;
        byte* target = stackalloc byte[Room];
        nint n;
        fixed (byte* p = pathZ)
        {
            n = LibC.readlinkat(LibC.AT_FDCWD, p, target, Room);
        }

        if (n < 0) return null;
        if (n == Room) return LongLinkTarget(path); // possibly cut: the runtime's way, which grows its buffer
        return Encoding.UTF8.GetString(target, (int)n);
    }

    private static string? LongLinkTarget(string path)
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

/// <summary>
/// The /proc/PID/stat texts one pin has read, so that its steps (identity, the ancestry proof, the process context and
/// its parent) read each process's stat once: a new caller's own stat and its parent's were read twice before. A pin
/// lasts microseconds and every step wants the same instant's facts; nothing outlives the pin.
/// </summary>
internal sealed class StatReads(string procRoot)
{
    private const int Kept = 8;
    private readonly int[] _pids = new int[Kept];
    private readonly string?[] _stats = new string?[Kept];
    private int _count;

    /// <summary>Reads made (misses), for tests.</summary>
    public int Reads { get; private set; }

    /// <summary>The stat text of <paramref name="pid"/> as first read during this pin (null when it was gone).</summary>
    public string? Read(int pid)
    {
        for (int i = 0; i < _count; i++)
        {
            if (_pids[i] == pid) return _stats[i];
        }

        string? stat = ProcFs.ReadStat(procRoot, pid);
        Reads++;
        if (_count < Kept) // past that (a deep ancestry walk), reads are not kept, as before
        {
            _pids[_count] = pid;
            _stats[_count++] = stat;
        }

        return stat;
    }
}
