namespace InSpatialFs.Interop;

/// <summary>
/// The new mount API (Linux 5.2): fsopen, fsconfig and fsmount make a filesystem instance and a mount of it that is
/// attached nowhere. The memory backend keeps file data in such a private tmpfs: only the daemon's descriptor reaches
/// it, no mount table lists it, and it disappears when the last descriptor into it is closed. glibc has no wrappers
/// on every distribution, so these go through syscall(2).
/// </summary>
public static unsafe partial class LibC
{
    public const long SYS_fsopen = 430, SYS_fsconfig = 431, SYS_fsmount = 432;

    public const int FSOPEN_CLOEXEC = 1, FSMOUNT_CLOEXEC = 1;
    public const int FSCONFIG_SET_STRING = 1, FSCONFIG_CMD_CREATE = 6;
    public const int MOUNT_ATTR_NOSUID = 0x2, MOUNT_ATTR_NODEV = 0x4, MOUNT_ATTR_NOATIME = 0x10;

    /// <summary>fsopen(2): a filesystem context for <paramref name="fsName"/> (NUL-terminated).</summary>
    public static int fsopen(byte* fsName, int flags) => (int)syscall(SYS_fsopen, (long)fsName, flags, 0, 0, 0, 0);

    /// <summary>fsconfig(2) with a string value (or a command when <paramref name="key"/> is null).</summary>
    public static int fsconfig(int fsFd, int command, byte* key, byte* value, int aux)
        => (int)syscall(SYS_fsconfig, fsFd, command, (long)key, (long)value, aux, 0);

    /// <summary>fsmount(2): a detached mount of the created superblock, as an O_PATH-like descriptor of its root.</summary>
    public static int fsmount(int fsFd, int flags, int attrFlags) => (int)syscall(SYS_fsmount, fsFd, flags, attrFlags, 0, 0, 0);
}
