using InSpatialFs.Interop;

namespace InSpatialFs.Storage.Posix;

/// <summary>
/// When set-user-id and set-group-id bits are dropped, and what a new node inherits from a setgid directory.
/// References: setattr_should_drop_suidgid / setattr_should_drop_sgid (fs/attr.c), chown_common (fs/open.c),
/// inode_init_owner (fs/inode.c), vfs_prepare_mode (fs/namei.c); FUSE_HANDLE_KILLPRIV_V2 (include/uapi/linux/fuse.h)
/// hands the clearing to the filesystem with the same rules.
/// Keep in sync: the host backend's daemon runs as root (CAP_FSETID), so a host chown or truncate keeps the bits the
/// kernel would keep for such a caller and the rules below are applied for the real caller (HostFileSystem.SetAttr).
/// </summary>
public static class SetIdBits
{
    private const uint GroupExecute = 0x8; // S_IXGRP

    /// <summary>
    /// The bits dropped from <paramref name="mode"/> when a caller without CAP_FSETID writes or truncates the file, or
    /// when anyone chowns it: S_ISUID always; S_ISGID only together with group execute (without it the bit means
    /// mandatory locking, not set-group-id, and stays).
    /// </summary>
    public static uint ToClear(uint mode)
    {
        uint clear = mode & LibC.S_ISUID;
        if ((mode & (LibC.S_ISGID | GroupExecute)) == (LibC.S_ISGID | GroupExecute))
        {
            clear |= LibC.S_ISGID;
        }

        return clear;
    }

    /// <summary>A write or truncate drops bits of regular files only (setattr_should_drop_suidgid's S_ISREG).</summary>
    public static bool ClearedByWrite(uint type) => type == LibC.S_IFREG;

    /// <summary>A chown drops bits of every type but directories, even for root (chown_common adds ATTR_KILL_SUID).</summary>
    public static bool ClearedByChown(uint type) => type != LibC.S_IFDIR;

    /// <summary>The group of a new node: the directory's when it is setgid, else the caller's (inode_init_owner).</summary>
    public static uint NewNodeGid(uint parentMode, uint parentGid, uint callerGid) => (parentMode & LibC.S_ISGID) != 0 ? parentGid : callerGid;

    /// <summary>
    /// The permission bits of a new node of <paramref name="type"/> asked for with <paramref name="requested"/>:
    /// mkdir keeps only rwx and the sticky bit (vfs_mkdir's S_IRWXUGO|S_ISVTX), and a directory made in a setgid
    /// directory is setgid itself (inode_init_owner); other types keep all twelve bits.
    /// </summary>
    public static uint NewNodePermissions(uint type, uint requested, uint parentMode)
    {
        if (type != LibC.S_IFDIR)
        {
            return requested & 0xFFF;
        }

        uint perm = requested & (0x1FF | LibC.S_ISVTX);
        return (parentMode & LibC.S_ISGID) != 0 ? perm | LibC.S_ISGID : perm;
    }
}
