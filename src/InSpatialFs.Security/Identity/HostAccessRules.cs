using InSpatialFs.Security.Events;

namespace InSpatialFs.Security.Identity;

/// <summary>
/// What <c>host_users</c> refuses a host process (a non-member reaching the mount, e.g. through allow_other). Root on
/// the host is the operator (<see cref="MembershipOptions.HostRoot"/>, default full); every other uid gets
/// <see cref="MembershipOptions.HostUsers"/> (default: nothing the container's quotas would be charged for).
/// Refusals are EACCES with a <see cref="ReasonKind.HostUsers"/> reason (shown "host:…"), an event and an incident.
/// </summary>
internal static class HostAccessRules
{
    private static readonly VerdictReason RefusedAll = new(ReasonKind.HostUsers, "none"),
        RefusedWrite = new(ReasonKind.HostUsers, "read-only"), RefusedGrowth = new(ReasonKind.HostUsers, "no-quota-writes");

    /// <summary>The refusal reason for this access, or null when <paramref name="access"/> allows it.</summary>
    /// <param name="write">The access writes (write-class op, or an open for write or truncation).</param>
    /// <param name="containerHasQuotas">The container has a disk, inode or memory limit its growth would be charged to.</param>
    public static VerdictReason? Refusal(HostAccess access, FsEvent a, bool write, bool containerHasQuotas) => access switch
    {
        HostAccess.None => RefusedAll,
        HostAccess.ReadOnly when write => RefusedWrite,
        HostAccess.NoQuotaWrites when write && containerHasQuotas && Grows(a.Op) => RefusedGrowth,
        _ => null,
    };

    /// <summary>Writes that can add bytes or inodes (removal, rename and metadata changes only free or keep usage).</summary>
    private static bool Grows(FsOp op) =>
        op is not (FsOp.Unlink or FsOp.RmDir or FsOp.Rename or FsOp.Chmod or FsOp.Chown or FsOp.Utimens or FsOp.RemoveXattr);
}
