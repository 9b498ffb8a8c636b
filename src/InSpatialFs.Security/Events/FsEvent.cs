namespace InSpatialFs.Security.Events;

/// <summary>What the policy decided for an operation (evt.decision).</summary>
public enum Decision : byte
{
    Allow,
    /// <summary>Allowed, and the file's data path may bypass the daemon (DirectFS).</summary>
    AllowDirect,
    Deny,
    /// <summary>A rule in monitor mode would have denied it; the op went ahead.</summary>
    WouldDeny,
}

/// <summary>The policy class of a path (policy.class).</summary>
public enum PathClass : byte
{
    Allowed,
    ReadOnly,
    Forbidden,
}

/// <summary>Isolation levels; a higher value is stricter.</summary>
public enum IsolationLevel : byte
{
    Standard,
    Enhanced,
    Maximum,
}

/// <summary>
/// One mediated file operation. The proxy fills the request fields before asking for a verdict, then the
/// result fields after the op, and hands the same object to the event queue. Field names (in comments) are
/// the ones rules and the JSON-lines format use (ARCHITECTURE.md, "Events and rules").
/// </summary>
public sealed class FsEvent
{
    /// <summary>evt.time: nanoseconds since the Unix epoch (UTC).</summary>
    public long TimeUnixNanos;
    /// <summary>evt.seq: per-instance sequence number, assigned when recorded.</summary>
    public ulong Seq;
    /// <summary>evt.op</summary>
    public FsOp Op;
    /// <summary>evt.flags: open(2) flags for open/create, rename flags for rename, xattr flags for setxattr.</summary>
    public int Flags;
    /// <summary>evt.mode: the mode requested (chmod, create, mkdir, mknod) or the node's mode.</summary>
    public uint Mode;
    /// <summary>evt.res: 0 on success, else the errno returned to the caller.</summary>
    public int Result;
    /// <summary>evt.is_write</summary>
    public bool IsWrite;
    /// <summary>evt.is_exec: an open for execve (FMODE_EXEC).</summary>
    public bool IsExec;
    /// <summary>evt.size: bytes read or written, or the new size for truncate.</summary>
    public long Size;
    /// <summary>fs.path: the namespace path as the container sees it.</summary>
    public string Path = "/";
    /// <summary>
    /// The object the op acts on, independent of its names (for copy_file_range the one written; for creating ops the
    /// new node). Not a rule field: marks that must follow an object through renames and links key on it.
    /// </summary>
    public Interop.InodeIdentity Object;
    /// <summary>fs.target: the second path (rename destination, new hard link name).</summary>
    public string? Target;
    /// <summary>fs.link_target: the contents of a symlink being created.</summary>
    public string? LinkTarget;
    /// <summary>
    /// fs.link_resolved: where a symlink leads, its chain followed inside the namespace (the proxy fills it for symlink
    /// and readlink): an absolute path, or "/.." when the chain climbs above the root or is too long.
    /// </summary>
    public string? LinkResolved;
    /// <summary>fs.xattr: the xattr name for xattr ops.</summary>
    public string? XattrName;
    /// <summary>fs.is_new: the op created the node (create, mknod, mkdir, symlink, link, tmpfile).</summary>
    public bool IsNew;
    /// <summary>proc.pid</summary>
    public int Pid;
    /// <summary>proc.name: /proc/PID/comm when the caller was first seen.</summary>
    public string? ProcName;
    /// <summary>user.uid</summary>
    public uint Uid;
    /// <summary>user.gid</summary>
    public uint Gid;
    /// <summary>fs.uid: owner of the existing node the op acts on (the link source for link); the proxy fills it for link.</summary>
    public uint NodeUid;
    /// <summary>container.id: the instance name, or null for a host process touching the mount.</summary>
    public string? ContainerId;
    /// <summary>container.level</summary>
    public IsolationLevel Level;
    /// <summary>policy.class</summary>
    public PathClass PolicyClass;
    /// <summary>evt.decision</summary>
    public Decision Decision;
    /// <summary>Why it was decided so (typed; what incidents and responses go by). Setting it resets the rendered text.</summary>
    public VerdictReason Why
    {
        get => _why;
        set
        {
            _why = value;
            _reasonText = null;
        }
    }

    /// <summary>
    /// evt.reason: <see cref="Why"/> rendered (once, where it is shown: the consumer's JSON line, rules, incidents), else
    /// null. Set only where an event is read back from text (its kind is then <see cref="ReasonKind.Recorded"/>).
    /// </summary>
    public string? Reason
    {
        get => _reasonText ??= _why.Text;
        set
        {
            _why = VerdictReason.FromText(value);
            _reasonText = value;
        }
    }

    private VerdictReason _why;
    private string? _reasonText;
    /// <summary>evt.latency_ns: time the daemon spent on the op.</summary>
    public long LatencyNanos;

    /// <summary>
    /// The caller as pinned when the op was decided (or recorded); not serialized. Incidents and responses act
    /// on it: by the time the consumer runs, a short-lived caller may have exited and its pid may name another process.
    /// </summary>
    internal Identity.CallerInfo? Caller;

    /// <summary>
    /// proc.* context (cmdline, exe, ancestors, login uid) of a replayed or test event; a live event has none here and
    /// reaches its process's context through <see cref="Caller"/>. Serialized with the event when known.
    /// </summary>
    public Identity.ProcessContext? Process;

    /// <summary>fs.dir: the parent directory of <see cref="Path"/>.</summary>
    public string Dir
    {
        get
        {
            int slash = Path.LastIndexOf('/');
            return slash <= 0 ? "/" : Path[..slash];
        }
    }

    /// <summary>fs.name: the last component of <see cref="Path"/>.</summary>
    public string Name
    {
        get
        {
            int slash = Path.LastIndexOf('/');
            return slash < 0 ? Path : Path[(slash + 1)..];
        }
    }

    public static long NowUnixNanos() => (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) * 100;

    public FsEvent Clone() => (FsEvent)MemberwiseClone();
}
