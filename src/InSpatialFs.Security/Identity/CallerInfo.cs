using InSpatialFs.Interop;

namespace InSpatialFs.Security.Identity;

/// <summary>Why a caller is (or is not) treated as part of the container; see README "Who is the container".</summary>
public enum Membership : byte
{
    /// <summary>A host process: never suspended or killed, and held to <c>host_users</c>.</summary>
    Host,
    /// <summary>Its cgroup is at or below the configured container cgroup.</summary>
    Cgroup,
    /// <summary>Its pid namespace is the container's (recorded from the init, or learned) or a descendant of it.</summary>
    PidNamespace,
    /// <summary>Its parent chain reaches the recorded container init.</summary>
    InitAncestry,
    /// <summary>Its parent chain reaches a process already pinned as a member (it was forked inside the container).</summary>
    MemberAncestry,
    /// <summary>
    /// Fallback while nothing better is known: its root directory lies on the mount and it is in the initial user
    /// namespace. Never used once a cgroup or an init is configured.
    /// </summary>
    RootOnMount,
}

/// <summary>
/// One caller as first seen: pinned by a pidfd on its process (thread group leader), with what /proc said
/// while the pidfd was known to be live. Responses go through <see cref="PidFd"/>, so they reach the
/// process that acted, never a later holder of the same pid.
/// </summary>
public sealed class CallerInfo : IDisposable
{
    private volatile Membership _membership;

    internal CallerInfo(ProcessFacts facts, string name, Membership membership, SafeFd? pidFd)
    {
        Pid = facts.Pid;
        Tgid = facts.Tgid;
        Name = name;
        StartTime = facts.StartTime;
        ProcessStartTime = facts.ProcessStartTime;
        ParentPid = facts.ParentPid;
        Cgroups = facts.Cgroups;
        Root = facts.Root;
        RootOnMount = facts.RootOnMount;
        PidNamespace = facts.PidNamespace;
        UserNamespace = facts.UserNamespace;
        _membership = membership;
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
    /// <summary>The parent's pid when first seen (0 when unknown).</summary>
    public int ParentPid { get; }
    public CgroupPaths Cgroups { get; }
    /// <summary>Where /proc/PID/root pointed, or null if unreadable.</summary>
    public string? Root { get; }
    /// <summary>Whether the root directory lay on the container mount (by device) or at/below its mountpoint.</summary>
    public bool RootOnMount { get; }
    public NamespaceId PidNamespace { get; }
    public NamespaceId UserNamespace { get; }

    /// <summary>Why the caller is (not) a member; may change once, when the container's init is recorded.</summary>
    public Membership Membership
    {
        get => _membership;
        internal set => _membership = value;
    }

    public bool IsContainerMember => _membership != Membership.Host;
    public SafeFd? PidFd { get; }

    /// <summary>Environment.TickCount64 from which a cache hit looks at the name and image again (CallerRegistry.ImageRecheck).</summary>
    internal long NextImageCheck;

    /// <summary>proc.* fields of the process (read once when it was pinned); null when /proc could not be read.</summary>
    public ProcessContext? Process { get; internal set; }

    /// <summary>True once the process has exited, or once this pin was released (a released pin must not be acted on). False without a pidfd.</summary>
    public bool HasExited
    {
        get
        {
            if (PidFd is not SafeFd fd || fd.IsClosed) return PidFd is not null;
            try
            {
                return LibC.PidfdHasExited(fd);
            }
            catch (ObjectDisposedException)
            {
                return true; // released between the check and the poll
            }
        }
    }

    /// <summary>
    /// A second descriptor on the same process, owned by the caller of this method (null once this pin is released).
    /// Responses hold their own so a pin released by the cache (exit, exec refresh, eviction) never breaks a resume.
    /// </summary>
    internal SafeFd? DuplicatePidFd()
    {
        if (PidFd is not SafeFd fd) return null;
        bool added = false;
        try
        {
            fd.DangerousAddRef(ref added);
            int dup = LibC.fcntl(fd.Fd, LibC.F_DUPFD_CLOEXEC, 0);
            return dup < 0 ? null : new SafeFd(dup);
        }
        catch (ObjectDisposedException)
        {
            return null;
        }
        finally
        {
            if (added) fd.DangerousRelease();
        }
    }

    public override string ToString() => $"{Name}:{Tgid}";

    public void Dispose() => PidFd?.Dispose();
}

/// <summary>The caller's cgroup paths: v1 freezer hierarchy and the v2 (unified) one; null when absent.</summary>
public sealed record CgroupPaths(string? Freezer, string? Unified, IReadOnlyList<string> All)
{
    public static readonly CgroupPaths None = new(null, null, []);

    /// <summary>The text last parsed and what it gave (one object, so that both are read together).</summary>
    private sealed record Parsed(string Text, CgroupPaths Paths);

    private static volatile Parsed? s_last;

    /// <summary>
    /// Parses /proc/PID/cgroup ("ID:controllers:path" per line). The processes that come one after another (a shell's
    /// children, a build's compilers) mostly share their cgroups, so the same text gives back the same (immutable) result.
    /// </summary>
    public static CgroupPaths Parse(string text)
    {
        if (s_last is { } last && last.Text == text)
        {
            return last.Paths;
        }

        CgroupPaths parsed = ParseText(text);
        s_last = new Parsed(text, parsed);
        return parsed;
    }

    private static CgroupPaths ParseText(string text)
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
