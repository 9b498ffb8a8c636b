using System.Runtime.InteropServices;

namespace InSpatialFs.Fuse.Abi;

// Wire structs, continued (see FuseStructs.cs for the conventions and how they are checked): notifications the daemon
// sends, the passthrough backing map, extension headers, and the requests this server does not serve (DAX, CUSE).

/// <summary>struct fuse_notify_poll_wakeup_out (8 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseNotifyPollWakeupOut
{
    public ulong Kh;
}

/// <summary>struct fuse_notify_inval_inode_out (24 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseNotifyInvalInodeOut
{
    public ulong Ino;
    public long Off;
    public long Len;
}

/// <summary>struct fuse_notify_inval_entry_out (16 bytes), followed by the name and a NUL.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseNotifyInvalEntryOut
{
    public ulong Parent;
    public uint NameLen;
    /// <summary>FUSE_EXPIRE_ONLY (7.38).</summary>
    public uint Flags;
}

/// <summary>struct fuse_notify_delete_out (24 bytes), followed by the name and a NUL.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseNotifyDeleteOut
{
    public ulong Parent;
    public ulong Child;
    public uint NameLen;
    public uint Padding;
}

/// <summary>struct fuse_notify_store_out (24 bytes), followed by the data.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseNotifyStoreOut
{
    public ulong NodeId;
    public ulong Offset;
    public uint Size;
    public uint Padding;
}

/// <summary>struct fuse_notify_retrieve_out (32 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseNotifyRetrieveOut
{
    public ulong NotifyUnique;
    public ulong NodeId;
    public ulong Offset;
    public uint Size;
    public uint Padding;
}

/// <summary>struct fuse_notify_retrieve_in (40 bytes): the body of a NOTIFY_REPLY request.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseNotifyRetrieveIn
{
    public ulong Dummy1;
    public ulong Offset;
    public uint Size;
    public uint Dummy2;
    public ulong Dummy3;
    public ulong Dummy4;
}

/// <summary>struct fuse_notify_prune_out (16 bytes), 7.45: newer than 7.38. Followed by count × u64 nodeid.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseNotifyPruneOut
{
    public uint Count;
    public uint Padding;
    public ulong Spare;
}

/// <summary>struct fuse_backing_map (16 bytes), 7.40: newer than 7.38. Argument of FUSE_DEV_IOC_BACKING_OPEN.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseBackingMap
{
    public int Fd;
    /// <summary>Must be 0.</summary>
    public uint Flags;
    /// <summary>Must be 0.</summary>
    public ulong Padding;
}

/// <summary>struct fuse_ext_header (8 bytes): one entry of the request extension area.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseExtHeader
{
    public uint Size;
    public uint Type;
}

/// <summary>struct fuse_direntplus header (152 bytes): entry_out then the dirent header; the name follows.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseDirentPlus
{
    public FuseEntryOut EntryOut;
    public FuseDirent Dirent;
}

/// <summary>struct fuse_ioctl_iovec (16 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseIoctlIovec
{
    public ulong Base;
    public ulong Len;
}

/// <summary>struct fuse_setupmapping_in (40 bytes): DAX only, never served here.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseSetupmappingIn
{
    public ulong Fh;
    public ulong Foffset;
    public ulong Len;
    public ulong Flags;
    public ulong Moffset;
}

/// <summary>struct fuse_removemapping_in (4 bytes): DAX only.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseRemovemappingIn
{
    public uint Count;
}

/// <summary>struct fuse_removemapping_one (16 bytes): DAX only.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseRemovemappingOne
{
    public ulong Moffset;
    public ulong Len;
}

/// <summary>struct fuse_secctx (8 bytes): one security context in the request extension area.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseSecctx
{
    public uint Size;
    public uint Padding;
}

/// <summary>struct fuse_secctx_header (8 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseSecctxHeader
{
    public uint Size;
    public uint NrSecctx;
}

/// <summary>struct cuse_init_in (16 bytes): CUSE only, never served here.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct CuseInitIn
{
    public uint Major;
    public uint Minor;
    public uint Unused;
    public uint Flags;
}

/// <summary>struct cuse_init_out (72 bytes): CUSE only.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct CuseInitOut
{
    public uint Major;
    public uint Minor;
    public uint Unused;
    public uint Flags;
    public uint MaxRead;
    public uint MaxWrite;
    public uint DevMajor;
    public uint DevMinor;
    public fixed uint Spare[10];
}
