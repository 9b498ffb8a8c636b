using System.Runtime.InteropServices;

namespace InSpatialFs.Fuse.Abi;

/// <summary>struct fuse_entry_out (128 bytes): the answer to LOOKUP, MKNOD, MKDIR, SYMLINK, LINK, CREATE, TMPFILE.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseEntryOut
{
    public ulong NodeId;
    public ulong Generation;
    public ulong EntryValid;
    public ulong AttrValid;
    public uint EntryValidNsec;
    public uint AttrValidNsec;
    public FuseAttr Attr;
}

/// <summary>struct fuse_attr_out (104 bytes): the answer to GETATTR and SETATTR.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseAttrOut
{
    public ulong AttrValid;
    public uint AttrValidNsec;
    public uint Dummy;
    public FuseAttr Attr;
}

/// <summary>struct fuse_open_out (16 bytes): the answer to OPEN, OPENDIR and (after the entry) CREATE.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct FuseOpenOut
{
    public ulong Fh;
    public FopenFlags OpenFlags;
    /// <summary>7.40 (was padding): the backing id from FUSE_DEV_IOC_BACKING_OPEN when OpenFlags has Passthrough.</summary>
    public int BackingId;
}
