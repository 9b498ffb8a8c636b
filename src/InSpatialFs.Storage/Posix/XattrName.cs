using InSpatialFs.Interop;

namespace InSpatialFs.Storage.Posix;

/// <summary>The extended-attribute namespaces (the prefix before the first dot).</summary>
public enum XattrNamespace
{
    /// <summary>user.*: regular files and directories only (xattr_permission); the owner's permissions apply.</summary>
    User,

    /// <summary>trusted.*: CAP_SYS_ADMIN in the initial namespace (checked by the kernel with the caller's credentials).</summary>
    Trusted,

    /// <summary>security.*: whatever the LSMs say; security.capability also needs CAP_SETFCAP (checked by the kernel).</summary>
    Security,

    /// <summary>system.*: POSIX ACLs and other attributes a filesystem implements itself.</summary>
    System,
}

/// <summary>
/// Extended-attribute names and which nodes may carry which namespace. References: import_xattr_name and
/// xattr_resolve_name (fs/xattr.c): an empty name or one longer than XATTR_NAME_MAX (255) is ERANGE, a name that is
/// only a prefix ("user.") is EINVAL, an unknown prefix is EOPNOTSUPP; xattr_permission: user.* on anything but a
/// regular file or directory is EPERM to change and ENODATA to read. The capability checks of trusted.* and security.*
/// need the caller's credentials, which the kernel checks before a FUSE request is sent; backends do not see them.
/// </summary>
public static class XattrName
{
    /// <summary>XATTR_NAME_MAX.</summary>
    public const int MaxLength = 255;

    /// <summary>XATTR_SIZE_MAX: a longer value is E2BIG.</summary>
    public const int MaxValueLength = 65536;

    /// <summary>OK with the namespace, or ERANGE / EINVAL / EOPNOTSUPP as above (a NUL inside the name: EINVAL).</summary>
    public static Errno Check(ReadOnlySpan<byte> name, out XattrNamespace ns)
    {
        ns = default;
        if (name.IsEmpty || name.Length > MaxLength)
        {
            return Errno.ERANGE;
        }

        if (name.Contains((byte)0))
        {
            return Errno.EINVAL; // a C string ends at its NUL: no syscall can name such an attribute
        }

        int prefix;
        if (name.StartsWith("user."u8))
        {
            (ns, prefix) = (XattrNamespace.User, 5);
        }
        else if (name.StartsWith("trusted."u8))
        {
            (ns, prefix) = (XattrNamespace.Trusted, 8);
        }
        else if (name.StartsWith("security."u8))
        {
            (ns, prefix) = (XattrNamespace.Security, 9);
        }
        else if (name.StartsWith("system."u8))
        {
            (ns, prefix) = (XattrNamespace.System, 7);
        }
        else
        {
            return Errno.EOPNOTSUPP;
        }

        return name.Length == prefix ? Errno.EINVAL : Errno.OK;
    }

    /// <summary>xattr_permission's type rule: user.* only on regular files and directories.</summary>
    public static Errno CheckNode(XattrNamespace ns, uint type, bool write)
    {
        if (ns == XattrNamespace.User && type != LibC.S_IFREG && type != LibC.S_IFDIR)
        {
            return write ? Errno.EPERM : Errno.ENODATA;
        }

        return Errno.OK;
    }

    /// <summary>setxattr flags: XATTR_CREATE, XATTR_REPLACE or both (which then fails as one of them); others EINVAL.</summary>
    public static Errno CheckSetFlags(int flags) => (flags & ~(LibC.XATTR_CREATE | LibC.XATTR_REPLACE)) != 0 ? Errno.EINVAL : Errno.OK;

    /// <summary>security.capability: dropped by every write, truncate and chown of the file, whoever the caller (ATTR_KILL_PRIV).</summary>
    public static ReadOnlySpan<byte> Capability => "security.capability"u8;
}
