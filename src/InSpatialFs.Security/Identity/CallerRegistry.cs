using System.Collections.Concurrent;
using System.Globalization;
using InSpatialFs.Interop;
using InSpatialFs.Interop.Threading;

namespace InSpatialFs.Security.Identity;

/// <summary>
/// Pid → <see cref="CallerInfo"/> for the request path. A hit is one dictionary read (no syscall, no
/// allocation), except once per <see cref="ImageRecheck"/> per process, when its name and image are looked at again
/// (an exec the mount never saw); a miss pins the process and reads /proc once. Pid reuse: every pinned pidfd is watched by
/// an epoll thread, and the entry is dropped within <see cref="ExitBatch"/> of the pidfd polling readable (the process
/// exited). A freed pid is only handed out again after the kernel's cyclic allocator comes round (pid_max, with every
/// pid in between taken by a new process), which takes far longer than that, so a new process is never served from
/// an old entry.
/// <see cref="Sweep"/> (every <see cref="SweepBackstop"/>; every second while exec marks are open, without the exit
/// watcher, or once a pin could not be watched; and on a full cache) is the backstop; responses re-check the pidfd and start time before they act.
/// pid 0 (kernel-initiated requests) is never a container member and is not cached.
/// </summary>
public sealed class CallerRegistry : IDisposable
{
    private readonly ConcurrentDictionary<int, CallerInfo> _cache = new();
    // Pids that opened a file for exec: their cached comm and root are stale once execve completes.
    // Value: the TickCount64 after which the entry is trusted again (exec of a same-named binary never changes comm).
    private readonly ConcurrentDictionary<int, long> _execPending = new();
    private volatile int _execPendingCount;
    // Live member processes by tgid (with their start time): the ancestry proof and sticky membership look here, so a
    // member stays one whichever of its threads was pinned and whether or not its pin is still cached.
    private readonly ConcurrentDictionary<int, (ulong Start, Membership Basis)> _memberProcesses = new();
    private readonly string _procRoot;
    private readonly HousekeepingJob? _sweeper;
    private readonly SafeFd _epoll;
    // In the epoll set under WakeData: Dispose signals it, so the exit watcher can wait without a timeout (an idle
    // instance then has no thread that wakes to look at a flag).
    private readonly SafeFd _wake;
    private const ulong WakeData = ulong.MaxValue;
    private readonly bool _background;
    private readonly Func<int, ulong, bool> _isPinnedMember;
    private readonly Func<ulong> _oldestMemberStart;
    private Thread? _watcher;
    private volatile bool _disposed;

    public CallerRegistry(string? mountpoint, string? containerCgroup, int capacity = 4096, string procRoot = "/proc", bool backgroundSweep = true,
        TimeSpan? imageRecheck = null)
    {
        ImageRecheck = imageRecheck ?? DefaultImageRecheck;
        Container = new ContainerIdentity(mountpoint, containerCgroup, procRoot);
        _isPinnedMember = IsMemberProcess;
        _oldestMemberStart = OldestMemberStart;
        Capacity = capacity;
        _procRoot = procRoot;
        Processes = new ProcessContextResolver(procRoot) { MayHaveExeced = pid => _execPendingCount != 0 && _execPending.ContainsKey(pid) };
        int ep = LibC.epoll_create1(LibC.EPOLL_CLOEXEC);
        _epoll = new SafeFd(ep);
        _wake = new SafeFd(LibC.eventfd(0, LibC.EFD_CLOEXEC | LibC.EFD_NONBLOCK));
        if (ep >= 0 && !_wake.IsInvalid)
        {
            var ev = new EpollEvent { Events = LibC.EPOLLIN, Data = WakeData };
            unsafe
            {
                LibC.epoll_ctl(ep, LibC.EPOLL_CTL_ADD, _wake.Fd, &ev);
            }
        }

        if (backgroundSweep)
        {
            _background = ep >= 0;
            TimeSpan period = _background ? SweepBackstop : SweepWhileMarked;
            _sweeper = Housekeeping.Shared.Schedule(() => Sweep(), period, period);
        }
    }

