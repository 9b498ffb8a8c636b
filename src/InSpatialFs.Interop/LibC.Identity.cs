namespace InSpatialFs.Interop;

/// <summary>Constants for caller identity checks (which filesystem a process's root directory lies on).</summary>
public static partial class LibC
{
    /// <summary>statx(2): answer from cached attributes; on FUSE this sends no request (safe on a reader thread).</summary>
    public const int AT_STATX_DONT_SYNC = 0x4000;

    public const uint STATX_INO = 0x100;
}
