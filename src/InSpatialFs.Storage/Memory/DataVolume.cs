using System.Text;
using InSpatialFs.Interop;

namespace InSpatialFs.Storage.Memory;

/// <summary>
/// Where a <see cref="MemoryFileSystem"/> keeps the bytes of its regular files: a private tmpfs the daemon creates
/// detached with the new mount API (fsopen, fsconfig, fsmount). The mount is attached nowhere, so no path on the host
/// reaches it and no mount table lists it; only <see cref="_root"/> leads into it, and it vanishes (pages and all)
/// when that descriptor and the last file opened in it are closed, daemon exit included. The kernel enforces
/// size= as ENOSPC, frees pages on unlink and serves the files at page-cache speed, also through FUSE passthrough.
/// Each node's data is one flat file named by the node id in hex; names are made here, never taken from a request.
/// Thread-safe: every call is one or two syscalls on the root descriptor.
/// </summary>
internal sealed unsafe class DataVolume : IDisposable
{
    private const int NameLength = 16;

    private readonly SafeFd _root;

    private DataVolume(SafeFd root, long sizeLimit)
    {
        _root = root;
        SizeLimit = sizeLimit;
    }

    /// <summary>
    /// A volume an earlier server created, from the descriptor the keeper held for it (<see cref="DuplicateRoot"/>): its
    /// files are the data of the nodes the earlier server's journal names. Takes ownership of <paramref name="root"/>.
    /// </summary>
    public static DataVolume Adopt(SafeFd root, long sizeLimit) => new(root, sizeLimit);

    /// <summary>A new descriptor of the volume's root, for the keeper to hold (the volume lives while any is open).</summary>
    public SafeFd? DuplicateRoot()
    {
        int dup = LibC.fcntl(_root.Fd, LibC.F_DUPFD_CLOEXEC, 0);
        return dup >= 0 ? new SafeFd(dup) : null;
    }

    /// <summary>The ids of the data files in the volume.</summary>
    public List<ulong> Ids()
    {
        var ids = new List<ulong>();
        foreach (byte[] name in DirectoryNames.Read(_root.Fd))
        {
            if (name.Length == NameLength && ulong.TryParse(name, System.Globalization.NumberStyles.AllowHexSpecifier, null, out ulong id))
            {
                ids.Add(id);
            }
        }

        return ids;
    }

    /// <summary>
    /// Removes every data file whose node <paramref name="keep"/> does not claim (files of nodes created or freed by a
    /// server that died before its journal said so); the number removed.
    /// </summary>
    public int RemoveUnclaimed(Func<ulong, bool> keep)
    {
        List<ulong> unclaimed = Ids().FindAll(id => !keep(id));
        foreach (ulong id in unclaimed)
        {
            Remove(id);
        }
        return unclaimed.Count;
    }

    /// <summary>The size= the kernel enforces (bytes).</summary>
    public long SizeLimit { get; }

    /// <summary>
    /// Creates the private tmpfs: size= the byte limit (the kernel answers ENOSPC past it), nr_inodes the node limit,
    /// mode 0700, mounted nosuid, nodev and noatime (reads leave atime alone, as the managed store did). Null when the
    /// kernel or the daemon's privileges do not allow it; <paramref name="error"/> then says why, and the caller keeps
    /// data in managed pages.
    /// </summary>
    public static DataVolume? TryCreate(long sizeLimit, long inodeLimit, out Errno error)
    {
        int fsFd;
        fixed (byte* fsName = "tmpfs\0"u8)
        {
            fsFd = LibC.fsopen(fsName, LibC.FSOPEN_CLOEXEC);
        }
        if (fsFd < 0)
        {
            error = ErrnoExtensions.LastPInvoke();
            return null;
        }
        try
        {
            // The root directory and a little slack besides the nodes: tmpfs counts its root as an inode.
            if (Set(fsFd, "size", sizeLimit.ToString(System.Globalization.CultureInfo.InvariantCulture), out error)
                && Set(fsFd, "nr_inodes", (inodeLimit + 16).ToString(System.Globalization.CultureInfo.InvariantCulture), out error)
                && Set(fsFd, "mode", "0700", out error))
            {
                if (LibC.fsconfig(fsFd, LibC.FSCONFIG_CMD_CREATE, null, null, 0) < 0)
                {
                    error = ErrnoExtensions.LastPInvoke();
                    return null;
                }
                int mountFd = LibC.fsmount(fsFd, LibC.FSMOUNT_CLOEXEC, LibC.MOUNT_ATTR_NOSUID | LibC.MOUNT_ATTR_NODEV | LibC.MOUNT_ATTR_NOATIME);
                if (mountFd < 0)
                {
                    error = ErrnoExtensions.LastPInvoke();
                    return null;
                }
                error = Errno.OK;
                return new DataVolume(new SafeFd(mountFd), sizeLimit);
            }
            return null;
        }
        finally
        {
            LibC.close(fsFd);
        }
    }

