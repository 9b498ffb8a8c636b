using InSpatialFs.Interop;
using InSpatialFs.Security.Events;

namespace InSpatialFs.Security;

/// <summary>Why an operation was decided as it was (evt.reason, typed). The text is rendered from it where it is shown.</summary>
public enum ReasonKind : byte
{
    /// <summary>Nothing to say: a plain allow.</summary>
    None,
    /// <summary>The path matched a forbidden pattern. Detail: the pattern. Text <c>forbidden:PATTERN</c>.</summary>
    ForbiddenPath,
    /// <summary>A write to a path that matched a read-only pattern. Detail: the pattern. Text <c>readonly:PATTERN</c>.</summary>
    ReadOnlyPath,
    /// <summary>The path matched an allowed pattern (a path match, never a denial). Detail: the pattern. Text <c>allowed:PATTERN</c>.</summary>
    AllowedPath,
    /// <summary>No pattern matched and the isolation level's default class refused. Detail: the level. Text <c>default:LEVEL</c>.</summary>
    IsolationLevel,
    /// <summary>A directory leading to an allow-listed path, read-only at maximum. Detail: the level. Text <c>ancestor:LEVEL</c>.</summary>
    LevelAncestor,
    /// <summary>A rename would move protected objects out of their class. Detail: the whole explanation the path policy wrote.</summary>
    RenameExposes,
    /// <summary>A host process refused by host_users. Detail: none, read-only or no-quota-writes. Text <c>host:DETAIL</c>.</summary>
    HostUsers,
    /// <summary>A privilege control (set-id, devices, xattrs, hard links, symlinks). Detail: the control. Text <c>privilege:DETAIL</c>.</summary>
    Privilege,
    /// <summary>Code written at run time refused (exec.runtime_written: deny). Detail: exec_… or interpret_…. Text <c>privilege:DETAIL</c>.</summary>
    ExecDenied,
    /// <summary>An exec of code written at run time, allowed and alerted (exec.runtime_written: alert). Text <c>alert:exec_runtime_written</c>.</summary>
    ExecAlert,
    /// <summary>A rule denied it, or would have in monitor mode. Detail: the rule's name, which is also the text.</summary>
    Rule,
    /// <summary>The container is suspended. Text <c>response:suspended</c>.</summary>
    Suspended,
    /// <summary>The calling process was blocked by a response. Text <c>response:block_process</c>.</summary>
    ProcessBlocked,
    /// <summary>A write under a mount configured read-only. Detail: the mount path. Text <c>read-only mount PATH</c>.</summary>
    ReadOnlyMount,
    /// <summary>A reason known only as text (read back from an event line): the detail is the text, not interpreted.</summary>
    Recorded,
    /// <summary>A host backend refused a name that would leave its tree (evt.op = escape). Text <c>host path refused by RESOLVE_BENEATH</c>.</summary>
    HostEscape,
}

/// <summary>
/// A typed reason: the kind, and a detail (a pattern, a rule name, a level) where the kind needs one. Building one
/// allocates nothing; <see cref="Text"/> renders the wording events, logs and incidents have always shown.
/// </summary>
public readonly record struct VerdictReason(ReasonKind Kind, string? Detail = null)
{
    public static readonly VerdictReason None = default;
    public static readonly VerdictReason Suspended = new(ReasonKind.Suspended);
    public static readonly VerdictReason ProcessBlocked = new(ReasonKind.ProcessBlocked);
    public static readonly VerdictReason ExecAlert = new(ReasonKind.ExecAlert);
    public static readonly VerdictReason HostEscape = new(ReasonKind.HostEscape);

    public static VerdictReason Rule(string name) => new(ReasonKind.Rule, name);

    public static VerdictReason ReadOnlyMount(string mountPath) => new(ReasonKind.ReadOnlyMount, mountPath);

    /// <summary>A reason read back as text; null stays <see cref="None"/>.</summary>
    public static VerdictReason FromText(string? text) => text is null ? None : new(ReasonKind.Recorded, text);

    public bool IsNone => Kind == ReasonKind.None;

    /// <summary>True for the path policy's own reasons (a class the path or a rename would have): incidents by class.</summary>
    public bool IsPathPolicy => Kind is ReasonKind.ForbiddenPath or ReasonKind.ReadOnlyPath or ReasonKind.IsolationLevel
        or ReasonKind.LevelAncestor or ReasonKind.RenameExposes;

    /// <summary>The text shown for this reason (evt.reason, incident sources, log lines); null for <see cref="ReasonKind.None"/>.</summary>
    public string? Text => Kind switch
    {
        ReasonKind.None => null,
        ReasonKind.ForbiddenPath => "forbidden:" + Detail,
        ReasonKind.ReadOnlyPath => "readonly:" + Detail,
        ReasonKind.AllowedPath => "allowed:" + Detail,
        ReasonKind.IsolationLevel => "default:" + Detail,
        ReasonKind.LevelAncestor => "ancestor:" + Detail,
        ReasonKind.HostUsers => "host:" + Detail,
        ReasonKind.Privilege or ReasonKind.ExecDenied => "privilege:" + Detail,
        ReasonKind.ExecAlert => "alert:exec_runtime_written",
        ReasonKind.Suspended => "response:suspended",
        ReasonKind.ProcessBlocked => "response:block_process",
        ReasonKind.ReadOnlyMount => "read-only mount " + Detail,
        ReasonKind.HostEscape => "host path refused by RESOLVE_BENEATH",
        _ => Detail, // RenameExposes, Rule, Recorded: the detail is the text
    };

    public override string ToString() => Text ?? "";
}