    /// <summary>
    /// How long the exit watcher lets exits gather after it handled some: a container that runs one short process after
    /// another (a shell loop, a build) would otherwise wake it, two context switches, for every process that ends.
    /// </summary>
    public static readonly TimeSpan ExitBatch = TimeSpan.FromMilliseconds(10);

    /// <summary>
    /// How often the background sweep runs while the exit watcher evicts callers and no exec mark is open: it only
    /// catches what the watcher could not (a pidfd epoll refused), and an idle instance should not wake every second
    /// for it (with 50 containers, 50 servers).
    /// </summary>
    public static readonly TimeSpan SweepBackstop = TimeSpan.FromSeconds(10);

    /// <summary>The sweep's period while exec marks are open (they expire there) or without the exit watcher.</summary>
    public static readonly TimeSpan SweepWhileMarked = TimeSpan.FromSeconds(1);

    // Guards the sweep job's period changes (NoteExec speeds it up, a sweep with no mark left slows it down).
    private readonly Lock _sweepPeriodGate = new();
    private bool _sweepingFast;

    /// <summary>Every second (<paramref name="fast"/>: an exec mark opened, a pin went unwatched) or the backstop's period.</summary>
    private void SetSweepPeriod(bool fast)
    {
        if (_sweeper is null || !_background) return;
        lock (_sweepPeriodGate)
        {
            // The count is read again under the gate: a NoteExec that counted its mark before taking the gate is seen here,
            // and one that takes the gate after this sets the fast period again.
            if (fast == _sweepingFast || _disposed || (!fast && (_execPendingCount != 0 || _unwatchedPins))) return;
            _sweepingFast = fast;
            TimeSpan period = fast ? SweepWhileMarked : SweepBackstop;
            _sweeper.Change(period, period);
        }
    }

