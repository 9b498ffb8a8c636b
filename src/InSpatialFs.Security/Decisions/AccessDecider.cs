using System.Diagnostics;
using InSpatialFs.Interop;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Identity;
using InSpatialFs.Security.Policy;
using InSpatialFs.Security.Resources;
using InSpatialFs.Security.Responses;

namespace InSpatialFs.Security.Decisions;

/// <summary>An inline rule fired during a decision (request thread): the caller as pinned for it.</summary>
internal delegate void InlineDetectionHandler(Detection detection, FsEvent access, CallerInfo? caller);

/// <summary>
/// The decision step, and only it: policy + isolation level + controls + limits + inline rules → <see cref="Verdict"/>.
/// Order: caller identity → blocked process → suspended container → host_users → path policy → privilege and code
/// controls → throttle → inline rules. While the container is suspended its further operations fail with EPERM rather
/// than being held: holding them would park FUSE reader threads and starve every other caller, including the operator's.
/// Runs on request threads, takes no lock; the path policy is swapped whole by a reload (<see cref="ReplacePolicy"/>).
/// It also fills the request's decided fields (class, decision, reason, exec, caller) into the event the proxy records.
/// </summary>
internal sealed class AccessDecider
{
    [ThreadStatic]
    private static List<Detection>? t_inlineDetections;

    private readonly IRuleEngine? _rules;
    private readonly MembershipOptions _membership;
    private readonly string _containerName;
    private readonly bool _containerHasQuotas;
    private readonly Responder _responder;
    private readonly DecisionCounters _counters;
    private readonly InlineDetectionHandler _onInlineDetection;

    // Swapped whole by a reload: a decision reads it once and sees the old classes or the new ones.
    private volatile PathPolicy _policy;

    public AccessDecider(SecurityOptions options, EffectiveControls controls, IRuleEngine? rules, CallerRegistry callers, Responder responder,
        ResourceGovernor resources, RuntimeWrittenObjects runtimeWritten, DecisionCounters counters, InlineDetectionHandler onInlineDetection)
    {
        Controls = controls;
        _rules = rules;
        _membership = options.Membership;
        _containerName = options.ContainerName;
        _policy = PathPolicy.FromOptions(options);
        Callers = callers;
        _responder = responder;
        Resources = resources;
        RuntimeWritten = runtimeWritten;
        _counters = counters;
        _onInlineDetection = onInlineDetection;
        ResourceLimits r = controls.Resources;
        _containerHasQuotas = r.DiskBytes is not null || r.Inodes is not null || r.MemoryBytes is not null;
    }

    public EffectiveControls Controls { get; }
    public CallerRegistry Callers { get; }
    public ResourceGovernor Resources { get; }
    public RuntimeWrittenObjects RuntimeWritten { get; }
    public PathPolicy Policy => _policy;

    /// <summary>The container has a disk, inode or memory limit (host_users no-quota-writes looks at it).</summary>
    public bool ContainerHasQuotas => _containerHasQuotas;

    /// <summary>Classes that follow multiply-linked files to their other names.</summary>
    public ProtectedObjects ProtectedObjects { get; } = new();

    /// <summary>A reload's new path classes. Objects already marked through a hard link keep the class they were marked with.</summary>
    public void ReplacePolicy(PathPolicy next) => _policy = next;

