using InSpatialFs.Interop;
using InSpatialFs.Security.Identity;

namespace InSpatialFs.Security.Responses;

/// <summary>How a container was suspended, so resume can undo exactly that.</summary>
public sealed record SuspendHandle(string Method, string? CgroupDir, IReadOnlyList<CallerInfo> StoppedProcesses)
{
    public override string ToString() => CgroupDir is null ? $"{Method} ({StoppedProcesses.Count} processes)" : $"{Method} {CgroupDir}";
}

/// <summary>
/// Freezes and thaws a container's cgroup: the v1 freezer (<c>freezer.state</c>) when the caller has a
/// freezer cgroup, else v2 <c>cgroup.freeze</c>, else SIGSTOP through each member's pidfd. Guards, checked
/// before anything is written: the caller must be a container member, the cgroup must not be the root,
/// and it must not contain the daemon itself (an ancestor of, or equal to, this process's cgroup).
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

    /// <summary>Suspends the container <paramref name="caller"/> belongs to. Returns the handle, or throws InvalidOperationException with the guard that refused.</summary>
    public SuspendHandle Freeze(CallerInfo caller, IEnumerable<CallerInfo> members, string? configuredCgroup)
    {
        if (!caller.IsContainerMember) throw new InvalidOperationException($"refusing to suspend for pid {caller.Pid} ({caller.Name}): not a container member");

        if (TryFreezeCgroup(configuredCgroup ?? caller.Cgroups.Freezer, configuredCgroup ?? caller.Cgroups.Unified) is SuspendHandle h) return h;

        var stopped = new List<CallerInfo>();
        int self = Environment.ProcessId;
        foreach (CallerInfo m in members.Append(caller).DistinctBy(m => m.Tgid))
        {
            if (!m.IsContainerMember || m.Tgid == self || m.PidFd is null) continue;
            if (LibC.PidfdSendSignal(m.PidFd, LibC.SIGSTOP) == Errno.OK) stopped.Add(m);
        }

        return new SuspendHandle("sigstop", null, stopped);
    }

    /// <summary>
    /// Freezes a cgroup by path: the v1 freezer when <paramref name="v1Path"/> exists there, else v2
    /// cgroup.freeze for <paramref name="v2Path"/>. Null when neither hierarchy has it; throws
    /// InvalidOperationException when a guard refuses.
    /// </summary>
    public SuspendHandle? TryFreezeCgroup(string? v1Path, string? v2Path)
    {
        if (v1Path is not null && Directory.Exists(Path.Combine(_v1FreezerRoot, v1Path.TrimStart('/'))))
        {
            if (Refusal(v1Path, v1: true) is string why) throw new InvalidOperationException(why);
            string dir = Path.Combine(_v1FreezerRoot, v1Path.TrimStart('/'));
            FreezeV1(dir);
            return new SuspendHandle("cgroup-v1-freezer", dir, []);
        }

        if (v2Path is not null && File.Exists(Path.Combine(_v2Root, v2Path.TrimStart('/'), "cgroup.freeze")))
        {
            if (Refusal(v2Path, v1: false) is string why) throw new InvalidOperationException(why);
            string dir = Path.Combine(_v2Root, v2Path.TrimStart('/'));
            FreezeV2(dir);
            return new SuspendHandle("cgroup-v2-freeze", dir, []);
        }

        return null;
    }

    public void Thaw(SuspendHandle h)
    {
        switch (h.Method)
        {
            case "cgroup-v1-freezer":
                File.WriteAllText(Path.Combine(h.CgroupDir!, "freezer.state"), "THAWED");
                break;
            case "cgroup-v2-freeze":
                File.WriteAllText(Path.Combine(h.CgroupDir!, "cgroup.freeze"), "0");
                break;
            default:
                foreach (CallerInfo m in h.StoppedProcesses)
                {
                    if (m.PidFd is { IsClosed: false }) LibC.PidfdSendSignal(m.PidFd, LibC.SIGCONT);
                }

                break;
        }
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

    /// <summary>Kills one container member through its pidfd (never a host process, never the daemon).</summary>
    public static Errno Kill(CallerInfo caller)
    {
        if (!caller.IsContainerMember) throw new InvalidOperationException($"refusing to kill pid {caller.Pid} ({caller.Name}): not a container member");
        if (caller.Tgid == Environment.ProcessId) throw new InvalidOperationException("refusing to kill the daemon");
        if (caller.PidFd is null) return Errno.ESRCH;
        return LibC.PidfdSendSignal(caller.PidFd, LibC.SIGKILL);
    }
}