    /// <summary>Evicts callers as their pidfds report exit (epoll data = the cached pid).</summary>
    private unsafe void WatchExits()
    {
        LibC.RunOnProcessCpus(); // started by whichever request thread pinned the first caller: perhaps a CPU-pinned ring reader
        const int MaxEvents = 256;
        EpollEvent* events = stackalloc EpollEvent[MaxEvents];
        while (!_disposed)
        {
            // Without a wake descriptor (eventfd refused), a timeout is what lets Dispose end the thread.
            int n = LibC.epoll_wait(_epoll.Fd, events, MaxEvents, _wake.IsInvalid ? 200 : -1);
            for (int i = 0; i < n; i++)
            {
                if (events[i].Data == WakeData) continue; // Dispose: the loop's condition ends it
                int pid = (int)events[i].Data;
                if (_cache.TryGetValue(pid, out CallerInfo? c) && c.HasExited && _cache.TryRemove(new KeyValuePair<int, CallerInfo>(pid, c)))
                {
                    Forget(c);
                }
            }

            if (n > 0 && n < MaxEvents)
            {
                LibC.SleepBriefly((int)ExitBatch.TotalMilliseconds);
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
        if (LibC.epoll_ctl(_epoll.Fd, LibC.EPOLL_CTL_ADD, c.PidFd.Fd, &ev) != 0) ReportUnwatchedPin();
    }

    /// <summary>
    /// A pin the exit watcher could not watch (epoll refused its pidfd: ENOMEM, max_user_watches): from then on the
    /// sweep stays at <see cref="SweepWhileMarked"/>, so such an entry leaves the cache within a second of its exit, as
    /// every entry did before the backstop slowed down (with pid_max at 32,768, a container can cycle its pids in seconds).
    /// </summary>
    internal void ReportUnwatchedPin()
    {
        _unwatchedPins = true;
        SetSweepPeriod(fast: true);
    }

    private volatile bool _unwatchedPins;

    /// <summary>The background sweep's current period (null without one).</summary>
    internal TimeSpan? SweepPeriod
    {
        get
        {
            lock (_sweepPeriodGate) return _sweeper is null ? null : _sweepingFast || !_background ? SweepWhileMarked : SweepBackstop;
        }
    }

    private unsafe void Forget(CallerInfo c)
    {
        if (c.IsContainerMember && c.HasExited) _memberProcesses.TryRemove(new KeyValuePair<int, (ulong, Membership)>(c.Tgid, (c.ProcessStartTime, c.Membership)));
        // Closing the pidfd removes it from the epoll set; the explicit DEL keeps the set exact meanwhile.
        if (!_epoll.IsInvalid && c.PidFd is { IsClosed: false } fd) LibC.epoll_ctl(_epoll.Fd, LibC.EPOLL_CTL_DEL, fd.Fd, null);
        c.Dispose();
    }

    public int Capacity { get; }
    public int Count => _cache.Count;

    /// <summary>Process context (proc.exe, proc.cmdline, ancestors...) read once per pinned process.</summary>
    public ProcessContextResolver Processes { get; }

    /// <summary>The proofs of membership in force (cgroup, init, learned pid namespace, fallback).</summary>
    public ContainerIdentity Container { get; }

    /// <summary>Callers marked by <see cref="NoteExec"/> whose refresh window is still open.</summary>
    public int PendingExecs => _execPendingCount;

    /// <summary>The caller for a request pid, pinned on first sight; null for pid 0 or a process already gone.</summary>
    public CallerInfo? Resolve(int pid)
    {
        if (pid <= 0) return null;
        if (_cache.TryGetValue(pid, out CallerInfo? c))
        {
            // ConcurrentDictionary.IsEmpty takes every bucket lock; a volatile count keeps the common case lock-free.
            if (_execPendingCount != 0) return RefreshAfterExec(pid, c);
            return Environment.TickCount64 < Volatile.Read(ref c.NextImageCheck) ? c : RecheckImage(pid, c);
        }

        return ResolveSlow(pid);
    }

    /// <summary>
    /// How often a cached caller's name and image are looked at again without an exec open on the mount: an exec that
    /// opens nothing on it (a memfd's fexecve, a binary on a host bind mount, a host process running a host binary) is
    /// noticed within this time. One comm read and one readlink per interval per active process; a hit in between is one
    /// dictionary read.
    /// </summary>
    public static readonly TimeSpan DefaultImageRecheck = TimeSpan.FromMilliseconds(200);

    public TimeSpan ImageRecheck { get; }

    private CallerInfo? RecheckImage(int pid, CallerInfo cached)
    {
        // First, so the other requests of this process meanwhile take the hit path.
        Volatile.Write(ref cached.NextImageCheck, Environment.TickCount64 + (long)ImageRecheck.TotalMilliseconds);
        (bool renamed, bool newImage, _) = Changes(pid, cached);
#pragma warning disable CA2000 // a new pin is owned by the cache (Repin puts it there or disposes it)
        return renamed || newImage ? Repin(pid, cached) : cached;
#pragma warning restore CA2000
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
        SetSweepPeriod(fast: true);
    }

    private CallerInfo? RefreshAfterExec(int pid, CallerInfo cached)
    {
        if (!_execPending.TryGetValue(pid, out long deadline)) return cached;
        (bool renamed, bool newImage, bool gone) = Changes(pid, cached);
        bool changed = renamed || newImage;
        if (!changed && Environment.TickCount64 < deadline && !gone) return cached;

        // execve sets the new image before the new name: a new image under the old name is either that or an exec of a
        // same-named program, so the window stays open until the name changes too or the window ends.
        if ((!changed || renamed) && _execPending.TryRemove(pid, out _)) _execPendingCount = _execPending.Count;
#pragma warning disable CA2000 // a new pin is owned by the cache (Repin puts it there or disposes it)
        return changed ? Repin(pid, cached) : cached;
#pragma warning restore CA2000
    }

    /// <summary>
    /// What an exec changed since <paramref name="cached"/> was pinned: the name, or the image alone (a program that
    /// execs another of the same name, a copied "sh" run from /tmp, keeps its comm and would otherwise keep the old
    /// proc.exepath and cmdline in its events and rules). gone: /proc no longer shows the process.
    /// </summary>
    private (bool Renamed, bool NewImage, bool Gone) Changes(int pid, CallerInfo cached)
    {
        string? name = TryReadComm(pid);
        string? image = cached.Process is { ExePath.Length: > 0 } ? ProcFs.TryReadLink(Path.Combine(_procRoot, pid.ToString(CultureInfo.InvariantCulture), "exe")) : null;
        return (name is not null && name != cached.Name, image is not null && image != cached.Process!.ExePath, name is null);
    }

    /// <summary>The same process after execve, pinned anew in place of <paramref name="cached"/>.</summary>
    private CallerInfo? Repin(int pid, CallerInfo cached)
    {
        // The process context is cached by (pid, start, comm), which an exec of a same-named program does not change.
        if (cached.Process is { } old) Processes.Forget(old);

        // A member stays one whatever its new root (a chroot before the exec sheds nothing).
#pragma warning disable CA2000 // the pin goes into the cache (which disposes it when forgotten) or is disposed below when another won
        CallerInfo? fresh = Pin(pid, cached.Membership);
#pragma warning restore CA2000
        if (fresh is null) return cached;
        if (_cache.TryUpdate(pid, fresh, cached))
        {
            NoteMember(fresh);
            Watch(fresh);
            Forget(cached);
            return fresh;
        }

        fresh.Dispose();
        return _cache.TryGetValue(pid, out CallerInfo? winner) ? winner : null;
    }

    private string? TryReadComm(int pid)
    {
        return ProcFs.ReadText(Path.Combine(_procRoot, pid.ToString(CultureInfo.InvariantCulture), "comm"), 64)?.TrimEnd('\n');
    }

    /// <summary>The caller already pinned for <paramref name="pid"/>, without pinning anew (no syscall; null when not cached).</summary>
    public CallerInfo? Cached(int pid) => pid > 0 && _cache.TryGetValue(pid, out CallerInfo? c) ? c : null;

    private CallerInfo? ResolveSlow(int pid)
    {
#pragma warning disable CA2000 // the pin goes into the cache (which disposes it when forgotten) or is disposed below when another won
        CallerInfo? fresh = Pin(pid);
#pragma warning restore CA2000
        if (fresh is null) return null;
        if (_cache.Count >= Capacity)
        {
            Sweep();
            if (_cache.Count >= Capacity)
            {
                // Still full of live callers: forget some host pins (they re-pin on their next request). Members are kept:
                // their exit is watched, and they are bounded by the container's own process limit.
                foreach (KeyValuePair<int, CallerInfo> kv in _cache.Where(kv => !kv.Value.IsContainerMember).Take(Math.Max(1, Capacity / 8)))
                {
                    if (_cache.TryRemove(kv)) Forget(kv.Value);
                }
            }
        }

        if (_cache.TryAdd(pid, fresh))
        {
            NoteMember(fresh);
            Watch(fresh);
            return fresh;
        }

        fresh.Dispose();
        return _cache.TryGetValue(pid, out CallerInfo? winner) ? winner : null;
    }

    /// <summary>
    /// Reads a caller's identity without caching it (pidfd first, /proc second, pidfd liveness last) and decides its
    /// membership. <paramref name="inherited"/>: the membership of an earlier pin of the same process, which it keeps.
    /// </summary>
    public CallerInfo? Pin(int pid, Membership inherited = Membership.Host)
    {
        string dir = Path.Combine(_procRoot, pid.ToString(CultureInfo.InvariantCulture));
        // A request names the calling thread. pidfd_open takes only a thread-group leader (ENOENT here, EINVAL on older
        // kernels, for any other thread), so a first try with the pid itself settles the usual case, one thread or the
        // main one, without reading /proc/PID/status for its Tgid.
        int tgid = pid;
        Errno e = LibC.PidfdOpen(pid, out SafeFd pidfd);
        if (e != Errno.OK && ProcFs.ReadTgid(dir) is int leader && leader != pid)
        {
            pidfd.Dispose();
            tgid = leader;
            e = LibC.PidfdOpen(tgid, out pidfd);
        }

        if (e != Errno.OK)
        {
            pidfd.Dispose();
            return null;
        }

        try
        {
            var reads = new StatReads(_procRoot);
            string? stat = reads.Read(pid);
            string? processStat = tgid == pid ? stat : reads.Read(tgid);
            string? cgroups = ProcFs.ReadText(Path.Combine(dir, "cgroup"), CgroupMax);
            if (stat is null || processStat is null || cgroups is null)
            {
                pidfd.Dispose();
                return null; // gone
            }

            string? root = ProcFs.TryReadLink(Path.Combine(dir, "root"));
            var facts = new ProcessFacts(pid, tgid, ProcFs.ParseStartTime(stat), ProcFs.ParseStartTime(processStat), ProcFs.ParseParentPid(processStat),
                CgroupPaths.Parse(cgroups), root, Container.RootIsOnMount(dir, root), ProcFs.ReadNamespace(dir, "pid"), ProcFs.ReadNamespace(dir, "user"));

            // Everything above was read while the pid could still have changed hands; the pidfd proves it did not.
            if (LibC.PidfdHasExited(pidfd))
            {
                pidfd.Dispose();
                return null;
            }

            Membership membership = Container.Classify(facts, dir, _isPinnedMember, _oldestMemberStart, reads);
            if (membership == Membership.Host) membership = inherited;
            // The name is stat's comm field: /proc/PID/comm holds the same text (both print the task's comm unescaped).
            return new CallerInfo(facts, ProcFs.ParseComm(stat), membership, pidfd)
            {
                Process = Processes.Resolve(tgid, reads),
                NextImageCheck = Environment.TickCount64 + (long)ImageRecheck.TotalMilliseconds,
            };
        }
        catch (FormatException)
        {
            pidfd.Dispose();
            return null;
        }
    }

    /// <summary>Room for /proc/PID/cgroup: one line per hierarchy (13 on a v1 hybrid host), each a controller list and a path.</summary>
    private const int CgroupMax = 16 * 1024;

    /// <summary>The device (st_dev) of the container mount, once it is mounted (the root-directory fallback compares against it).</summary>
    public void SetMountDevice(uint major, uint minor) => Container.SetMountDevice(major, minor);

    /// <summary>
    /// Records the container's init (config <c>container.init_pid</c> or control <c>container-init PID</c>) and
    /// re-decides every cached caller under the stronger proof. Returns null, or why the init was refused.
    /// </summary>
    public string? RecordInit(int pid)
    {
        string? refused = Container.RecordInit(pid);
        if (refused is not null) return refused;
        _memberProcesses.Clear();
        // Members first: a child's ancestry proof may rest on its parent's new membership.
        foreach (CallerInfo c in _cache.Values.OrderBy(c => c.ProcessStartTime))
        {
            if (c.HasExited) continue;
            string dir = Path.Combine(_procRoot, c.Pid.ToString(CultureInfo.InvariantCulture));
            var facts = new ProcessFacts(c.Pid, c.Tgid, c.StartTime, c.ProcessStartTime, c.ParentPid, c.Cgroups, c.Root, c.RootOnMount, c.PidNamespace, c.UserNamespace);
            c.Membership = Container.Classify(facts, dir, _isPinnedMember, _oldestMemberStart);
            NoteMember(c);
        }

        return null;
    }

    private void NoteMember(CallerInfo c)
    {
        if (c.IsContainerMember) _memberProcesses[c.Tgid] = (c.ProcessStartTime, c.Membership);
    }

    private bool IsMemberProcess(int tgid, ulong start) => _memberProcesses.TryGetValue(tgid, out var m) && m.Start == start;

    /// <summary>The earliest start time of a live pinned member (ulong.MaxValue when there is none): bounds ancestry walks.</summary>
    private ulong OldestMemberStart()
    {
        ulong oldest = ulong.MaxValue;
        foreach (KeyValuePair<int, (ulong Start, Membership Basis)> kv in _memberProcesses)
        {
            oldest = Math.Min(oldest, kv.Value.Start);
        }

        return oldest;
    }

    /// <summary>
    /// Every live process /proc shows that is a container member, pinned afresh (not cached; the caller disposes them):
    /// a SIGSTOP suspension must also reach members that never touched the mount.
    /// </summary>
    public List<CallerInfo> ScanMembers()
    {
        var members = new List<CallerInfo>();
        int self = Environment.ProcessId;
        foreach (string dir in Directory.EnumerateDirectories(_procRoot))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out int pid) || pid == self) continue;
            CallerInfo? c = Pin(pid, Cached(pid) is { IsContainerMember: true } known && !known.HasExited ? known.Membership : Membership.Host);
            if (c is { IsContainerMember: true }) members.Add(c);
            else c?.Dispose();
        }

