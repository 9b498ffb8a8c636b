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
    public long Lookups;
    public int OpenHandles;
    public SafeFd? Pinned;
}

/// <summary>An open file: a real descriptor held for the life of the FUSE file handle.</summary>
internal sealed class HostOpenFile(HostNode node, SafeFd fd)
{
    public HostNode Node { get; } = node;
    public SafeFd Fd { get; } = fd;
}

/// <summary>An open directory: a listing snapshot so that cookies (index + 1) survive creates and deletes.</summary>
internal sealed class HostDirHandle(HostNode node)
{
    public HostNode Node { get; } = node;
    public readonly Lock Gate = new();
    public DirListing Listing = new();

    /// <summary>Set by OPENDIR, which took the listing: the first READDIR at offset 0 uses it instead of listing again.</summary>
    public bool FreshFromOpen;
}

/// <summary>A directory's entries as getdents64 gave them, names packed into one buffer (two arrays per listing, not one per name).</summary>
internal sealed class DirListing
{
    private byte[] _names = new byte[4096];
    private (int Start, int Length, ulong HostIno, uint Type)[] _entries = new (int, int, ulong, uint)[64];
    private int _used;

    public int Count { get; private set; }

    public void Add(ReadOnlySpan<byte> name, ulong hostIno, uint type)
    {
        if (_used + name.Length > _names.Length) Array.Resize(ref _names, Math.Max(_names.Length * 2, _used + name.Length));
        if (Count == _entries.Length) Array.Resize(ref _entries, _entries.Length * 2);
        name.CopyTo(_names.AsSpan(_used));
        _entries[Count++] = (_used, name.Length, hostIno, type);
        _used += name.Length;
    }

    public ReadOnlySpan<byte> NameAt(int i) => _names.AsSpan(_entries[i].Start, _entries[i].Length);

    public ulong HostInoAt(int i) => _entries[i].HostIno;

    public uint TypeAt(int i) => _entries[i].Type;
}
