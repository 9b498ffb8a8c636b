using System.Collections.Concurrent;
using InSpatialFs.Interop;
using InSpatialFs.Security.Identity;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.Security.Responses;

/// <summary>
/// Takes responses: block a process, suspend the container (cgroup v1 freezer, v2 cgroup.freeze, SIGSTOP of every
/// member), kill a member, resume. Suspend and kill reach container members only; a host process gets a block.
/// A response that fails is reported through <paramref name="onFailure"/> (the manager makes it an incident and a
/// log line) and never throws; resume undoes whatever the suspension did, through descriptors it owns.
/// While suspended, further operations of members fail with EPERM at once (see SecurityManager).
/// Lock order: _gate only.
/// </summary>
internal sealed class Responder(
    CallerRegistry callers,
    ContainerFreezer? freezer,
    string? configuredCgroup,
    ILogger log,
    Action<string, string> onFailure) : IDisposable
{
    /// <summary>SIGSTOP passes over /proc: processes forked while the first pass stopped others are caught by the next.</summary>
    private const int StopPasses = 3;

    private readonly ConcurrentDictionary<(int Tgid, ulong Start), CallerInfo> _blocked = new();
    private readonly object _gate = new();
    private volatile bool _suspended;
    private volatile int _blockedCount;
    private SuspendHandle? _handle;
    private Task? _task;
    private long _resumedAtNanos;

    public bool IsSuspended => _suspended;

    /// <summary>How the current suspension was done (null when not suspended or still freezing).</summary>
    public SuspendHandle? Current
    {
        get
        {
            lock (_gate) return _handle;
        }
    }

    public int BlockedCount => _blocked.Count;

    /// <summary>
    /// Called (on the thread taking the response, which may be a FUSE reader: it must not block) when a process is newly
    /// blocked or the container newly marked suspended: answers the kernel may have cached for them are now wrong.
    /// </summary>
    public Action<string>? AnswersChanged { get; set; }

    /// <summary>Lock-free on the request path: a volatile count first, the dictionary only when something is blocked.</summary>
    public bool IsBlocked(CallerInfo caller) => _blockedCount != 0 && _blocked.ContainsKey((caller.Tgid, caller.ProcessStartTime));

    /// <summary>Blocks a process: every further op from it fails with EPERM until <see cref="Resume"/>.</summary>
    public void Block(CallerInfo caller)
    {
        if (_blocked.TryAdd((caller.Tgid, caller.ProcessStartTime), caller))
        {
            _blockedCount = _blocked.Count;
            AnswersChanged?.Invoke("process " + caller.Tgid + " blocked");
        }
    }

    /// <summary>Marks the container suspended before the freeze runs (an inline detection: the very next request must fail).</summary>
    public void MarkSuspended(CallerInfo caller)
    {
        if (caller.IsContainerMember && !_suspended)
        {
            _suspended = true;
            AnswersChanged?.Invoke("container suspended");
        }
    }

    /// <summary>True while a freeze started by <see cref="Suspend"/> is still running.</summary>
    public bool Busy
    {
        get
        {
            Task? t = Volatile.Read(ref _task);
            return t is not null && !t.IsCompleted;
        }
    }

    /// <summary>
    /// Suspends the container the caller belongs to. Host processes (and pid 0) are never frozen: they get a
    /// block-process instead. The freeze runs off the request and consumer threads (a member blocked in a FUSE
    /// request cannot freeze until it is answered). Returns the response taken, for the incident.
    /// </summary>
    /// <param name="eventTimeNanos">evt.time of what caused it (0: now). An event from before the operator's last resume
    /// was already answered by the suspension the operator lifted: a late-analysed one must not suspend again.</param>
    public string Suspend(CallerInfo? caller, string why, long eventTimeNanos = 0)
    {
        if (eventTimeNanos != 0 && eventTimeNanos < Volatile.Read(ref _resumedAtNanos)) return "suspend skipped (resumed by the operator since)";
        if (caller is null || !caller.IsContainerMember)
        {
            if (caller is not null) Block(caller);
            SecurityLog.ResponseRefused(log, $"suspend refused for pid {caller?.Pid ?? 0}: not a container member");
            return caller is null ? "suspend refused (no caller)" : "block-process (host process: suspend refused)";
        }

        lock (_gate)
        {
            if (_suspended && (_task is not null || _handle is not null)) return "suspend (already suspended)";
            _suspended = true;
            if (freezer is null)
            {
                Block(caller);
                return "suspend (no freezer: block-process)";
            }

            ContainerFreezer f = freezer;
            _task = Task.Run(() => Freeze(f, caller, why));
            return "suspend";
        }
    }

    private void Freeze(ContainerFreezer f, CallerInfo caller, string why)
    {
        SuspendHandle h;
        try
        {
            var failures = new List<string>();
            h = f.TryFreezeCgroup(configuredCgroup ?? caller.Cgroups.Freezer, configuredCgroup ?? caller.Cgroups.Unified, failures)
                ?? StopAllMembers(caller, failures);
        }
        catch (InvalidOperationException ex)
        {
            // A guard refused: the container stays suspended in the daemon's eyes (its ops keep failing) until resume.
            SecurityLog.ResponseRefused(log, ex.Message);
            onFailure("suspend", ex.Message);
            return;
        }
        catch (Exception ex)
        {
            SecurityLog.ResponseFailed(log, ex, "freeze");
            onFailure("suspend", ex.Message);
            return;
        }

        lock (_gate) _handle = h;
        foreach (string failure in h.Failures) onFailure("suspend", failure + $" (fell back to {h.Method})");
        SecurityLog.Suspended(log, $"{h} ({why})");
    }

    /// <summary>The last resort: SIGSTOP every member, pinned ones and those /proc shows, in a few passes.</summary>
    private SuspendHandle StopAllMembers(CallerInfo caller, List<string> failures)
    {
        var stopped = new List<StoppedProcess>();
        var done = new HashSet<int>();
        for (int pass = 0; pass < StopPasses; pass++)
        {
            List<CallerInfo> scanned = callers.ScanMembers();
            try
            {
                IEnumerable<CallerInfo> fresh = callers.Snapshot().Where(c => c.IsContainerMember).Concat(scanned).Append(caller)
                    .Where(c => !done.Contains(c.Tgid));
                SuspendHandle h = ContainerFreezer.Stop(fresh, failures);
                if (h.StoppedProcesses.Count == 0) break;
                foreach (StoppedProcess p in h.StoppedProcesses)
                {
                    done.Add(p.Pid);
                    stopped.Add(p);
                }
            }
            finally
            {
                foreach (CallerInfo c in scanned) c.Dispose();
            }
        }

        return new SuspendHandle(SuspendHandle.SigStop, null, stopped) { Failures = failures };
    }

    /// <summary>
    /// Operator suspend (control file "suspend"): a live member seen so far, else the configured container cgroup,
    /// else the recorded init. Returns the response taken, or why it was refused.
    /// </summary>
    public string SuspendContainer(string why)
    {
        CallerInfo? member = callers.Snapshot().FirstOrDefault(c => c.IsContainerMember && !c.HasExited);
        if (member is not null) return Suspend(member, why);
#pragma warning disable CA2000 // disposed on every path below (after the freeze task when one runs)
        if (callers.Container.Init is { } init && callers.Pin(init.Pid) is { } pinned)
#pragma warning restore CA2000
        {
            if (!pinned.IsContainerMember)
            {
                pinned.Dispose(); // recorded, but not proven a member (now): not ours to suspend
            }
            else
            {
                // The pin only serves this suspension: the freeze duplicates any pidfd it keeps.
                string taken = Suspend(pinned, why);
                Task? t = Volatile.Read(ref _task);
                if (t is null) pinned.Dispose();
                else t.ContinueWith(_ => pinned.Dispose(), TaskScheduler.Default);
                return taken;
            }
        }

        if (configuredCgroup is not string cg || freezer is null) return "suspend refused: no container member seen, no container cgroup or init configured";
        lock (_gate)
        {
            if (_suspended) return "suspend (already suspended)";
            var failures = new List<string>();
            SuspendHandle? h = freezer.TryFreezeCgroup(cg, cg, failures);
            if (h is null)
            {
                string failed = failures.Count == 0 ? "not found" : string.Join("; ", failures);
                SecurityLog.ResponseRefused(log, $"suspend of cgroup {cg}: {failed}");
                return $"suspend refused: cgroup {cg}: {failed}";
            }

            foreach (string failure in failures) onFailure("suspend", failure);
            _handle = h;
            _suspended = true;
            SecurityLog.Suspended(log, $"{h} ({why})");
            return "suspend";
        }
    }

    /// <summary>Kills a member through a pidfd of its own; a host process gets a block instead.</summary>
    public string Kill(CallerInfo? caller)
    {
        if (caller is null || !caller.IsContainerMember)
        {
            if (caller is not null) Block(caller);
            return caller is null ? "kill refused (no caller)" : "block-process (host process: kill refused)";
        }

        if (!callers.StillSameProcess(caller)) return "kill skipped (process gone)";
        try
        {
            Errno e = ContainerFreezer.Kill(caller);
            if (e == Errno.OK) return "kill";
            onFailure("kill", $"kill {caller}: {e}");
            return $"kill failed ({e})";
        }
        catch (InvalidOperationException ex)
        {
            SecurityLog.ResponseRefused(log, ex.Message);
            return "kill refused";
        }
    }

    /// <summary>Thaws (or continues) whatever the suspension froze or stopped, and lifts every process block.</summary>
    public void Resume()
    {
        Task? pending;
        lock (_gate) pending = _task;
        pending?.Wait(TimeSpan.FromSeconds(30));
        lock (_gate)
        {
            if (_handle is SuspendHandle h)
            {
                IReadOnlyList<string> failed = ContainerFreezer.Thaw(h);
                foreach (string failure in failed)
                {
                    SecurityLog.ResponseRefused(log, "resume: " + failure);
                    onFailure("resume", failure);
                }

                SecurityLog.Resumed(log, h.ToString());
            }

            _handle = null;
            _task = null;
            _suspended = false;
            Volatile.Write(ref _resumedAtNanos, Events.FsEvent.NowUnixNanos());
            _blocked.Clear();
            _blockedCount = 0;
        }
    }

    public void Dispose()
    {
        Task? t;
        lock (_gate) t = _task;
        t?.Wait(TimeSpan.FromSeconds(10));
        lock (_gate)
        {
            if (_handle is { Method: SuspendHandle.SigStop } h)
            {
                foreach (StoppedProcess p in h.StoppedProcesses) p.PidFd.Dispose();
            }
        }
    }
}