        return members;
    }

    /// <summary>Pinned callers by membership (for status: who is treated as what).</summary>
    public IReadOnlyDictionary<Membership, int> CountByMembership()
    {
        var counts = new Dictionary<Membership, int>();
        foreach (CallerInfo c in _cache.Values.DistinctBy(c => (c.Tgid, c.ProcessStartTime)))
        {
            counts[c.Membership] = counts.GetValueOrDefault(c.Membership) + 1;
        }

        return counts;
    }

    /// <summary>Drops callers whose process has exited; returns how many.</summary>
    public int Sweep()
    {
        int n = 0;
        if (_execPendingCount != 0)
        {
            // Exec marks of processes that made no request after their exec (or exited) expire here, with a last look: a
            // process whose children reach the mount while it makes no request of its own is still seen as its new image.
            long now = Environment.TickCount64;
            foreach (KeyValuePair<int, long> kv in _execPending)
            {
                if (now >= kv.Value && _execPending.TryRemove(kv) && _cache.TryGetValue(kv.Key, out CallerInfo? c) && !c.HasExited)
                {
                    (bool renamed, bool newImage, _) = Changes(kv.Key, c);
#pragma warning disable CA2000 // a new pin is owned by the cache (Repin puts it there or disposes it)
                    if (renamed || newImage) _ = Repin(kv.Key, c);
#pragma warning restore CA2000
                }
            }

            _execPendingCount = _execPending.Count;
        }

        if (_execPendingCount == 0) SetSweepPeriod(fast: false);

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

        if (_memberProcesses.Count > _cache.Count)
        {
            // Members whose every pin left the cache: keep only those still alive with the same start time.
            foreach (KeyValuePair<int, (ulong Start, Membership Basis)> kv in _memberProcesses)
            {
                if (ProcFs.ReadParentAndStart(_procRoot, kv.Key) is not (_, ulong start) || start != kv.Value.Start) _memberProcesses.TryRemove(kv);
            }
        }

        return n;
    }

    /// <summary>True when <paramref name="c"/> still names a live process with the same start time (checked before any signal or freeze).</summary>
    public bool StillSameProcess(CallerInfo c)
    {
        if (c.PidFd is null || c.HasExited) return false;
        return ProcFs.ReadParentAndStart(_procRoot, c.Pid) is (_, ulong start) && start == c.StartTime;
    }

    public IReadOnlyCollection<CallerInfo> Snapshot() => _cache.Values.ToList();

    /// <summary>Field 22 of /proc/PID/stat; the comm field may hold spaces and parentheses, so count after the last ')'.</summary>
    public static ulong ParseStartTime(string stat) => ProcFs.ParseStartTime(stat);

    internal static bool IsAtOrBelow(string path, string ancestor) => ContainerIdentity.IsAtOrBelow(path, ancestor);

    public void Dispose()
    {
        _disposed = true;
        _sweeper?.Dispose();
        LibC.SignalEventFd(_wake);
        _watcher?.Join(TimeSpan.FromSeconds(1));
        _epoll.Dispose();
        _wake.Dispose();
        foreach (CallerInfo c in _cache.Values) c.Dispose();
        _cache.Clear();
        Container.Dispose();
    }
}
