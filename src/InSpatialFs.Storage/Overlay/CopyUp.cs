using System.Security.Cryptography;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Host;
using static InSpatialFs.Interop.LibC;

namespace InSpatialFs.Storage.Overlay;

/// <summary>
/// Copies a lower regular file into the upper layer the way the kernel's overlayfs does, atomically: the copy is
/// built as an unnamed O_TMPFILE in the work directory (same filesystem as the upper layer), given its data (holes
/// kept: SEEK_DATA/SEEK_HOLE, data by copy_file_range, which reflinks where the filesystem can), owner, mode and
/// times, then linked under a temporary name and renamed into the upper directory with RENAME_NOREPLACE. A crash at
/// any point leaves either no upper file (the lower one still shows) or the whole copy, never a torn one; leftovers
/// in the work directory are removed at the next mount (<see cref="CleanWorkDirectory"/>).
/// </summary>
internal static unsafe class CopyUp
{
    public const string WorkSubdirectory = "work";

    /// <summary>
    /// The copy of <paramref name="lowerIno"/> becomes <paramref name="name"/> in the upper directory
    /// <paramref name="upperParent"/>, carrying <paramref name="origin"/> (<see cref="OverlayFormat.OriginXattr"/>) from
    /// before it has a name; where the upper filesystem takes no such xattr the copy goes without it.
    /// </summary>
    public static Errno File(HostFileSystem lower, ulong lowerIno, HostFileSystem upper, ulong upperParent, ReadOnlySpan<byte> name, SafeFd work,
        ReadOnlySpan<byte> origin)
    {
        Errno e = lower.ReopenForCopy(lowerIno, O_RDONLY, out SafeFd source);
        using (source)
        {
            if (e != Errno.OK) return e;
            StatX st;
            byte empty = 0;
            if (statx(source.Fd, &empty, AT_EMPTY_PATH, STATX_BASIC_STATS, &st) != 0) return ErrnoExtensions.LastPInvoke();
            Span<byte> dotZ = [(byte)'.', 0];
            int raw;
            fixed (byte* dot = dotZ) raw = openat(work.Fd, dot, O_TMPFILE | O_RDWR | O_CLOEXEC, 0x180);
            if (raw < 0) return ErrnoExtensions.LastPInvoke();
            using var copy = new SafeFd(raw);
            if ((e = CopyData(source.Fd, copy.Fd, (long)st.Size)) != Errno.OK) return e;
            if (fchownat(copy.Fd, &empty, st.Uid, st.Gid, AT_EMPTY_PATH) != 0) return ErrnoExtensions.LastPInvoke();
            if (fchmodat2(copy.Fd, &empty, (uint)(st.Mode & 0xFFF), AT_EMPTY_PATH) != 0) return ErrnoExtensions.LastPInvoke();
            TimeSpec* times = stackalloc TimeSpec[2];
            times[0] = new TimeSpec { Sec = st.Atime.Sec, Nsec = st.Atime.Nsec };
            times[1] = new TimeSpec { Sec = st.Mtime.Sec, Nsec = st.Mtime.Nsec };
            if (utimensat_raw(copy.Fd, &empty, times, AT_EMPTY_PATH) != 0) return ErrnoExtensions.LastPInvoke();
            SetOrigin(copy.Fd, origin);
            return Publish(copy.Fd, upper, upperParent, name, work);
        }
    }

    /// <summary>Best effort: a copy without it is only not recognised by a server that takes over (see OriginXattr).</summary>
    internal static void SetOrigin(int fd, ReadOnlySpan<byte> origin)
    {
        byte empty = 0;
        fixed (byte* name = OverlayFormat.OriginXattrZ)
        fixed (byte* value = origin)
        {
            var args = new XattrArgs { Value = (ulong)value, Size = (uint)origin.Length };
            setxattrat(fd, &empty, AT_EMPTY_PATH, name, &args);
        }
    }

