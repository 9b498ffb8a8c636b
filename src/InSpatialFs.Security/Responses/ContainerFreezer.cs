using InSpatialFs.Interop;
using InSpatialFs.Security.Identity;

namespace InSpatialFs.Security.Responses;

/// <summary>A process stopped with SIGSTOP, held by a pidfd the suspension owns (never one the caller cache may release).</summary>
public sealed record StoppedProcess(int Pid, string Name, SafeFd PidFd);

/// <summary>
/// How a container was suspended, so resume can undo exactly that: the cgroup frozen (v1 or v2) or the processes
/// stopped, plus the attempts that failed on the way (each one also an incident and a log line).
/// </summary>
public sealed record SuspendHandle(string Method, string? CgroupDir, IReadOnlyList<StoppedProcess> StoppedProcesses)
{
    public const string V1 = "cgroup-v1-freezer", V2 = "cgroup-v2-freeze", SigStop = "sigstop";

    /// <summary>Attempts that failed before this method worked ("cgroup-v1-freezer /x: ...").</summary>
    public IReadOnlyList<string> Failures { get; init; } = [];

    public override string ToString() => CgroupDir is null ? $"{Method} ({StoppedProcesses.Count} processes)" : $"{Method} {CgroupDir}";
}

/// <summary>
/// Freezes and thaws a container: the v1 freezer (<c>freezer.state</c>) when the cgroup exists there, else v2
/// <c>cgroup.freeze</c>, else SIGSTOP through a pidfd of each member. A method that fails falls through to the next
/// and is reported in <see cref="SuspendHandle.Failures"/>; nothing here throws for a failed write. Guards, checked
/// before anything is written: the caller must be a container member, the cgroup must not be the root, and it must
/// not contain the daemon itself (an ancestor of, or equal to, this process's cgroup).
/// </summary>
public sealed class ContainerFreezer
{
    private readonly string _v1FreezerRoot;
    private readonly string _v2Root;
    private readonly CgroupPaths _self;

    public ContainerFreezer(string v1FreezerRoot = "/sys/fs/cgroup/freezer", string? v2Root = null, CgroupPaths? self = null)
    {
        _v1FreezerRoot = v1FreezerRoot;
        _v2Root = v2Root ?? (File.Exists("/sys/fs/cgroup/cgroup.controllers") ? "/sys/fs/cgroup" : "/sys/fs/cgroup/unified");
        _self = self ?? CgroupPaths.Parse(File.ReadAllText("/proc/self/cgroup"));
    }

    public TimeSpan FreezeTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Why freezing this cgroup (v1 freezer or v2 path) is refused, or null when it is safe.</summary>
    public string? Refusal(string cgroupPath, bool v1)
    {
        if (cgroupPath is "/" or "") return "refusing to freeze the root cgroup";
        string? mine = v1 ? _self.Freezer : _self.Unified;
        if (mine is not null && CallerRegistry.IsAtOrBelow(mine, cgroupPath)) return $"refusing to freeze {cgroupPath}: it contains the daemon";
        return null;
    }

    /// <summary>
    /// Suspends the container <paramref name="caller"/> belongs to: its cgroup (or <paramref name="configuredCgroup"/>),
    /// else SIGSTOP of <paramref name="members"/>. Throws InvalidOperationException only when the caller is not a member.
    /// </summary>
    public SuspendHandle Freeze(CallerInfo caller, IEnumerable<CallerInfo> members, string? configuredCgroup)
    {
        ArgumentNullException.ThrowIfNull(caller);
        if (!caller.IsContainerMember) throw new InvalidOperationException($"refusing to suspend for pid {caller.Pid} ({caller.Name}): not a container member");

        var failures = new List<string>();
        if (TryFreezeCgroup(configuredCgroup ?? caller.Cgroups.Freezer, configuredCgroup ?? caller.Cgroups.Unified, failures) is SuspendHandle h) return h;
        return Stop(members.Append(caller), failures);
    }

    /// <summary>SIGSTOP of every member through a pidfd of its own (the daemon and host processes are skipped).</summary>
    public static SuspendHandle Stop(IEnumerable<CallerInfo> members, List<string> failures)
    {
        ArgumentNullException.ThrowIfNull(members);
        var stopped = new List<StoppedProcess>();
        HashSet<int> untouchable = DaemonAndAncestors();
        // Released or exited pins first out, so a live pin of the same process is the one kept.
        foreach (CallerInfo m in members.Where(m => !m.HasExited).DistinctBy(m => m.Tgid))
        {
            // Defence in depth behind the membership proof: never init, kernel threads, the daemon or what runs it.
            if (!m.IsContainerMember || m.Tgid <= 2 || m.ParentPid == 2 || untouchable.Contains(m.Tgid)) continue;
#pragma warning disable CA2000 // kept in the stopped list (thawed and disposed by it) or disposed right below
            SafeFd? own = m.DuplicatePidFd();
#pragma warning restore CA2000
            if (own is null) continue; // released meanwhile: the process exited
            Errno e = LibC.PidfdSendSignal(own, LibC.SIGSTOP);
            if (e == Errno.OK)
            {
                stopped.Add(new StoppedProcess(m.Tgid, m.Name, own));
                continue;
            }

            own.Dispose();
            if (e != Errno.ESRCH) failures.Add($"sigstop {m.Name}:{m.Tgid}: {e}");
        }

        return new SuspendHandle(SuspendHandle.SigStop, null, stopped) { Failures = failures };
    }

