using System.Collections.Concurrent;
using System.Globalization;
using InSpatialFs.Interop;

namespace InSpatialFs.Security.Identity;

/// <summary>
/// One caller as first seen: pinned by a pidfd on its process (thread group leader), with what /proc said
/// while the pidfd was known to be live. Responses go through <see cref="PidFd"/>, so they reach the
/// process that acted, never a later holder of the same pid.
/// </summary>
public sealed class CallerInfo : IDisposable
{
    internal CallerInfo(int pid, int tgid, string name, ulong startTime, ulong processStartTime, CgroupPaths cgroups, string? root, bool isMember, SafeFd? pidFd)
    {
        ProcessStartTime = processStartTime;
        Pid = pid;
        Tgid = tgid;
        Name = name;
        StartTime = startTime;
        Cgroups = cgroups;
        Root = root;
        IsContainerMember = isMember;
        PidFd = pidFd;
    }

    /// <summary>The pid the kernel reported (a thread id for threaded callers).</summary>
    public int Pid { get; }
    /// <summary>The process (thread group) id.</summary>
    public int Tgid { get; }
    /// <summary>/proc/PID/comm</summary>
    public string Name { get; }
    /// <summary>/proc/PID/stat field 22 (clock ticks since boot): with the pid, a process identity that survives pid reuse.</summary>
    public ulong StartTime { get; }
    /// <summary>Start time of the thread group leader: (Tgid, ProcessStartTime) names the process across threads.</summary>
    public ulong ProcessStartTime { get; }
    public CgroupPaths Cgroups { get; }
    /// <summary>Where /proc/PID/root pointed, or null if unreadable.</summary>
    public string? Root { get; }
    public bool IsContainerMember { get; }
    public SafeFd? PidFd { get; }

    /// <summary>proc.* fields of the process (read once when it was pinned); null when /proc could not be read.</summary>
    public ProcessContext? Process { get; internal set; }

    /// <summary>True once the process has exited, or once this pin was released (a released pin must not be acted on). False without a pidfd.</summary>
    public bool HasExited => PidFd is SafeFd fd && (fd.IsClosed || LibC.PidfdHasExited(fd));

    public void Dispose() => PidFd?.Dispose();
}

/// <summary>The caller's cgroup paths: v1 freezer hierarchy and the v2 (unified) one; null when absent.</summary>
public sealed record CgroupPaths(string? Freezer, string? Unified, IReadOnlyList<string> All)
{
    public static readonly CgroupPaths None = new(null, null, []);

    /// <summary>Parses /proc/PID/cgroup ("ID:controllers:path" per line).</summary>
    public static CgroupPaths Parse(string text)
    {
        string? freezer = null, unified = null;
        var all = new List<string>();
        foreach (string line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            int a = line.IndexOf(':', StringComparison.Ordinal);
            int b = a < 0 ? -1 : line.IndexOf(':', a + 1);
            if (b < 0) continue;
            string controllers = line[(a + 1)..b];
            string path = line[(b + 1)..];
            all.Add(path);
            if (line.AsSpan(0, a) is "0" && controllers.Length == 0) unified = path;
            else if (controllers.Split(',').Contains("freezer")) freezer = path;
        }

        return new CgroupPaths(freezer, unified, all);
    }
}

/// <summary>
/// Pid → <see cref="CallerInfo"/> for the request path. A hit is one dictionary read (no syscall, no
/// allocation); a miss pins the process and reads /proc once. Pid reuse: every pinned pidfd is watched by
/// an epoll thread, and the entry is dropped the moment the pidfd polls readable (the process exited).
/// That happens before the pid can even be reaped and freed, and a freed pid is only handed out again after
/// the kernel's cyclic allocator comes round (pid_max), so a new process is never served from an old entry.
/// <see cref="Sweep"/> (every second, and on a full cache) is the backstop; responses re-check the pidfd
/// and start time before they act.
/// pid 0 (kernel-initiated requests) is never a container member and is not cached.
/// </summary>
public sealed class CallerRegistry : IDisposable
{
    private readonly ConcurrentDictionary<int, CallerInfo> _cache = new();
    // Pids that opened a file for exec: their cached comm and root are stale once execve completes.
    // Value: the TickCount64 after which the entry is trusted again (exec of a same-named binary never changes comm).
    private readonly ConcurrentDictionary<int, long> _execPending = new();
    private volatile int _execPendingCount;
    private readonly string _procRoot;
    private readonly string? _mountpoint;
    private readonly string? _containerCgroup;
    private readonly Timer? _sweeper;
    private readonly SafeFd _epoll;
    private readonly bool _background;
    private Thread? _watcher;
    private volatile bool _disposed;
    private long _mountDevice;