    /// <summary>Data only where the source has data: holes stay holes (SEEK_DATA/SEEK_HOLE), then the exact size.</summary>
    private static Errno CopyData(int source, int destination, long size)
    {
        long offset = 0;
        while (offset < size)
        {
            long data = lseek(source, offset, SEEK_DATA);
            if (data < 0)
            {
                Errno e = ErrnoExtensions.LastPInvoke();
                if (e == Errno.ENXIO) break; // only a hole is left
                return e;
            }

            long hole = lseek(source, data, SEEK_HOLE);
            if (hole < 0) return ErrnoExtensions.LastPInvoke();
            long inOff = data, outOff = data;
            while (inOff < hole)
            {
                nint n = copy_file_range(source, &inOff, destination, &outOff, (nint)Math.Min(hole - inOff, 1L << 30), 0);
                if (n < 0) return ErrnoExtensions.LastPInvoke();
                if (n == 0) break; // the source shrank under us: what was copied stands
            }

            offset = hole;
        }

        return ftruncate(destination, size) == 0 ? Errno.OK : ErrnoExtensions.LastPInvoke();
    }

    /// <summary>Bytes of <see cref="TemporaryName"/>, its NUL included.</summary>
    public const int TemporaryNameLength = 31;

    /// <summary>A random "#isfs-..." name, NUL-terminated, for the work directory (<see cref="CleanWorkDirectory"/> removes leftovers).</summary>
    public static void TemporaryName(Span<byte> name)
    {
        "#isfs-"u8.CopyTo(name);
        Span<byte> random = stackalloc byte[12];
        RandomNumberGenerator.Fill(random);
        for (int i = 0; i < random.Length; i++) name[6 + i * 2] = (byte)('a' + (random[i] & 0xF));
        for (int i = 0; i < random.Length; i++) name[7 + i * 2] = (byte)('a' + (random[i] >> 4));
        name[30] = 0;
    }

    /// <summary>
    /// Removes <paramref name="nameZ"/> (NUL-terminated) from the work directory: a file, or a directory moved out of the
    /// upper layer by a removal, which holds only whiteouts (it was empty in the merged view).
    /// </summary>
    public static bool RemoveFromWork(SafeFd work, ReadOnlySpan<byte> nameZ)
    {
        fixed (byte* p = nameZ)
        {
            if (unlinkat(work.Fd, p, 0) == 0) return true;
            if (ErrnoExtensions.LastPInvoke() is not (Errno.EISDIR or Errno.EPERM)) return false;
            int dir = openat(work.Fd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
            if (dir < 0) return false;
            using (var inside = new SafeFd(dir))
            {
                foreach (byte[] entry in DirectoryNames.Read(inside.Fd))
                {
                    byte[] entryZ = [.. entry, 0];
                    fixed (byte* e = entryZ) unlinkat(inside.Fd, e, 0);
                }
            }

            return unlinkat(work.Fd, p, AT_REMOVEDIR) == 0;
        }
    }

    /// <summary>Links the unnamed copy into the work directory under a random name and renames it into place.</summary>
    private static Errno Publish(int copy, HostFileSystem upper, ulong upperParent, ReadOnlySpan<byte> name, SafeFd work)
    {
        Span<byte> temporary = stackalloc byte[TemporaryNameLength];
        TemporaryName(temporary);
        byte empty = 0;
        fixed (byte* t = temporary)
        {
            if (linkat(copy, &empty, work.Fd, t, AT_EMPTY_PATH) != 0) return ErrnoExtensions.LastPInvoke();
            Errno e = upper.BorrowForCopy(upperParent, out FdLease parent);
            if (e == Errno.OK)
            {
                using (parent)
                {
                    Span<byte> nameZ = stackalloc byte[name.Length + 1];
                    name.CopyTo(nameZ);
                    fixed (byte* n = nameZ)
                    {
                        e = renameat2(work.Fd, t, parent.Fd, n, RENAME_NOREPLACE) == 0 ? Errno.OK : ErrnoExtensions.LastPInvoke();
                    }
                }
            }

            if (e != Errno.OK) unlinkat(work.Fd, t, 0);
            return e;
        }
    }

    /// <summary>At mount: removes what an interrupted copy-up left in the work directory (never visible in the tree).</summary>
    public static int CleanWorkDirectory(SafeFd work)
    {
        int removed = 0;
        foreach (byte[] found in DirectoryNames.Read(work.Fd))
        {
            if (!found.AsSpan().StartsWith("#isfs-"u8)) continue;
            if (RemoveFromWork(work, [.. found, 0])) removed++; // a copy cut short, or an object a removal moved out
        }

        return removed;
    }
}
