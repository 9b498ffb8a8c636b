using System.Globalization;
using InSpatialFs.Interop;

namespace InSpatialFs.Security.Identity;

/// <summary>The container's init as the engine reported it: pinned by a pidfd, with its pid namespace.</summary>
public sealed record ContainerInit(int Pid, ulong StartTime, NamespaceId PidNamespace, SafeFd PidFd)
{
    public override string ToString() => $"{Pid} (pid namespace {PidNamespace})";
}

/// <summary>
/// What proves that a caller is the container (ARCHITECTURE.md "Who is the container"), strongest first:
/// <list type="number">
/// <item>its cgroup is at or below the configured <c>container.cgroup</c>;</item>
/// <item>its pid namespace is the container's or nested in it: recorded from the init (<c>container.init_pid</c>,
/// control command <c>container-init PID</c>), or learned from the first member the fallback admits;</item>
/// <item>its parent chain reaches the recorded init, or a process already pinned as a member;</item>
/// <item>fallback, only while neither a cgroup nor an init is known (a mount program that knows no init yet): its root
/// directory lies on the mount and it is in the daemon's (the initial) user namespace.</item>
/// </list>
/// A process that changes its root stays a member by 1-3; a host process in a user namespace of its own
/// (<c>unshare -Ur chroot MOUNTPOINT</c>) never passes 4 and cannot enter the container's cgroup, namespace or ancestry.
/// The pid-namespace proof is refused for an init that shares the daemon's pid namespace (every host process would pass).
/// </summary>
public sealed class ContainerIdentity : IDisposable
{
    private readonly string? _mountpoint;
    private readonly string? _cgroup;
    private readonly string _procRoot;
    private ContainerInit? _init;
    private long _learnedPidNsInode, _learnedPidNsDevice;
    private long _mountDevice;

    public ContainerIdentity(string? mountpoint, string? cgroup, string procRoot = "/proc")
    {
        _mountpoint = mountpoint is null ? null : Normalize(mountpoint);
        _cgroup = cgroup is null || Normalize(cgroup) == "/" ? null : Normalize(cgroup);
        _procRoot = procRoot;
        string self = Path.Combine(procRoot, "self");
        HostPidNamespace = ProcFs.ReadNamespace(self, "pid");
        HostUserNamespace = ProcFs.ReadNamespace(self, "user");
    }

    /// <summary>The daemon's own pid namespace: a container "namespace" equal to it proves nothing.</summary>
    public NamespaceId HostPidNamespace { get; }
    /// <summary>The daemon's user namespace, taken as the initial one (a process outside it is not a host operator).</summary>
    public NamespaceId HostUserNamespace { get; }
    public string? Cgroup => _cgroup;
    public ContainerInit? Init => Volatile.Read(ref _init);

    /// <summary>The container's pid namespace: the init's, else the one learned through the fallback (unknown when neither).</summary>
    public NamespaceId PidNamespace
    {
        get
        {
            if (Init is { } init && init.PidNamespace != HostPidNamespace) return init.PidNamespace;
            return new NamespaceId((ulong)Volatile.Read(ref _learnedPidNsDevice), (ulong)Volatile.Read(ref _learnedPidNsInode));
        }
    }

    /// <summary>True when a cgroup or an init proves membership, so the root-directory fallback is off.</summary>
    public bool HasProof => _cgroup is not null || Init is not null;

    /// <summary>The device (st_dev) of the container mount, once it is mounted.</summary>
    public void SetMountDevice(uint major, uint minor) => Volatile.Write(ref _mountDevice, ((long)major << 32) | minor);

    /// <summary>True when /proc/PID/root lies on the container mount (by device), or the root path is at/below the mountpoint.</summary>
    internal bool RootIsOnMount(string procDir, string? root)
    {
        if (_mountpoint is not null && _mountpoint != "/" && root is not null && IsAtOrBelow(Normalize(root), _mountpoint)) return true;
        long device = Volatile.Read(ref _mountDevice);
        // 0:0 is never a mounted filesystem's device
        return device != 0 && ProcFs.TryDevice(Path.Combine(procDir, "root"), out ulong d) && (long)d == device;
    }

    /// <summary>
    /// Records the container's init (pinned by a pidfd; its pid namespace becomes the container's unless it is the
    /// daemon's own). Returns null on success, else why it was refused; a second call replaces the first.
    /// </summary>
    public string? RecordInit(int pid)
    {
        if (pid <= 1) return $"container-init {pid}: not a container init";
        if (pid == Environment.ProcessId) return "container-init: that is the daemon";
#pragma warning disable CA2000 // disposed on each refusal below; on success the record owns it (and the replaced record's is disposed)
        Errno e = LibC.PidfdOpen(pid, out SafeFd pidfd);
#pragma warning restore CA2000
        if (e != Errno.OK)
        {
            pidfd.Dispose();
            return $"container-init {pid}: {e}";
        }

        string dir = Path.Combine(_procRoot, pid.ToString(CultureInfo.InvariantCulture));
        NamespaceId ns = ProcFs.ReadNamespace(dir, "pid");
        (int, ulong)? stat = ProcFs.ReadParentAndStart(_procRoot, pid);
        if (stat is not (_, ulong start) || !ns.IsKnown || LibC.PidfdHasExited(pidfd))
        {
            pidfd.Dispose();
            return $"container-init {pid}: the process is gone";
        }

        Interlocked.Exchange(ref _init, new ContainerInit(pid, start, ns, pidfd))?.PidFd.Dispose();
        return null;
    }