    /// <summary>This process and its parent chain (the shell, service manager or test runner that started the daemon).</summary>
    private static HashSet<int> DaemonAndAncestors()
    {
        var pids = new HashSet<int>();
        for (int pid = Environment.ProcessId; pid > 1 && pids.Add(pid);)
        {
            if (ProcFs.ReadParentAndStart("/proc", pid) is not (int parent, _)) break;
            pid = parent;
        }

        return pids;
    }

    /// <summary>
    /// Freezes a cgroup by path: the v1 freezer when <paramref name="v1Path"/> exists there, else v2 cgroup.freeze for
    /// <paramref name="v2Path"/>. Null when neither worked; why (a failed write, or a guard that refused: the root
    /// cgroup, one holding the daemon) is added to <paramref name="failures"/>.
    /// </summary>
    public SuspendHandle? TryFreezeCgroup(string? v1Path, string? v2Path, List<string>? failures = null)
    {
        failures ??= [];
        if (v1Path is not null && Directory.Exists(V1Dir(v1Path)))
        {
            string dir = V1Dir(v1Path);
            if (Refusal(v1Path, v1: true) is string why) failures.Add($"{SuspendHandle.V1} {dir}: {why}");
            else if (Attempt(SuspendHandle.V1, dir, () => FreezeV1(dir), failures)) return new SuspendHandle(SuspendHandle.V1, dir, []) { Failures = failures };
        }

        if (v2Path is not null && File.Exists(Path.Combine(V2Dir(v2Path), "cgroup.freeze")))
        {
            string dir = V2Dir(v2Path);
            if (Refusal(v2Path, v1: false) is string why) failures.Add($"{SuspendHandle.V2} {dir}: {why}");
            else if (Attempt(SuspendHandle.V2, dir, () => FreezeV2(dir), failures)) return new SuspendHandle(SuspendHandle.V2, dir, []) { Failures = failures };
        }

        return null;
    }

    private static bool Attempt(string method, string dir, Action freeze, List<string> failures)
    {
        try
        {
            freeze();
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            failures.Add($"{method} {dir}: {ex.Message}");
            return false;
        }
    }

    private string V1Dir(string cgroup) => Path.Combine(_v1FreezerRoot, cgroup.TrimStart('/'));

    private string V2Dir(string cgroup) => Path.Combine(_v2Root, cgroup.TrimStart('/'));

    /// <summary>
    /// Undoes a suspension: thaws the cgroup, or sends SIGCONT to every stopped process through the suspension's own
    /// pidfds (then releases them). Returns what failed (empty when everything thawed); never throws for a failed write.
    /// </summary>
    public static IReadOnlyList<string> Thaw(SuspendHandle h)
    {
        ArgumentNullException.ThrowIfNull(h);
        var failures = new List<string>();
        try
        {
            switch (h.Method)
            {
                case SuspendHandle.V1:
                    File.WriteAllText(Path.Combine(h.CgroupDir!, "freezer.state"), "THAWED");
                    break;
                case SuspendHandle.V2:
                    File.WriteAllText(Path.Combine(h.CgroupDir!, "cgroup.freeze"), "0");
                    break;
                default:
                    foreach (StoppedProcess p in h.StoppedProcesses)
                    {
                        Errno e = LibC.PidfdSendSignal(p.PidFd, LibC.SIGCONT);
                        if (e is not Errno.OK and not Errno.ESRCH) failures.Add($"sigcont {p.Name}:{p.Pid}: {e}");
                        p.PidFd.Dispose();
                    }

                    break;
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            failures.Add($"{h.Method} {h.CgroupDir}: {ex.Message}");
        }

        return failures;
    }

    /// <summary>Writes FROZEN and waits (bounded) for the state to settle. A task stuck in a FUSE request the daemon is answering keeps FREEZING until answered, so this must not run on a request thread.</summary>
    private void FreezeV1(string dir)
    {
        string state = Path.Combine(dir, "freezer.state");
        File.WriteAllText(state, "FROZEN");
        WaitFor(() => File.ReadAllText(state).Trim() == "FROZEN");
    }

    private void FreezeV2(string dir)
    {
        File.WriteAllText(Path.Combine(dir, "cgroup.freeze"), "1");
        string events = Path.Combine(dir, "cgroup.events");
        WaitFor(() => File.ReadLines(events).Any(l => l.Trim() == "frozen 1"));
    }

    private void WaitFor(Func<bool> done)
    {
        DateTime until = DateTime.UtcNow + FreezeTimeout;
        while (!done() && DateTime.UtcNow < until) Thread.Sleep(5);
    }

    /// <summary>Kills one container member through a pidfd of its own (never a host process, never the daemon).</summary>
    public static Errno Kill(CallerInfo caller)
    {
        ArgumentNullException.ThrowIfNull(caller);
        if (!caller.IsContainerMember) throw new InvalidOperationException($"refusing to kill pid {caller.Pid} ({caller.Name}): not a container member");
        if (caller.Tgid == Environment.ProcessId) throw new InvalidOperationException("refusing to kill the daemon");
        using SafeFd? own = caller.DuplicatePidFd();
        return own is null ? Errno.ESRCH : LibC.PidfdSendSignal(own, LibC.SIGKILL);
    }
}
