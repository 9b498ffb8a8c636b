using System.Runtime.InteropServices;

namespace InSpatialFs.Fuse.Abi;

// Wire structs of the FUSE protocol 7.45 (include/uapi/linux/fuse.h), little-endian, in the kernel's field order.
// Sizes and offsets are checked against Debian's installed 7.38 header by AbiLayoutTests (gcc static asserts);
// fields and structs newer than 7.38 are marked so and pinned by hand in the same tests.

/// <summary>struct fuse_in_header (40 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseInHeader
{
    public uint Len;
    public uint Opcode;
    public ulong Unique;
    public ulong NodeId;
    public uint Uid;
    public uint Gid;
    public uint Pid;
    /// <summary>Length of the extension area at the end of the request, in 8-byte units.</summary>
    public ushort TotalExtlen;
    public ushort Padding;
}

/// <summary>struct fuse_out_header (16 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseOutHeader
{
    public uint Len;
    public int Error;
    public ulong Unique;
}

/// <summary>struct fuse_init_in (64 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct FuseInitIn
{
    public uint Major;
    public uint Minor;
    public uint MaxReadahead;
    public uint Flags;
    public uint Flags2;
    public fixed uint Unused[11];
}

/// <summary>struct fuse_init_out (64 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct FuseInitOut
{
    public uint Major;
    public uint Minor;
    public uint MaxReadahead;
    public uint Flags;
    public ushort MaxBackground;
    public ushort CongestionThreshold;
    public uint MaxWrite;
    public uint TimeGran;
    public ushort MaxPages;
    public ushort MapAlignment;
    public uint Flags2;
    /// <summary>7.40, newer than 7.38 (was unused[0]): stacking depth allowed for passthrough backing files.</summary>
    public uint MaxStackDepth;
    /// <summary>7.43, newer than 7.38 (was unused[1]): seconds, honoured with FUSE_REQUEST_TIMEOUT.</summary>
    public ushort RequestTimeout;
    /// <summary>7.43, newer than 7.38: u16[11] (the 7.38 header has u32 unused[7] from offset 36).</summary>
    public fixed ushort Unused[11];
}

/// <summary>struct fuse_forget_in (8 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseForgetIn
{
    public ulong Nlookup;
}

/// <summary>struct fuse_forget_one (16 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseForgetOne
{
    public ulong NodeId;
    public ulong Nlookup;
}

/// <summary>struct fuse_batch_forget_in (8 bytes), followed by count × <see cref="FuseForgetOne"/>.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseBatchForgetIn
{
    public uint Count;
    public uint Dummy;
}

/// <summary>struct fuse_getattr_in (16 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseGetattrIn
{
    public uint GetattrFlags;
    public uint Dummy;
    public ulong Fh;
}

/// <summary>struct fuse_mknod_in (16 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseMknodIn
{
    public uint Mode;
    public uint Rdev;
    public uint Umask;
    public uint Padding;
}

/// <summary>struct fuse_mkdir_in (8 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseMkdirIn
{
    public uint Mode;
    public uint Umask;
}

/// <summary>struct fuse_rename_in (8 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseRenameIn
{
    public ulong NewDir;
}

/// <summary>struct fuse_rename2_in (16 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseRename2In
{
    public ulong NewDir;
    public uint Flags;
    public uint Padding;
}

/// <summary>struct fuse_link_in (8 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseLinkIn
{
    public ulong OldNodeId;
}

/// <summary>struct fuse_open_in (8 bytes): OPEN and OPENDIR.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseOpenIn
{
    public uint Flags;
    /// <summary>FUSE_OPEN_KILL_SUIDGID.</summary>
    public uint OpenFlags;
}

/// <summary>struct fuse_create_in (16 bytes): CREATE and TMPFILE.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseCreateIn
{
    public uint Flags;
    public uint Mode;
    public uint Umask;
    public uint OpenFlags;
}

/// <summary>struct fuse_release_in (24 bytes): RELEASE and RELEASEDIR.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseReleaseIn
{
    public ulong Fh;
    public uint Flags;
    public uint ReleaseFlags;
    public ulong LockOwner;
}

/// <summary>struct fuse_flush_in (24 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseFlushIn
{
    public ulong Fh;
    public uint Unused;
    public uint Padding;
    public ulong LockOwner;
}

/// <summary>struct fuse_read_in (40 bytes): READ, READDIR, READDIRPLUS.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseReadIn
{
    public ulong Fh;
    public ulong Offset;
    public uint Size;
    public uint ReadFlags;
    public ulong LockOwner;
    public uint Flags;
    public uint Padding;
}

/// <summary>struct fuse_write_in (40 bytes), followed by <see cref="Size"/> bytes of data.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseWriteIn
{
    public ulong Fh;
    public ulong Offset;
    public uint Size;
    public uint WriteFlags;
    public ulong LockOwner;
    public uint Flags;
    public uint Padding;
}

