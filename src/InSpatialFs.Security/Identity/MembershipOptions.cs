namespace InSpatialFs.Security.Identity;

/// <summary>What a host process (not a container member) may do on the mount (config <c>host_users:</c>).</summary>
public enum HostAccess : byte
{
    /// <summary>Everything the policy allows a member (the operator's default: root on the host).</summary>
    Full,
    /// <summary>
    /// No operation that would grow what the container is charged for (create, mkdir, mknod, symlink, link, tmpfile,
    /// open for write or truncate, truncate, fallocate, copy_file_range, setxattr) while the container has a disk,
    /// inode or memory limit; otherwise as <see cref="Full"/>. The default for host users other than root.
    /// </summary>
    NoQuotaWrites,
    /// <summary>No write-class operation at all, and no open for write.</summary>
    ReadOnly,
    /// <summary>Every operation refused.</summary>
    None,
}

/// <summary>Who is the container, and what host processes may do (config <c>container:</c> and <c>host_users:</c>).</summary>
public sealed record MembershipOptions
{
    /// <summary>container.init_pid: the container's init, recorded at start (the control command <c>container-init PID</c> does the same later).</summary>
    public int? InitPid { get; init; }
    /// <summary>host_users.root: host processes acting as uid 0 (the operator).</summary>
    public HostAccess HostRoot { get; init; } = HostAccess.Full;
    /// <summary>host_users.others: every other host uid (reaching the mount through allow_other).</summary>
    public HostAccess HostUsers { get; init; } = HostAccess.NoQuotaWrites;

    public static string Name(HostAccess a) => a switch
    {
        HostAccess.Full => "full",
        HostAccess.NoQuotaWrites => "no-quota-writes",
        HostAccess.ReadOnly => "read-only",
        _ => "none",
    };
}
