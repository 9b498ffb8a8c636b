using InSpatialFs.Interop;

namespace InSpatialFs.Storage.Host;

/// <summary>
/// One host inode the kernel knows about. It holds a file handle (name_to_handle_at), never a path and
/// normally no descriptor: descriptors come from the <see cref="DescriptorCache"/>. <see cref="Pinned"/> is a
/// descriptor held for the node's life only where a handle cannot reopen it: the root, filesystems without
/// export support, O_TMPFILE files, and nodes whose last name was removed while the kernel still uses them.
/// Mutable fields are guarded by the backend's node lock.
/// </summary>
internal sealed class HostNode(ulong id, ulong dev, ulong ino, uint type, byte[]? handle, int mountId)
{
    public ulong Id { get; } = id;
    public ulong Dev { get; } = dev;
    public ulong HostIno { get; } = ino;
    /// <summary>S_IFMT bits; a host inode never changes type.</summary>
    public uint Type { get; } = type;
    /// <summary>struct file_handle bytes (header included), or null when the filesystem cannot export handles.</summary>
    public byte[]? Handle { get; } = handle;
    public int MountId { get; } = mountId;

    public const int HandleProven = 0, HandleUnproven = 1, HandleWrong = 2;

    /// <summary>
    /// Whether <see cref="Handle"/> is known to name this node's inode: proven when it was taken from a descriptor of
    /// the inode (the usual case); unproven when a lookup took it by name after the statx that keyed the node (the name
    /// may have been replaced in between), until a descriptor opened from it shows the inode; wrong once one showed
    /// another inode (the node then answers ESTALE). Written without the node lock: it only moves away from unproven.
    /// </summary>
    public int HandleCheck;
    /// <summary>Holders of the node id (Retain/Release): the proxy's node table, or an overlay's layer objects.</summary>
    public long Holds;
    /// <summary>Queued to be dropped if still unheld and closed when its turn comes (see HostFileSystem.EntryReturnedLocked).</summary>
    public bool Aging;
    public int OpenHandles;
    public SafeFd? Pinned;
    /// <summary>
    /// The descriptor of one of the node's open files (regular files only), lent to the node's metadata requests while
    /// that file is open: the GETXATTR the kernel sends before the first write, a SETATTR without a handle. A file
    /// being written then needs no O_PATH descriptor of its own. Read without the lock; its owner may close it, which
    /// a borrower sees as a failed borrow (<see cref="FdLease.TryBorrow"/>).
    /// </summary>
    public SafeFd? OpenFd;
}
