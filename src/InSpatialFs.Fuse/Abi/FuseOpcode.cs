namespace InSpatialFs.Fuse.Abi;

/// <summary>enum fuse_opcode (protocol 7.45). Values are the kernel's.</summary>
public enum FuseOpcode : uint
{
    Lookup = 1,
    Forget = 2,
    GetAttr = 3,
    SetAttr = 4,
    ReadLink = 5,
    Symlink = 6,
    MkNod = 8,
    MkDir = 9,
    Unlink = 10,
    RmDir = 11,
    Rename = 12,
    Link = 13,
    Open = 14,
    Read = 15,
    Write = 16,
    StatFs = 17,
    Release = 18,
    Fsync = 20,
    SetXattr = 21,
    GetXattr = 22,
    ListXattr = 23,
    RemoveXattr = 24,
    Flush = 25,
    Init = 26,
    OpenDir = 27,
    ReadDir = 28,
    ReleaseDir = 29,
    FsyncDir = 30,
    GetLk = 31,
    SetLk = 32,
    SetLkW = 33,
    Access = 34,
    Create = 35,
    Interrupt = 36,
    Bmap = 37,
    Destroy = 38,
    Ioctl = 39,
    Poll = 40,
    NotifyReply = 41,
    BatchForget = 42,
    Fallocate = 43,
    ReadDirPlus = 44,
    Rename2 = 45,
    Lseek = 46,
    CopyFileRange = 47,
    SetupMapping = 48,
    RemoveMapping = 49,
    SyncFs = 50,
    TmpFile = 51,
    /// <summary>7.39, newer than Debian's 7.38 header.</summary>
    Statx = 52,
    /// <summary>7.45, newer than Debian's 7.38 header.</summary>
    CopyFileRange64 = 53,
    CuseInit = 4096,
}

/// <summary>enum fuse_notify_code: the error field of a daemon-to-kernel notification.</summary>
public enum FuseNotifyCode : int
{
    Poll = 1,
    InvalInode = 2,
    InvalEntry = 3,
    Store = 4,
    Retrieve = 5,
    Delete = 6,
    /// <summary>7.40, newer than 7.38.</summary>
    Resend = 7,
    /// <summary>7.44, newer than 7.38.</summary>
    IncEpoch = 8,
    /// <summary>7.45, newer than 7.38.</summary>
    Prune = 9,
}
