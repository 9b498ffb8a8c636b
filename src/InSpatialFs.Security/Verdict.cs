using InSpatialFs.Interop;
using InSpatialFs.Security.Events;

namespace InSpatialFs.Security;

/// <summary>The answer to "may this operation run?". Denials carry EACCES, EPERM or EROFS, never ENOSYS.</summary>
public readonly record struct Verdict(Decision Decision, Errno Error, string? Reason, TimeSpan Delay)
{
    public static readonly Verdict Allow = new(Decision.Allow, Errno.OK, null, TimeSpan.Zero);
    public static readonly Verdict AllowDirect = new(Decision.AllowDirect, Errno.OK, null, TimeSpan.Zero);

    public static Verdict Deny(Errno error, string reason) => new(Decision.Deny, error, reason, TimeSpan.Zero);

    public bool IsDenied => Decision == Decision.Deny;
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