/// <summary>struct fuse_write_out (8 bytes): WRITE and COPY_FILE_RANGE.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseWriteOut
{
    public uint Size;
    public uint Padding;
}

/// <summary>struct fuse_statfs_out (80 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseStatfsOut
{
    public FuseKstatfs St;
}

/// <summary>struct fuse_fsync_in (16 bytes): FSYNC and FSYNCDIR.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseFsyncIn
{
    public ulong Fh;
    public uint FsyncFlags;
    public uint Padding;
}

/// <summary>
/// struct fuse_setxattr_in: 16 bytes with FUSE_SETXATTR_EXT, otherwise only the first 8 (size, flags) are sent
/// (FUSE_COMPAT_SETXATTR_IN_SIZE).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseSetxattrIn
{
    public const int CompatSize = 8;

    public uint Size;
    public uint Flags;
    public uint SetxattrFlags;
    public uint Padding;
}

/// <summary>struct fuse_getxattr_in (8 bytes): GETXATTR and LISTXATTR.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseGetxattrIn
{
    public uint Size;
    public uint Padding;
}

/// <summary>struct fuse_getxattr_out (8 bytes): the answer to a size-0 GETXATTR/LISTXATTR.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseGetxattrOut
{
    public uint Size;
    public uint Padding;
}

/// <summary>struct fuse_file_lock (24 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseFileLock
{
    public ulong Start;
    public ulong End;
    public uint Type;
    public uint Pid;
}

/// <summary>struct fuse_lk_in (48 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseLkIn
{
    public ulong Fh;
    public ulong Owner;
    public FuseFileLock Lk;
    public uint LkFlags;
    public uint Padding;
}

/// <summary>struct fuse_lk_out (24 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseLkOut
{
    public FuseFileLock Lk;
}

/// <summary>struct fuse_access_in (8 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseAccessIn
{
    public uint Mask;
    public uint Padding;
}

/// <summary>struct fuse_interrupt_in (8 bytes): the unique of the request to interrupt.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseInterruptIn
{
    public ulong Unique;
}

/// <summary>struct fuse_bmap_in (16 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseBmapIn
{
    public ulong Block;
    public uint BlockSize;
    public uint Padding;
}

/// <summary>struct fuse_bmap_out (8 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseBmapOut
{
    public ulong Block;
}

/// <summary>struct fuse_ioctl_in (32 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseIoctlIn
{
    public ulong Fh;
    public uint Flags;
    public uint Cmd;
    public ulong Arg;
    public uint InSize;
    public uint OutSize;
}

/// <summary>struct fuse_ioctl_out (16 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseIoctlOut
{
    public int Result;
    public uint Flags;
    public uint InIovs;
    public uint OutIovs;
}

/// <summary>struct fuse_poll_in (24 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FusePollIn
{
    public ulong Fh;
    public ulong Kh;
    public uint Flags;
    public uint Events;
}

/// <summary>struct fuse_poll_out (8 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FusePollOut
{
    public uint Revents;
    public uint Padding;
}

/// <summary>struct fuse_fallocate_in (32 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseFallocateIn
{
    public ulong Fh;
    public ulong Offset;
    public ulong Length;
    public uint Mode;
    public uint Padding;
}

/// <summary>struct fuse_lseek_in (24 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseLseekIn
{
    public ulong Fh;
    public ulong Offset;
    public uint Whence;
    public uint Padding;
}

/// <summary>struct fuse_lseek_out (8 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseLseekOut
{
    public ulong Offset;
}

/// <summary>struct fuse_copy_file_range_in (56 bytes): COPY_FILE_RANGE and COPY_FILE_RANGE_64.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseCopyFileRangeIn
{
    public ulong FhIn;
    public ulong OffIn;
    public ulong NodeIdOut;
    public ulong FhOut;
    public ulong OffOut;
    public ulong Len;
    public ulong Flags;
}

/// <summary>struct fuse_copy_file_range_out (8 bytes), 7.45: newer than 7.38. The answer to COPY_FILE_RANGE_64.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseCopyFileRangeOut
{
    public ulong BytesCopied;
}

/// <summary>struct fuse_syncfs_in (8 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseSyncfsIn
{
    public ulong Padding;
}

/// <summary>struct fuse_statx_in (24 bytes), 7.39: newer than 7.38.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseStatxIn
{
    public uint GetattrFlags;
    public uint Reserved;
    public ulong Fh;
    public uint SxFlags;
    public uint SxMask;
}

/// <summary>struct fuse_dirent header (24 bytes; the name follows, padded to 8).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseDirent
{
    public ulong Ino;
    public ulong Off;
    public uint NameLen;
    public uint Type;
}
