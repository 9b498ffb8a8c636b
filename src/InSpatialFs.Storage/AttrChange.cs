namespace InSpatialFs.Storage;

/// <summary>A time to set: an instant, or the backend's clock at the change (<see cref="Now"/>).</summary>
public readonly record struct TimeChange(long Seconds, uint Nanoseconds, bool Now = false)
{
    public static TimeChange AtNow => new(0, 0, Now: true);
}

/// <summary>
/// What a SETATTR changes, typed: each field set is one change (null leaves it alone). <see cref="KillSetId"/> asks
/// the backend to clear set-id bits as a write by a caller without CAP_FSETID would (FATTR_KILL_SUIDGID).
/// <see cref="File"/> is the open file the kernel named (FATTR_FH): a truncate goes through it.
/// </summary>
public readonly record struct AttrChange
{
    public uint? Mode { get; init; }

    public uint? Uid { get; init; }

    public uint? Gid { get; init; }

    public ulong? Size { get; init; }

    public TimeChange? Atime { get; init; }

    public TimeChange? Mtime { get; init; }

    /// <summary>An explicit ctime (only a FUSE server's own request sets it; otherwise every change moves ctime to now).</summary>
    public TimeChange? Ctime { get; init; }

    public bool KillSetId { get; init; }

    public IOpenFile? File { get; init; }

    public bool ChangesOwner => Uid.HasValue || Gid.HasValue;

    /// <summary>Whether the inode changes at all (an empty set, or one naming only the file, leaves ctime alone).</summary>
    public bool ChangesInode => Mode.HasValue || ChangesOwner || Size.HasValue || Atime.HasValue || Mtime.HasValue || KillSetId;
}
