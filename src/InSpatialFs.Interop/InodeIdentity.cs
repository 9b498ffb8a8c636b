namespace InSpatialFs.Interop;

/// <summary>
/// What a file IS, independent of its names: the device and inode number, plus a generation that tells a
/// recycled inode number from the file that held it before (for host files, a hash of the file handle, whose
/// bytes carry the filesystem's i_generation). Policy marks that must follow the object through renames and
/// extra links ("written at run time", "named by a forbidden path") key on this. <see cref="Persistent"/>: the
/// identity names the same file after a daemon restart (host files; an in-memory node's number does not).
/// </summary>
public readonly record struct InodeIdentity(ulong Device, ulong Inode, uint Generation, bool Persistent)
{
    /// <summary>No identity known (a node that is gone, or a backend that could not say).</summary>
    public bool IsNone => Device == 0 && Inode == 0;

    /// <summary>FNV-1a over a file handle's bytes: the generation part of a host identity.</summary>
    public static uint HashHandle(ReadOnlySpan<byte> handle)
    {
        uint h = 2166136261;
        foreach (byte b in handle)
        {
            h = (h ^ b) * 16777619;
        }

        return h;
    }
}
