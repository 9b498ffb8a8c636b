using System.Globalization;

namespace InSpatialFs.Security.Identity;

/// <summary>One /etc/passwd entry: the fields Falco's user.* show.</summary>
public sealed record UserAccount(string Name, string HomeDir, string Shell);

/// <summary>
/// user.name, group.name, user.homedir, user.shell as the container itself defines them: parsed from the
/// container's own /etc/passwd and /etc/group, read through <c>readFile</c> (the daemon reads them through its
/// mount table, relative to the backend's descriptors, never from the host's /etc). Re-read at most once per
/// <see cref="RefreshInterval"/> when asked; lookups are a dictionary read. Files larger than 1 MiB are ignored.
/// </summary>
public sealed class AccountNames
{
    public static readonly TimeSpan RefreshInterval = TimeSpan.FromSeconds(5);

    private const int MaxFileBytes = 1 << 20;

    private readonly Func<string, int, string?> _readFile;
    private volatile Dictionary<uint, UserAccount> _users = [];
    private volatile Dictionary<uint, string> _groups = [];
    private long _nextRefresh;

    /// <param name="readFile">Reads a container path (at most the given number of bytes); null when absent.</param>
    public AccountNames(Func<string, int, string?> readFile)
    {
        _readFile = readFile;
    }

    /// <summary>Fixed tables (tests and replays).</summary>
    public static AccountNames FromText(string passwd, string group)
    {
        var names = new AccountNames((_, _) => null);
        names._users = ParsePasswd(passwd);
        names._groups = ParseGroup(group);
        names._nextRefresh = long.MaxValue;
        return names;
    }

    public UserAccount? User(uint uid)
    {
        MaybeRefresh();
        return _users.GetValueOrDefault(uid);
    }

    public string? GroupName(uint gid)
    {
        MaybeRefresh();
        return _groups.GetValueOrDefault(gid);
    }

    /// <summary>Re-reads both files now (start, and when a rule needs names after the interval has passed).</summary>
    public void Refresh()
    {
        _nextRefresh = Environment.TickCount64 + (long)RefreshInterval.TotalMilliseconds;
        if (_readFile("/etc/passwd", MaxFileBytes) is { } passwd)
        {
            _users = ParsePasswd(passwd);
        }

        if (_readFile("/etc/group", MaxFileBytes) is { } group)
        {
            _groups = ParseGroup(group);
        }
    }

    private void MaybeRefresh()
    {
        long next = Volatile.Read(ref _nextRefresh);
        if (next != long.MaxValue && Environment.TickCount64 >= next
            && Interlocked.CompareExchange(ref _nextRefresh, long.MaxValue - 1, next) == next)
        {
            try
            {
                Refresh();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                _nextRefresh = Environment.TickCount64 + (long)RefreshInterval.TotalMilliseconds;
            }
        }
    }

    internal static Dictionary<uint, UserAccount> ParsePasswd(string text)
    {
        var users = new Dictionary<uint, UserAccount>();
        foreach (string line in text.Split('\n'))
        {
            string[] f = line.Split(':');
            if (f.Length >= 7 && uint.TryParse(f[2], NumberStyles.None, CultureInfo.InvariantCulture, out uint uid))
            {
                users.TryAdd(uid, new UserAccount(f[0], f[5], f[6].TrimEnd('\r')));
            }
        }

        return users;
    }

    internal static Dictionary<uint, string> ParseGroup(string text)
    {
        var groups = new Dictionary<uint, string>();
        foreach (string line in text.Split('\n'))
        {
            string[] f = line.Split(':');
            if (f.Length >= 3 && uint.TryParse(f[2], NumberStyles.None, CultureInfo.InvariantCulture, out uint gid))
            {
                groups.TryAdd(gid, f[0]);
            }
        }

        return groups;
    }
}