    public Verdict Decide(FsEvent a)
    {
        _counters.Decided(a.Op);
        CallerInfo? caller = Identify(a);
        bool member = caller?.IsContainerMember == true;
        if (caller is not null && _responder.IsBlocked(caller)) return Deny(a, Errno.EPERM, VerdictReason.ProcessBlocked, null);
        if (member && _responder.IsSuspended) return Deny(a, Errno.EPERM, VerdictReason.Suspended, null);

        bool exec = a.Op == FsOp.Open && (a.IsExec || (a.Flags & LibC.FMODE_EXEC) != 0);
        a.IsExec |= exec;
        bool write = IsWriteAccess(a);
        // pid 0 is the kernel acting for an earlier request; a pid that could not be pinned (it exited mid-request)
        // is held to host_users, so a process cannot slip past them by exiting.
        if (!member && a.Pid > 0)
        {
            HostAccess hostAccess = a.Uid == 0 ? _membership.HostRoot : _membership.HostUsers;
            if (HostAccessRules.Refusal(hostAccess, a, write, _containerHasQuotas) is VerdictReason hostReason)
            {
                _counters.HostDenied();
                return Deny(a, Errno.EACCES, hostReason, null);
            }
        }

        PathPolicy policy = _policy; // one policy per decision, even across a reload
        PathMatch m = ProtectedObjects.Apply(a.Object, policy.Match(a.Path));
        a.PolicyClass = m.Class;
        if (m.Class == PathClass.Forbidden) return Deny(a, Errno.EACCES, m.Why, m.Class);

        if (exec && caller is not null) Callers.NoteExec(caller.Pid);
        if (write && m.Class == PathClass.ReadOnly) return Deny(a, Errno.EROFS, m.Why, m.Class);

        if (a.Target is string target && a.Op is FsOp.Rename or FsOp.Link or FsOp.CopyFileRange)
        {
            PathMatch t = policy.Match(target);
            if (t.Class == PathClass.Forbidden) return Deny(a, Errno.EACCES, t.Why, m.Class);
            if (t.Class == PathClass.ReadOnly) return Deny(a, Errno.EROFS, t.Why, m.Class);
            if (a.Op == FsOp.Rename)
            {
                // The objects below a renamed directory keep their classes; an exchange moves both ways.
                VerdictReason? exposed = policy.RenameWouldExpose(a.Path, target)
                    ?? ((a.Flags & LibC.RENAME_EXCHANGE) != 0 ? policy.RenameWouldExpose(target, a.Path) : null);
                if (exposed is VerdictReason x) return Deny(a, Errno.EACCES, x, m.Class);
            }
        }

        if (PrivilegeControls.Check(Controls, a, m.Class) is VerdictReason refused) return Deny(a, Errno.EPERM, refused, m.Class);

        // restrict_symlinks: a link whose chain lands on a path the config forbids is refused when made and when read, as
        // one that leaves the namespace (the proxy resolved the chain into fs.link_resolved; "/.." stands for leaving).
        // Not a path only the level's default leaves out (maximum): a link inside the namespace is no escape, and the
        // open through it is decided on its own.
        if (Controls.RestrictSymlinks && a.Op is FsOp.Symlink or FsOp.ReadLink && a.LinkResolved is string to && to != "/.."
            && policy.Match(to) is { Class: PathClass.Forbidden, Why.Kind: ReasonKind.ForbiddenPath })
        {
            return Deny(a, Errno.EPERM, PrivilegeControls.SymlinkToForbidden, m.Class);
        }

        // Exec control follows the object (its identity), not the name it has now. The loader and interpreters read
        // code with plain read-opens, so at the deny setting those are refused too (CodeLoaders says who they are);
        // at alert, an exec is allowed and the consumer raises the incident.
        if (a.Op == FsOp.Open && Controls.RuntimeWrittenExec != RuntimeWrittenExec.Allow && RuntimeWritten.Contains(a.Object))
        {
            if (Controls.RuntimeWrittenExec == RuntimeWrittenExec.Deny)
            {
                if (exec) return Deny(a, Errno.EPERM, PrivilegeControls.RuntimeWrittenExec, m.Class);
                if (!write && CodeLoaders.IsLoaderOrInterpreter(caller)) return Deny(a, Errno.EPERM, PrivilegeControls.RuntimeWrittenInterpreted, m.Class);
            }
            else if (exec)
            {
                a.Why = VerdictReason.ExecAlert;
            }
        }

        TimeSpan delay = member ? Resources.Throttle(a.Op, a.Size, Stopwatch.GetTimestamp()) : TimeSpan.Zero;

        Decision decision = Decision.Allow;
        if (_rules is not null)
        {
            List<Detection> found = t_inlineDetections ??= new List<Detection>(4);
            Verdict rv = _rules.EvaluateInline(a, found);
            if (found.Count > 0)
            {
                foreach (Detection d in found) _onInlineDetection(d, a, caller);
                found.Clear();
            }

            if (rv.IsDenied) return Deny(a, rv.Error == Errno.OK ? Errno.EPERM : rv.Error, rv.Why.IsNone ? VerdictReason.Rule("rule") : rv.Why, m.Class);
            if (rv.Decision == Decision.WouldDeny)
            {
                decision = Decision.WouldDeny;
                a.Why = rv.Why;
            }
        }

        if (decision == Decision.Allow && a.Op is FsOp.Open or FsOp.Create && Controls.AllowDirect && !exec
            && (Controls.Level == IsolationLevel.Standard || !write))
        {
            decision = Decision.AllowDirect;
        }

        a.Decision = decision;
        // A container write to an existing file: under refuse_setuid its set-id bits go, with or without CAP_FSETID
        // (standard's OCI fragment grants it, and a kept bit would be code of the container's choosing run as root).
        bool dropSetId = member && write && Controls.RefuseSetuid && a.Op is FsOp.Open or FsOp.Truncate;
        return new Verdict(decision, Errno.OK, m.Class, a.Why, delay, exec, dropSetId);
    }

