using InSpatialFs.Interop;

namespace InSpatialFs.Storage.Memory;

/// <summary>
/// The data of one regular file kept in the <see cref="DataVolume"/>: one file per node (hard links share it), so the
/// kernel holds the bytes, the holes, the size and the data timestamps (atime, mtime). A descriptor is held only while
/// the node has open handles (<see cref="Acquire"/>/<see cref="ReleaseDescriptor"/>), so the daemon's descriptor count
/// follows open files, not files; calls without a handle open the file for the one call.
/// The descriptor is opened and closed under this object's monitor; it is used by callers that hold a handle, which
/// keeps it open (its last release runs under the namespace write lock, which excludes them).
/// </summary>
internal sealed unsafe class KernelFile(DataVolume volume, ulong id)
{
    private int _fd = -1;
    private int _users;

    public ulong Id { get; } = id;

    /// <summary>The open descriptor (-1 when no handle is open).</summary>
    public int Descriptor => Volatile.Read(ref _fd);

    /// <summary>Opens the descriptor for a new handle (or counts one more user of it).</summary>
    public Errno Acquire()
    {
        lock (this)
        {
            if (_users == 0)
            {
                var error = volume.Open(Id, out int fd);
                if (error != Errno.OK)
                {
                    return error;
                }
                Volatile.Write(ref _fd, fd);
            }
            _users++;
            return Errno.OK;
        }
    }

    /// <summary>A handle closed: the descriptor goes with the last one.</summary>
    public void ReleaseDescriptor()
    {
        lock (this)
        {
            if (_users == 0)
            {
                return;
            }
            if (--_users == 0)
            {
                LibC.close(_fd);
                Volatile.Write(ref _fd, -1);
            }
        }
    }

    /// <summary>A duplicate of the open descriptor for the kernel to read and write directly (FUSE passthrough).</summary>
    public SafeFd? DuplicateForPassthrough()
    {
        int fd = Descriptor;
        if (fd < 0)
        {
            return null;
        }
        int dup = LibC.fcntl(fd, LibC.F_DUPFD_CLOEXEC, 0);
        return dup >= 0 ? new SafeFd(dup) : null;
    }

    public Errno Stat(out StatX stat)
    {
        int fd = Descriptor;
        if (fd < 0)
        {
            return volume.Stat(Id, out stat);
        }
        fixed (StatX* p = &stat)
        fixed (byte* empty = "\0"u8)
        {
            return LibC.statx(fd, empty, LibC.AT_EMPTY_PATH, LibC.STATX_BASIC_STATS, p) == 0 ? Errno.OK : ErrnoExtensions.LastPInvoke();
        }
    }

    public long Size => Stat(out var stat) == Errno.OK ? (long)stat.Size : 0;

    /// <summary>Runs <paramref name="call"/> on the open descriptor, or on one opened for this call alone.</summary>
    public Errno With<TState>(TState state, Func<int, TState, Errno> call)
    {
        int fd = Descriptor;
        if (fd >= 0)
        {
            return call(fd, state);
        }
        var error = volume.Open(Id, out fd);
        if (error != Errno.OK)
        {
            return error;
        }
        try
        {
            return call(fd, state);
        }
        finally
        {
            LibC.close(fd);
        }
    }

    /// <summary>Closes a descriptor left open (filesystem disposal).</summary>
    public void CloseDescriptor()
    {
        lock (this)
        {
            if (_fd >= 0)
            {
                LibC.close(_fd);
                _fd = -1;
            }
            _users = 0;
        }
    }
}
