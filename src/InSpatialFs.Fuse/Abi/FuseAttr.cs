using System.Runtime.InteropServices;

namespace InSpatialFs.Fuse.Abi;

// Attribute-level ABI types. Storage backends fill these directly (the may-reference matrix allows
// Storage -> Fuse for attribute/ABI types only). Layout: include/uapi/linux/fuse.h, checked by AbiLayoutTests.

/// <summary>struct fuse_attr (88 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseAttr
{
    public ulong Ino;
    public ulong Size;
    public ulong Blocks;
    public ulong Atime;
    public ulong Mtime;
    public ulong Ctime;
    public uint AtimeNsec;
    public uint MtimeNsec;
    public uint CtimeNsec;
    public uint Mode;
    public uint Nlink;
    public uint Uid;
    public uint Gid;
    public uint Rdev;
    public uint BlkSize;
    public uint Flags;
}

/// <summary>struct fuse_kstatfs (80 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct FuseKstatfs
{
    public ulong Blocks;
    public ulong Bfree;
    public ulong Bavail;
    public ulong Files;
    public ulong Ffree;
    public uint Bsize;
    public uint NameLen;
    public uint Frsize;
    public uint Padding;
    public fixed uint Spare[6];
}

/// <summary>struct fuse_setattr_in (88 bytes). <see cref="Valid"/> holds <see cref="FattrFlags"/>.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseSetattrIn
{
    public uint Valid;
    public uint Padding;
    public ulong Fh;
    public ulong Size;
    public ulong LockOwner;
    public ulong Atime;
    public ulong Mtime;
    public ulong Ctime;
    public uint AtimeNsec;
    public uint MtimeNsec;
    public uint CtimeNsec;
    public uint Mode;
    public uint Unused4;
    public uint Uid;
    public uint Gid;
    public uint Unused5;
}

/// <summary>FATTR_* bits of <see cref="FuseSetattrIn.Valid"/>.</summary>
[Flags]
public enum FattrFlags : uint
{
    Mode = 1 << 0,
    Uid = 1 << 1,
    Gid = 1 << 2,
    Size = 1 << 3,
    Atime = 1 << 4,
    Mtime = 1 << 5,
    Fh = 1 << 6,
    AtimeNow = 1 << 7,
    MtimeNow = 1 << 8,
    LockOwner = 1 << 9,
    Ctime = 1 << 10,
    KillSuidGid = 1 << 11,
}

/// <summary>FOPEN_* bits of fuse_open_out.open_flags.</summary>
[Flags]
public enum FopenFlags : uint
{
    None = 0,
    DirectIo = 1 << 0,
    KeepCache = 1 << 1,
    NonSeekable = 1 << 2,
    CacheDir = 1 << 3,
    Stream = 1 << 4,
    NoFlush = 1 << 5,
    ParallelDirectWrites = 1 << 6,
    /// <summary>7.40: the kernel does read/write on the backing file given by backing_id.</summary>
    Passthrough = 1 << 7,
}