    /// <summary>Bytes of file data the kernel holds (tmpfs blocks in use).</summary>
    public long UsedBytes
    {
        get
        {
            StatFsBuf buf;
            if (LibC.fstatfs(_root.Fd, &buf) != 0)
            {
                return 0;
            }
            return (long)(buf.Blocks - buf.Bfree) * buf.Bsize;
        }
    }

    /// <summary>Creates the empty data file of node <paramref name="id"/> (EEXIST would mean an id was reused: a bug).</summary>
    public Errno Create(ulong id)
    {
        byte* name = stackalloc byte[NameLength + 1];
        NameOf(id, name);
        return LibC.mknodat(_root.Fd, name, LibC.S_IFREG | 0x180 /* 0600 */, 0) == 0 ? Errno.OK : ErrnoExtensions.LastPInvoke();
    }

    /// <summary>Opens the data file read-write; the raw descriptor is the caller's to close.</summary>
    public Errno Open(ulong id, out int fd)
    {
        byte* name = stackalloc byte[NameLength + 1];
        NameOf(id, name);
        // RESOLVE_BENEATH and no symlinks: the name is ours and flat, but nothing may ever lead out of the volume.
        var how = new OpenHow
        {
            Flags = (ulong)(LibC.O_RDWR | LibC.O_CLOEXEC | LibC.O_NOFOLLOW),
            Resolve = LibC.RESOLVE_BENEATH | LibC.RESOLVE_NO_SYMLINKS | LibC.RESOLVE_NO_MAGICLINKS | LibC.RESOLVE_NO_XDEV,
        };
        fd = LibC.openat2(_root.Fd, name, &how);
        return fd >= 0 ? Errno.OK : ErrnoExtensions.LastPInvoke();
    }

    /// <summary>statx of the data file by name (for nodes with no open descriptor).</summary>
    public Errno Stat(ulong id, out StatX stat)
    {
        byte* name = stackalloc byte[NameLength + 1];
        NameOf(id, name);
        fixed (StatX* p = &stat)
        {
            return LibC.statx(_root.Fd, name, LibC.AT_SYMLINK_NOFOLLOW, LibC.STATX_BASIC_STATS, p) == 0 ? Errno.OK : ErrnoExtensions.LastPInvoke();
        }
    }

    /// <summary>utimensat of the data file: times[0] atime, times[1] mtime (UTIME_OMIT leaves one alone).</summary>
    public Errno SetTimes(ulong id, TimeSpec* times)
    {
        byte* name = stackalloc byte[NameLength + 1];
        NameOf(id, name);
        return LibC.utimensat_raw(_root.Fd, name, times, LibC.AT_SYMLINK_NOFOLLOW) == 0 ? Errno.OK : ErrnoExtensions.LastPInvoke();
    }

    /// <summary>Removes the data file; its pages go back when the last descriptor of it (a passthrough one too) closes.</summary>
    public void Remove(ulong id)
    {
        byte* name = stackalloc byte[NameLength + 1];
        NameOf(id, name);
        LibC.unlinkat(_root.Fd, name, 0);
    }

    public void Dispose() => _root.Dispose();

    private static void NameOf(ulong id, byte* name)
    {
        for (int i = NameLength - 1; i >= 0; i--)
        {
            name[i] = (byte)"0123456789abcdef"[(int)(id & 0xF)];
            id >>= 4;
        }
        name[NameLength] = 0;
    }

    private static bool Set(int fsFd, string key, string value, out Errno error)
    {
        byte[] k = Encoding.ASCII.GetBytes(key + "\0");
        byte[] v = Encoding.ASCII.GetBytes(value + "\0");
        fixed (byte* kp = k, vp = v)
        {
            if (LibC.fsconfig(fsFd, LibC.FSCONFIG_SET_STRING, kp, vp, 0) < 0)
            {
                error = ErrnoExtensions.LastPInvoke();
                return false;
            }
        }
        error = Errno.OK;
        return true;
    }
}