    /// <summary>Decides membership from a pin's facts. <paramref name="isPinnedMember"/> answers "is (pid, start time) a pinned member?".</summary>
    /// <param name="oldestMemberStart">The earliest start time among pinned members (ulong.MaxValue when none), asked
    /// only if the ancestry is walked.</param>
    /// <param name="reads">The pin's stat reads (ancestors' stat files are read through it), or null to read afresh.</param>
    internal Membership Classify(ProcessFacts f, string procDir, Func<int, ulong, bool> isPinnedMember, Func<ulong> oldestMemberStart, StatReads? reads = null)
    {
        if (_cgroup is not null && f.Cgroups.All.Any(p => IsAtOrBelow(p, _cgroup))) return Membership.Cgroup;

        NamespaceId ns = PidNamespace;
        if (ns.IsKnown && f.PidNamespace.IsKnown && f.PidNamespace != HostPidNamespace
            && (f.PidNamespace == ns || ProcFs.PidNamespaceDescendsFrom(procDir, ns)))
        {
            return Membership.PidNamespace;
        }

        if (Ancestry(f, isPinnedMember, oldestMemberStart, reads) is Membership byAncestry) return byAncestry;

        if (!HasProof && f.RootOnMount && f.UserNamespace == HostUserNamespace)
        {
            Learn(f.PidNamespace);
            return Membership.RootOnMount;
        }

        return Membership.Host;
    }

    /// <summary>
    /// Walks the parent chain (start times checked, so a reused pid never counts) up to the init or a pinned member. A
    /// parent starts no later than its child, so the walk ends at the first ancestor that started before the init and
    /// every pinned member (none of them can be it or above it), and is not taken at all when there is neither: a host
    /// process then costs no read of its ancestors' stat files.
    /// </summary>
    private Membership? Ancestry(ProcessFacts f, Func<int, ulong, bool> isPinnedMember, Func<ulong> oldestMemberStart, StatReads? reads)
    {
        ContainerInit? init = Init;
        if (init is not null && f.Tgid == init.Pid && f.ProcessStartTime == init.StartTime) return Membership.InitAncestry;
        ulong floor = Math.Min(init?.StartTime ?? ulong.MaxValue, oldestMemberStart());
        if (floor == ulong.MaxValue) return null;
        int pid = f.ParentPid;
        ulong childStart = f.ProcessStartTime;
        for (int depth = 0; depth < 64 && pid > 1; depth++)
        {
            if (ProcFs.ReadParentAndStart(_procRoot, pid, reads) is not (int parent, ulong start) || start > childStart || start < floor) return null;
            if (init is not null && pid == init.Pid && start == init.StartTime) return Membership.InitAncestry;
            if (isPinnedMember(pid, start)) return Membership.MemberAncestry;
            childStart = start;
            pid = parent;
        }

        return null;
    }

    private void Learn(NamespaceId ns)
    {
        if (!ns.IsKnown || ns == HostPidNamespace || Volatile.Read(ref _learnedPidNsInode) != 0) return;
        // Device first: a reader that sees the inode sees its device (both are read after the inode).
        Volatile.Write(ref _learnedPidNsDevice, (long)ns.Device);
        Interlocked.CompareExchange(ref _learnedPidNsInode, (long)ns.Inode, 0);
    }

    /// <summary>One line for status: which proofs are in force.</summary>
    public string Describe()
    {
        var parts = new List<string>();
        if (_cgroup is not null) parts.Add("cgroup " + _cgroup);
        if (Init is { } init) parts.Add(init.PidNamespace == HostPidNamespace ? $"init {init.Pid} ancestry (shares the host pid namespace)" : $"init {init} and its descendants");
        else if (PidNamespace.IsKnown) parts.Add($"pid namespace {PidNamespace} (learned)");
        if (parts.Count == 0 || !HasProof) parts.Add("root on the mount in the initial user namespace (fallback: no cgroup or init configured)");
        parts.Add("children of members");
        return string.Join("; ", parts);
    }

    internal static bool IsAtOrBelow(string path, string ancestor) =>
        path == ancestor || (path.StartsWith(ancestor, StringComparison.Ordinal) && (ancestor == "/" || (path.Length > ancestor.Length && path[ancestor.Length] == '/')));

    internal static string Normalize(string p) => p.Length > 1 ? p.TrimEnd('/') : p;

    public void Dispose() => Interlocked.Exchange(ref _init, null)?.PidFd.Dispose();
}