/// <summary>
/// The answer to "may this operation run?", carrying everything decided: the decision, the policy class of the path
/// (null when the decision came before the path was classified: a blocked process, a suspended container, host_users),
/// the typed reason, the throttle delay and whether the access is an exec. Denials carry EACCES, EPERM or EROFS, never ENOSYS.
/// <see cref="DropSetId"/>: an allowed write by a container member under refuse_setuid, which must leave no set-id bit
/// on the file even when the caller holds CAP_FSETID (the kernel would keep it then; the control promises it goes).
/// </summary>
public readonly record struct Verdict(Decision Decision, Errno Error, PathClass? Class, VerdictReason Why, TimeSpan Delay, bool IsExec = false, bool DropSetId = false)
{
    public static readonly Verdict Allow = new(Decision.Allow, Errno.OK, null, VerdictReason.None, TimeSpan.Zero);
    public static readonly Verdict AllowDirect = new(Decision.AllowDirect, Errno.OK, null, VerdictReason.None, TimeSpan.Zero);

    public static Verdict Deny(Errno error, VerdictReason why, PathClass? cls = null) => new(Decision.Deny, error, cls, why, TimeSpan.Zero);

    /// <summary>A monitor-mode rule would have denied: the op goes ahead, recorded as would-deny.</summary>
    public static Verdict WouldDeny(VerdictReason why) => new(Decision.WouldDeny, Errno.OK, null, why, TimeSpan.Zero);

    public bool IsDenied => Decision == Decision.Deny;

    /// <summary>The reason's text (rendered on each call: for display and tests, not the request path).</summary>
    public string? Reason => Why.Text;
}

/// <summary>
/// What the proxy asks before and tells after every operation. <see cref="Decide"/> runs on the request
/// path and must cost microseconds; <see cref="Record"/> never blocks. No member has a default body: an
/// implementation that forgets one does not compile (a silent "true" once left open_files unenforced).
/// </summary>
public interface ISecurityGate
{
    /// <summary>Decides on an operation described by <paramref name="access"/> (request fields filled, no result yet).</summary>
    Verdict Decide(FsEvent access);

    /// <summary>Queues the finished operation (result filled) for the analyser and sinks.</summary>
    void Record(FsEvent completed);

    /// <summary>The policy class of a namespace path (readdir hides forbidden entries).</summary>
    PathClass Classify(string path);

    /// <summary>
    /// A regular file with more than one name was seen as <paramref name="path"/>: if that name is protected, the class
    /// follows the object to its other names (the most restrictive wins).
    /// </summary>
    void NoteLinkedObject(in InodeIdentity obj, string path);

    /// <summary>
    /// <paramref name="copy"/> now is the file <paramref name="original"/> was (an overlay copy-up): every mark the
    /// original has (a protected class, written at run time) is given to the copy.
    /// </summary>
    void ObjectCopied(in InodeIdentity original, in InodeIdentity copy);

    /// <summary>Where protected names can be (see <see cref="Policy.PathPolicy.ProtectedRoots"/>).</summary>
    IReadOnlyList<string> ProtectedRoots { get; }

    /// <summary>False when no direct child of <paramref name="dirPath"/> can be forbidden (listings then skip <see cref="Classify"/>).</summary>
    bool MayForbidChildrenOf(string dirPath);

    /// <summary>
    /// Counts an open file of caller <paramref name="pid"/> against the open-files cap (resources.open_files), which
    /// applies to container members; <see cref="OpenFileCharge.Refused"/> means refuse with EMFILE.
    /// </summary>
    OpenFileCharge TryOpenFile(uint pid);

    /// <summary>An open file counted by <see cref="TryOpenFile"/> was released.</summary>
    void FileClosed();

    /// <summary>
    /// How long to hold the reply of a READ or WRITE that moved <paramref name="bytes"/> for caller
    /// <paramref name="pid"/>: the operations- and bytes-per-second limits apply to data calls too.
    /// </summary>
    TimeSpan DataDelay(uint pid, FsOp op, long bytes);

    /// <summary>
    /// The disk-bytes / inode quota account of a host mount (null: no quota). It counts what the container adds to
    /// the mount after it starts — like the writable layer of an image — so the image itself is never charged.
    /// </summary>
    Resources.QuotaAccount? QuotaFor(string mountPath);
}

/// <summary>What <see cref="ISecurityGate.TryOpenFile"/> did with an open.</summary>
public enum OpenFileCharge
{
    /// <summary>Allowed and not counted (no cap, or a caller the cap does not apply to).</summary>
    NotCounted,
    /// <summary>Allowed and counted: report <see cref="ISecurityGate.FileClosed"/> at release.</summary>
    Counted,
    /// <summary>Past the cap: EMFILE.</summary>
    Refused,
}