    public CallerRegistry(string? mountpoint, string? containerCgroup, int capacity = 4096, string procRoot = "/proc", bool backgroundSweep = true)
    {
        _mountpoint = mountpoint is null ? null : Normalize(mountpoint);
        _containerCgroup = containerCgroup is null ? null : Normalize(containerCgroup);
        Capacity = capacity;
        _procRoot = procRoot;
        Processes = new ProcessContextResolver(procRoot);
        int ep = LibC.epoll_create1(LibC.EPOLL_CLOEXEC);
        _epoll = new SafeFd(ep);
        if (backgroundSweep)
        {
            _sweeper = new Timer(_ => Sweep(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
            _background = ep >= 0;
        }
    }

    /// <summary>Evicts callers as their pidfds report exit (epoll data = the cached pid).</summary>
    private unsafe void WatchExits()
    {
        EpollEvent* events = stackalloc EpollEvent[64];
        while (!_disposed)
        {
            int n = LibC.epoll_wait(_epoll.Fd, events, 64, 200);
            for (int i = 0; i < n; i++)
            {
                int pid = (int)events[i].Data;
                if (_cache.TryGetValue(pid, out CallerInfo? c) && c.HasExited && _cache.TryRemove(new KeyValuePair<int, CallerInfo>(pid, c)))
                {
                    Forget(c);
                }
            }
        }
    }

    private unsafe void Watch(CallerInfo c)
    {
        if (_epoll.IsInvalid || c.PidFd is null) return;
        if (_background && _watcher is null)
        {
            // Started with the first pinned caller, so an idle registry costs no thread.
            var t = new Thread(WatchExits) { IsBackground = true, Name = "caller-exits" };
            if (Interlocked.CompareExchange(ref _watcher, t, null) is null) t.Start();
        }

        var ev = new EpollEvent { Events = LibC.EPOLLIN, Data = (ulong)c.Pid };
        LibC.epoll_ctl(_epoll.Fd, LibC.EPOLL_CTL_ADD, c.PidFd.Fd, &ev);
    }

    private unsafe void Forget(CallerInfo c)
    {
        // Closing the pidfd removes it from the epoll set; the explicit DEL keeps the set exact meanwhile.
        if (!_epoll.IsInvalid && c.PidFd is { IsClosed: false } fd) LibC.epoll_ctl(_epoll.Fd, LibC.EPOLL_CTL_DEL, fd.Fd, null);
        c.Dispose();
    }

    public int Capacity { get; }
    public int Count => _cache.Count;

    /// <summary>Process context (proc.exe, proc.cmdline, ancestors...) read once per pinned process.</summary>
    public ProcessContextResolver Processes { get; }

    /// <summary>Callers marked by <see cref="NoteExec"/> whose refresh window is still open.</summary>
    public int PendingExecs => _execPendingCount;

    /// <summary>The caller for a request pid, pinned on first sight; null for pid 0 or a process already gone.</summary>
    public CallerInfo? Resolve(int pid)
    {
        if (pid <= 0) return null;
        if (_cache.TryGetValue(pid, out CallerInfo? c))
        {
            // ConcurrentDictionary.IsEmpty takes every bucket lock; a volatile count keeps the common case lock-free.
            return _execPendingCount == 0 ? c : RefreshAfterExec(pid, c);
        }

        return ResolveSlow(pid);
    }

    /// <summary>How long after an exec open (FMODE_EXEC) a cached caller is re-checked for a changed comm.</summary>
    public static readonly TimeSpan ExecRefreshWindow = TimeSpan.FromSeconds(2);

    /// <summary>
    /// The process <paramref name="pid"/> opened a file for exec: until its comm changes (execve completed) or
    /// <see cref="ExecRefreshWindow"/> passes, <see cref="Resolve"/> re-reads /proc/PID/comm and re-pins on a change,
    /// so the name and membership (runc's init pivots into the rootfs just before its exec) describe the new image.
    /// </summary>
    public void NoteExec(int pid)
    {
        if (pid <= 0 || !_cache.ContainsKey(pid)) return;
        _execPending[pid] = Environment.TickCount64 + (long)ExecRefreshWindow.TotalMilliseconds;
        _execPendingCount = _execPending.Count;
    }

    private CallerInfo? RefreshAfterExec(int pid, CallerInfo cached)
    {
        if (!_execPending.TryGetValue(pid, out long deadline)) return cached;
        string? name = TryReadComm(pid);
        bool changed = name is not null && name != cached.Name;
        if (!changed && Environment.TickCount64 < deadline && name is not null) return cached;

        if (_execPending.TryRemove(pid, out _)) _execPendingCount = _execPending.Count;
        if (!changed) return cached;

        CallerInfo? fresh = Pin(pid);
        if (fresh is null) return cached;
        if (_cache.TryUpdate(pid, fresh, cached))
        {
            Watch(fresh);
            Forget(cached);
            return fresh;
        }

        fresh.Dispose();
        return _cache.TryGetValue(pid, out CallerInfo? winner) ? winner : null;
    }

    private string? TryReadComm(int pid)
    {
        try
        {
            return File.ReadAllText(Path.Combine(_procRoot, pid.ToString(CultureInfo.InvariantCulture), "comm")).TrimEnd('\n');
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The caller already pinned for <paramref name="pid"/>, without pinning anew (no syscall; null when not cached).</summary>
    public CallerInfo? Cached(int pid) => pid > 0 && _cache.TryGetValue(pid, out CallerInfo? c) ? c : null;

    private CallerInfo? ResolveSlow(int pid)
    {
        CallerInfo? fresh = Pin(pid);
        if (fresh is null) return null;
        if (_cache.Count >= Capacity)
        {
            Sweep();
            if (_cache.Count >= Capacity)
            {
                // Still full of live callers: forget the oldest pins (they re-pin on their next request).
                foreach (int k in _cache.Keys.Take(Math.Max(1, Capacity / 8)))
                {
                    if (_cache.TryRemove(k, out CallerInfo? old)) Forget(old);
                }
            }
        }

        if (_cache.TryAdd(pid, fresh))
        {
            Watch(fresh);
            return fresh;
        }

        fresh.Dispose();
        return _cache.TryGetValue(pid, out CallerInfo? winner) ? winner : null;
    }

    /// <summary>Reads a caller's identity without caching it (pidfd first, /proc second, pidfd liveness last).</summary>
    public CallerInfo? Pin(int pid)
    {
        string dir = Path.Combine(_procRoot, pid.ToString(CultureInfo.InvariantCulture));
        int tgid = ReadTgid(dir) ?? pid;
        Errno e = LibC.PidfdOpen(tgid, out SafeFd pidfd);
        if (e != Errno.OK)
        {
            pidfd.Dispose();
            return null;
        }

        try
        {
            string stat = File.ReadAllText(Path.Combine(dir, "stat"));
            ulong start = ParseStartTime(stat);
            ulong processStart = tgid == pid ? start
                : ParseStartTime(File.ReadAllText(Path.Combine(_procRoot, tgid.ToString(CultureInfo.InvariantCulture), "stat")));
            string name = File.ReadAllText(Path.Combine(dir, "comm")).TrimEnd('\n');
            CgroupPaths cg = CgroupPaths.Parse(File.ReadAllText(Path.Combine(dir, "cgroup")));
            string? root = TryReadLink(Path.Combine(dir, "root"));

            // Everything above was read while the pid could still have changed hands; the pidfd proves it did not.
            if (LibC.PidfdHasExited(pidfd))
            {
                pidfd.Dispose();
                return null;
            }

            bool member = IsMember(root, cg) || RootIsOnMount(dir);
            return new CallerInfo(pid, tgid, name, start, processStart, cg, root, member, pidfd) { Process = Processes.Resolve(tgid) };
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
        {
            pidfd.Dispose();
            return null;
        }
    }

    /// <summary>
    /// The device (st_dev) of the container mount, once it is mounted. A caller whose root directory lies on that
    /// filesystem is a member even when its mount namespace hides the mountpoint's path: after runc's pivot_root,
    /// /proc/PID/root reads "/" from the host.
    /// </summary>
    public void SetMountDevice(uint major, uint minor) => Volatile.Write(ref _mountDevice, ((long)major << 32) | minor);

    /// <summary>True when /proc/PID/root is a directory on the container mount (compared by st_dev, read without a FUSE round trip).</summary>
    private unsafe bool RootIsOnMount(string procDir)
    {
        long device = Volatile.Read(ref _mountDevice);
        if (device == 0) return false; // 0:0 is never a mounted filesystem's device
        byte[] path = System.Text.Encoding.UTF8.GetBytes(Path.Combine(procDir, "root") + "\0");
        StatX st;
        fixed (byte* p = path)
        {
            // DONT_SYNC: the root may be this very FUSE mount, and a GETATTR sent from a reader thread could wait on itself.
            if (LibC.statx(LibC.AT_FDCWD, p, LibC.AT_STATX_DONT_SYNC, LibC.STATX_INO, &st) != 0) return false;
        }

        return (((long)st.DevMajor << 32) | st.DevMinor) == device;
    }

    /// <summary>Container membership: root at or below the mountpoint, or a cgroup at or below the configured one.</summary>
    public bool IsMember(string? root, CgroupPaths cgroups)
    {
        if (_mountpoint is not null && _mountpoint != "/" && root is not null && IsAtOrBelow(Normalize(root), _mountpoint)) return true;
        if (_containerCgroup is not null && _containerCgroup != "/")
        {
            foreach (string p in cgroups.All)
            {
                if (IsAtOrBelow(p, _containerCgroup)) return true;
            }
        }

        return false;
    }

    /// <summary>Drops callers whose process has exited; returns how many.</summary>
    public int Sweep()
    {
        int n = 0;
        if (_execPendingCount != 0)
        {
            // Exec marks of processes that made no request after their exec (or exited) expire here.
            long now = Environment.TickCount64;
            foreach (KeyValuePair<int, long> kv in _execPending)
            {
                if (now >= kv.Value) _execPending.TryRemove(kv);
            }

            _execPendingCount = _execPending.Count;
        }

        foreach (KeyValuePair<int, CallerInfo> kv in _cache)
        {
            if (kv.Value.PidFd is null || kv.Value.HasExited)
            {
                if (_cache.TryRemove(kv))
                {
                    Forget(kv.Value);
                    n++;
                }
            }
        }

        return n;
    }

    /// <summary>True when <paramref name="c"/> still names a live process with the same start time (checked before any signal or freeze).</summary>
    public bool StillSameProcess(CallerInfo c)
    {
        if (c.PidFd is null || c.HasExited) return false;
        try
        {
            string stat = File.ReadAllText(Path.Combine(_procRoot, c.Pid.ToString(CultureInfo.InvariantCulture), "stat"));
            return ParseStartTime(stat) == c.StartTime;
        }
        catch (Exception ex) when (ex is IOException or FormatException)
        {
            return false;
        }
    }

    public IReadOnlyCollection<CallerInfo> Snapshot() => _cache.Values.ToList();

    /// <summary>Field 22 of /proc/PID/stat; the comm field may hold spaces and parentheses, so count after the last ')'.</summary>
    public static ulong ParseStartTime(string stat)
    {
        int close = stat.LastIndexOf(')');
        if (close < 0) throw new FormatException("stat: no ')'");
        string[] fields = stat[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        // fields[0] is field 3 (state), so field 22 is fields[19].
        if (fields.Length < 20) throw new FormatException("stat: too few fields");
        return ulong.Parse(fields[19], CultureInfo.InvariantCulture);
    }

    private static int? ReadTgid(string dir)
    {
        try
        {
            foreach (string line in File.ReadLines(Path.Combine(dir, "status")))
            {
                if (line.StartsWith("Tgid:", StringComparison.Ordinal)
                    && int.TryParse(line.AsSpan(5).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int t))
                {
                    return t;
                }
            }
        }
        catch (IOException)
        {
        }

        return null;
    }

    private static string? TryReadLink(string path)
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

    internal static bool IsAtOrBelow(string path, string ancestor) =>
        path == ancestor || (path.StartsWith(ancestor, StringComparison.Ordinal) && (ancestor == "/" || (path.Length > ancestor.Length && path[ancestor.Length] == '/')));

    private static string Normalize(string p) => p.Length > 1 ? p.TrimEnd('/') : p;

    public void Dispose()
    {
        _disposed = true;
        _sweeper?.Dispose();
        _watcher?.Join(TimeSpan.FromSeconds(1));
        _epoll.Dispose();
        foreach (CallerInfo c in _cache.Values) c.Dispose();
        _cache.Clear();
    }
}
