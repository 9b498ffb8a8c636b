namespace InSpatialFs.Fuse.Abi;

/// <summary>
/// INIT flags as one 64-bit set: bits 0..31 travel in init flags, bits 32..63 in flags2 (read by the kernel
/// only when the reply sets <see cref="InitExt"/>).
/// </summary>
[Flags]
public enum FuseInitFlags : ulong
{
    None = 0,
    AsyncRead = 1UL << 0,
    PosixLocks = 1UL << 1,
    FileOps = 1UL << 2,
    AtomicOTrunc = 1UL << 3,
    ExportSupport = 1UL << 4,
    BigWrites = 1UL << 5,
    DontMask = 1UL << 6,
    SpliceWrite = 1UL << 7,
    SpliceMove = 1UL << 8,
    SpliceRead = 1UL << 9,
    FlockLocks = 1UL << 10,
    HasIoctlDir = 1UL << 11,
    AutoInvalData = 1UL << 12,
    DoReaddirplus = 1UL << 13,
    ReaddirplusAuto = 1UL << 14,
    AsyncDio = 1UL << 15,
    WritebackCache = 1UL << 16,
    NoOpenSupport = 1UL << 17,
    ParallelDirops = 1UL << 18,
    HandleKillpriv = 1UL << 19,
    PosixAcl = 1UL << 20,
    AbortError = 1UL << 21,
    MaxPages = 1UL << 22,
    CacheSymlinks = 1UL << 23,
    NoOpendirSupport = 1UL << 24,
    ExplicitInvalData = 1UL << 25,
    MapAlignment = 1UL << 26,
    Submounts = 1UL << 27,
    HandleKillprivV2 = 1UL << 28,
    SetxattrExt = 1UL << 29,
    InitExt = 1UL << 30,
    InitReserved = 1UL << 31,
    SecurityCtx = 1UL << 32,
    HasInodeDax = 1UL << 33,
    CreateSuppGroup = 1UL << 34,
    HasExpireOnly = 1UL << 35,
    /// <summary>7.39, newer than 7.38.</summary>
    DirectIoAllowMmap = 1UL << 36,
    /// <summary>7.40, newer than 7.38: backing-file passthrough (needs max_stack_depth, no writeback cache).</summary>
    Passthrough = 1UL << 37,
    /// <summary>7.40, newer than 7.38.</summary>
    NoExportSupport = 1UL << 38,
    /// <summary>7.40, newer than 7.38.</summary>
    HasResend = 1UL << 39,
    /// <summary>7.41, newer than 7.38.</summary>
    AllowIdmap = 1UL << 40,
    /// <summary>7.42, newer than 7.38.</summary>
    OverIoUring = 1UL << 41,
    /// <summary>7.43, newer than 7.38.</summary>
    RequestTimeout = 1UL << 42,
}

/// <summary>Protocol constants and small flag sets that are not worth an enum each.</summary>
public static class FuseConstants
{
    public const uint KernelVersion = 7;
    /// <summary>The minor version this server speaks (7.45, kernel 6.18).</summary>
    public const uint KernelMinorVersion = 45;
    /// <summary>Oldest minor accepted: 7.31 (Linux 5.4) has every struct size used here.</summary>
    public const uint MinimumMinorVersion = 31;
    public const ulong RootId = 1;
    public const int MinReadBuffer = 8192;
    /// <summary>Bit 63 of in_header.unique marks a resent request (7.40).</summary>
    public const ulong UniqueResend = 1UL << 63;
    /// <summary>Bit 0 of in_header.unique marks an INTERRUPT request.</summary>
    public const ulong UniqueInterruptBit = 1;

    public const uint GetattrFh = 1;
    public const uint FsyncFdatasync = 1;
    public const uint ReleaseFlush = 1, ReleaseFlockUnlock = 2;
    public const uint WriteCache = 1, WriteLockOwner = 2, WriteKillSuidgid = 4;
    public const uint ReadLockOwner = 2;
    public const uint OpenKillSuidgid = 1;
    public const uint SetxattrAclKillSgid = 1;
    public const uint ExpireOnly = 1;

    /// <summary>The kernel reads at most a page minus one for READLINK.</summary>
    public const int ReadLinkMax = 4095;
    /// <summary>Longest name the kernel accepts in a notification (FUSE_NAME_MAX).</summary>
    public const int NameMax = 1024;
}

/// <summary>/dev/fuse ioctl numbers (magic 229).</summary>
public static class FuseIoctl
{
    /// <summary>_IOR(229, 0, u32): attach a new /dev/fuse fd to the session whose fd is passed.</summary>
    public const uint DevIocClone = 0x8004E500;
    /// <summary>_IOW(229, 1, struct fuse_backing_map), 7.40: newer than 7.38.</summary>
    public const uint DevIocBackingOpen = 0x4010E501;
    /// <summary>_IOW(229, 2, u32), 7.40: newer than 7.38.</summary>
    public const uint DevIocBackingClose = 0x4004E502;
    /// <summary>_IO(229, 3): newer than 7.38.</summary>
    public const uint DevIocSyncInit = 0x0000E503;
}