    /// <summary>Fills level, caller, proc.name and container.id (a cache hit is one dictionary read; <paramref name="pinNew"/> pins a caller not seen yet).</summary>
    public CallerInfo? Identify(FsEvent a, bool pinNew = true)
    {
        a.Level = Controls.Level;
        CallerInfo? caller = pinNew ? Callers.Resolve(a.Pid) : Callers.Cached(a.Pid);
        a.Caller = caller;
        if (caller is not null)
        {
            a.ProcName = caller.Name;
            if (caller.IsContainerMember) a.ContainerId = _containerName;
        }

        return caller;
    }

    /// <summary>Write-class ops, opens for write or truncation, and copy_file_range (whose destination is fs.target when set).</summary>
    internal static bool IsWriteAccess(FsEvent a) => a.Op switch
    {
        FsOp.Open => a.IsWrite || (a.Flags & (LibC.O_ACCMODE | LibC.O_TRUNC)) != 0,
        FsOp.CopyFileRange => a.Target is null,
        _ => a.Op.IsWriteClass(),
    };

    private Verdict Deny(FsEvent a, Errno error, VerdictReason reason, PathClass? cls)
    {
        _counters.Denied();
        a.Decision = Decision.Deny;
        a.Why = reason;
        a.Result = (int)error;
        return Verdict.Deny(error, reason, cls) with { IsExec = a.IsExec };
    }

    /// <summary>
    /// Rate limits for READ/WRITE, which the proxy does not decide one by one (they were admitted at OPEN):
    /// only container members are throttled, and only through an already pinned caller (no /proc reads here).
    /// </summary>
    public TimeSpan DataDelay(uint pid, FsOp op, long bytes)
    {
        if (!Resources.LimitsRates)
        {
            return TimeSpan.Zero;
        }

        CallerInfo? caller = Callers.Cached((int)pid);
        return caller is { IsContainerMember: true } ? Resources.Throttle(op, bytes, Stopwatch.GetTimestamp()) : TimeSpan.Zero;
    }

    public OpenFileCharge TryOpenFile(uint pid)
    {
        if (Resources.Limits.OpenFiles is null) return OpenFileCharge.NotCounted;
        // Decide pinned the caller just before; a host process (the operator, a backup) is not held to the container's cap.
        if (Callers.Cached((int)pid) is not { IsContainerMember: true }) return OpenFileCharge.NotCounted;
        return Resources.TryOpenFile() == Errno.OK ? OpenFileCharge.Counted : OpenFileCharge.Refused;
    }
}
