using System.IO.Hashing;
using InSpatialFs.Interop;

namespace InSpatialFs.Storage;

/// <summary>
/// Change stamps of open directories (<see cref="IOpenDirectory.ChangeStamp"/>). The proxy lets the kernel keep a
/// cached listing from one OPENDIR to the next only while the stamp stays the same, so a stamp must change with every
/// change to the entries, including changes made on the host behind the mount.
/// </summary>
public static class DirectoryStamp
{
    /// <summary>The backend cannot tell: the kernel keeps no listing across opens.</summary>
    public const ulong Unknown = 0;

    /// <summary>
    /// A directory changed this recently gets no stamp. A filesystem with coarse timestamps gives every change within
    /// one clock tick (4-10 ms) the same ctime, so a change right after this stat could leave the stamp as it is; once
    /// the last change is older than a tick, the next one carries a later ctime.
    /// </summary>
    private const long RecentNanoseconds = 20_000_000;

    /// <summary>
    /// A host directory's stamp from its statx: inode, ctime, mtime, size and link count (tmpfs's unlink can leave the
    /// ctime as it was, and changes the size). Unknown when the ctime is within <see cref="RecentNanoseconds"/> of now.
    /// </summary>
    public static ulong FromStat(in StatX st)
    {
        long ctimeNs = (st.Ctime.Sec * 1_000_000_000) + st.Ctime.Nsec;
        long nowNs = (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) * 100;
        if (nowNs - ctimeNs < RecentNanoseconds)
        {
            return Unknown;
        }

        Span<ulong> fields = [st.Ino, (ulong)st.Ctime.Sec, st.Ctime.Nsec, (ulong)st.Mtime.Sec, st.Mtime.Nsec, st.Size, st.Nlink];
        return Known(XxHash3.HashToUInt64(System.Runtime.InteropServices.MemoryMarshal.AsBytes(fields)));
    }

    /// <summary>From a counter that the backend bumps on every change to the directory's entries.</summary>
    public static ulong FromVersion(long version) => Known((ulong)version + 1);

    /// <summary>Any value but <see cref="Unknown"/>.</summary>
    public static ulong Known(ulong value) => value == Unknown ? 1 : value;
}
