using System.Globalization;
using System.Text;

namespace InSpatialFs.Security.Rules;

/// <summary>
/// Values rendered the way Falco renders them, precomputed so the request path only indexes tables:
/// <c>evt.res</c> (SUCCESS or the errno name), open flags (<c>O_WRONLY|O_CREAT|O_TRUNC</c>) and modes
/// (<c>0755(S_IXOTH|...)</c>, with S_ISUID/S_ISGID/S_ISVTX named).
/// </summary>
internal static class FieldRendering
{
    private static readonly string[] ErrnoNames = BuildErrnoNames();
    private static readonly Dictionary<string, int> ErrnoByName = BuildErrnoIndex();

    /// <summary>Open flag bits and their names (Linux x86-64/arm64 values), access mode handled apart.</summary>
    private static readonly (int Bit, string Name)[] OpenFlagBits =
    [
        (0x40, "O_CREAT"), (0x80, "O_EXCL"), (0x100, "O_NOCTTY"), (0x200, "O_TRUNC"), (0x400, "O_APPEND"),
        (0x800, "O_NONBLOCK"), (0x1000, "O_DSYNC"), (0x2000, "O_ASYNC"), (0x4000, "O_DIRECT"), (0x8000, "O_LARGEFILE"),
        (0x10000, "O_DIRECTORY"), (0x20000, "O_NOFOLLOW"), (0x40000, "O_NOATIME"), (0x80000, "O_CLOEXEC"),
        (0x101000, "O_SYNC"), (0x200000, "O_PATH"), (0x410000, "O_TMPFILE"),
    ];

    private static readonly (uint Bit, string Name)[] ModeBits =
    [
        (0x1, "S_IXOTH"), (0x2, "S_IWOTH"), (0x4, "S_IROTH"), (0x8, "S_IXGRP"), (0x10, "S_IWGRP"), (0x20, "S_IRGRP"),
        (0x40, "S_IXUSR"), (0x80, "S_IWUSR"), (0x100, "S_IRUSR"), (0x200, "S_ISVTX"), (0x400, "S_ISGID"), (0x800, "S_ISUID"),
    ];

    private static string[] BuildErrnoNames()
    {
        string[] names = new string[134];
        for (int i = 0; i < names.Length; i++)
        {
            names[i] = "E" + i.ToString(CultureInfo.InvariantCulture);
        }

        names[0] = "SUCCESS";
        string[] known =
        [
            "", "EPERM", "ENOENT", "ESRCH", "EINTR", "EIO", "ENXIO", "E2BIG", "ENOEXEC", "EBADF", "ECHILD", "EAGAIN",
            "ENOMEM", "EACCES", "EFAULT", "ENOTBLK", "EBUSY", "EEXIST", "EXDEV", "ENODEV", "ENOTDIR", "EISDIR", "EINVAL",
            "ENFILE", "EMFILE", "ENOTTY", "ETXTBSY", "EFBIG", "ENOSPC", "ESPIPE", "EROFS", "EMLINK", "EPIPE", "EDOM",
            "ERANGE", "EDEADLK", "ENAMETOOLONG", "ENOLCK", "ENOSYS", "ENOTEMPTY", "ELOOP", "E41", "ENOMSG", "EIDRM",
        ];
        for (int i = 1; i < known.Length; i++)
        {
            names[i] = known[i];
        }

        names[61] = "ENODATA";
        names[71] = "EPROTO";
        names[75] = "EOVERFLOW";
        names[77] = "EBADFD";
        names[88] = "ENOTSOCK";
        names[95] = "EOPNOTSUPP";
        names[103] = "ECONNABORTED";
        names[107] = "ENOTCONN";
        names[110] = "ETIMEDOUT";
        names[111] = "ECONNREFUSED";
        names[115] = "EINPROGRESS";
        names[116] = "ESTALE";
        names[122] = "EDQUOT";
        return names;
    }

    private static Dictionary<string, int> BuildErrnoIndex()
    {
        var d = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < ErrnoNames.Length; i++)
        {
            d.TryAdd(ErrnoNames[i], i);
        }

        return d;
    }

    /// <summary>evt.res: "SUCCESS" for 0, else the errno's name ("ENOENT").</summary>
    public static string ResultName(int errno) =>
        errno >= 0 && errno < ErrnoNames.Length ? ErrnoNames[errno] : "E" + errno.ToString(CultureInfo.InvariantCulture);

    /// <summary>The errno number of an evt.res name (SUCCESS is 0).</summary>
    public static bool TryParseResult(string name, out int errno) => ErrnoByName.TryGetValue(name, out errno);

    /// <summary>open(2) flags as Falco prints them: access mode first, then the set flags, joined by '|'.</summary>
    public static string OpenFlags(int flags)
    {
        var sb = new StringBuilder((flags & 3) switch { 1 => "O_WRONLY", 2 => "O_RDWR", _ => "O_RDONLY" });
        foreach ((int bit, string name) in OpenFlagBits)
        {
            if ((flags & bit) == bit)
            {
                sb.Append('|').Append(name);
            }
        }

        return sb.ToString();
    }

    /// <summary>A mode as Falco prints it: octal permission bits, then the set bit names in parentheses.</summary>
    public static string Mode(uint mode)
    {
        var sb = new StringBuilder("0");
        sb.Append(Convert.ToString(mode & 0xFFF, 8));
        var names = ModeBits.Where(b => (mode & b.Bit) != 0).Select(b => b.Name).ToList();
        if (names.Count > 0)
        {
            sb.Append('(').AppendJoin('|', names).Append(')');
        }

        return sb.ToString();
    }

    /// <summary>A compact cache of rendered open flags: values are few (a program uses a handful of flag sets).</summary>
    public static string CachedOpenFlags(int flags) => FlagCache.Get(flags, OpenFlags);

    public static string CachedMode(uint mode) => ModeCache.Get((int)mode, m => Mode((uint)m));

    private static readonly RenderCache FlagCache = new();
    private static readonly RenderCache ModeCache = new();

    /// <summary>Bounded int → string cache (renderings used in conditions must not allocate per event).</summary>
    private sealed class RenderCache
    {
        private const int Capacity = 4096;
        private volatile Dictionary<int, string> _map = [];

        public string Get(int key, Func<int, string> render)
        {
            if (_map.TryGetValue(key, out string? s))
            {
                return s;
            }

            s = render(key);
            var copy = _map.Count >= Capacity ? new Dictionary<int, string>() : new Dictionary<int, string>(_map);
            copy[key] = s;
            _map = copy;
            return s;
        }
    }
}
