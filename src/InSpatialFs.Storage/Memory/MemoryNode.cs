using InSpatialFs.Interop;

namespace InSpatialFs.Storage.Memory;

/// <summary>
/// One inode of the memory filesystem. Metadata fields change only under the namespace write lock;
/// <see cref="Content"/>, its size and the data timestamps (mtime/ctime on write) change under the
/// namespace read lock plus the content's monitor. <see cref="Holds"/> and <see cref="OpenCount"/>
/// are changed with Interlocked because retains and opens run under the read lock.
/// </summary>
internal sealed class MemoryNode
{
    public MemoryNode(ulong id, uint mode, uint uid, uint gid)
    {
        Id = id;
        Mode = mode;
        Uid = uid;
        Gid = gid;
        var now = Timestamp.Now();
        Atime = now;
        Mtime = now;
        Ctime = now;
    }

    public ulong Id { get; }

    public uint Mode;
    public uint Uid;
    public uint Gid;
    public uint Rdev;
    public uint Nlink;
    /// <summary>Holders of the node id (<see cref="MemoryFileSystem.Retain"/>): the proxy's node table, once per node.</summary>
    public long Holds;
    public int OpenCount;
    public Timestamp Atime;
    public Timestamp Mtime;
    public Timestamp Ctime;

    /// <summary>An O_TMPFILE without O_EXCL: linkat may give it a name while its nlink is 0.</summary>
    public bool Linkable;

    /// <summary>Bytes charged to the size limit for this node besides its pages (overhead, target, xattrs).</summary>
    public long ChargedBytes;

    /// <summary>A regular file's data in managed pages (when the private tmpfs is unavailable).</summary>
    public FileContent? Content;

    /// <summary>A regular file's data in the private tmpfs; exactly one of this and <see cref="Content"/> is set for regular files.</summary>
    public KernelFile? Data;
    public MemoryDirectory? Directory;
    public byte[]? SymlinkTarget;
    public List<KeyValuePair<byte[], byte[]>>? Xattrs;

    public uint Type => Mode & LibC.S_IFMT;

    public bool IsDirectory => Type == LibC.S_IFDIR;

    public bool IsRegular => Type == LibC.S_IFREG;
}

/// <summary>One name in a directory. <see cref="Cookie"/> is the directory's sequence number at insertion.</summary>
internal sealed class DirectoryEntry(byte[] name, MemoryNode node, long cookie)
{
    public byte[] Name { get; } = name;
    public MemoryNode Node { get; internal set; } = node;
    public long Cookie { get; } = cookie;
}

/// <summary>
/// Entries of a directory: a hash map by name (span lookups, no allocation) plus the same entries ordered
/// by a per-directory increasing sequence number. The sequence number is the readdir cookie, so a cookie
/// stays meaningful while other entries are added or removed between READDIR calls.
/// Guarded by the namespace lock.
/// </summary>
internal sealed class MemoryDirectory
{
    /// <summary>Cookies 1 and 2 are "." and ".."; entries start after them.</summary>
    public const long FirstEntryCookie = 3;

    private readonly Dictionary<byte[], DirectoryEntry> _byName;
    private readonly Dictionary<byte[], DirectoryEntry>.AlternateLookup<ReadOnlySpan<byte>> _bySpan;
    private readonly SortedSet<DirectoryEntry> _ordered = new(CookieOrder.Instance);
    private long _nextCookie = FirstEntryCookie;

    public MemoryDirectory(MemoryNode parent)
    {
        Parent = parent;
        _byName = new Dictionary<byte[], DirectoryEntry>(NameComparer.Instance);
        _bySpan = _byName.GetAlternateLookup<ReadOnlySpan<byte>>();
    }

    /// <summary>The directory holding this one (itself for the root): "..", and the subtree check of rename.</summary>
    public MemoryNode Parent { get; set; }

    public int Count => _byName.Count;

    /// <summary>Bumped by every change to the entries (add, remove, an entry pointed at another node): the change stamp.</summary>
    public long Version { get; private set; }

    public DirectoryEntry? Find(ReadOnlySpan<byte> name) => _bySpan.TryGetValue(name, out var entry) ? entry : null;

    public DirectoryEntry Add(ReadOnlySpan<byte> name, MemoryNode node)
    {
        var entry = new DirectoryEntry(name.ToArray(), node, _nextCookie++);
        _byName.Add(entry.Name, entry);
        _ordered.Add(entry);
        Version++;
        return entry;
    }

    /// <summary>An entry as a journal recorded it (a restart): its cookie stays, so readdir offsets the kernel holds stay valid.</summary>
    public void AddRestored(byte[] name, MemoryNode node, long cookie)
    {
        var entry = new DirectoryEntry(name, node, cookie);
        _byName.Add(entry.Name, entry);
        _ordered.Add(entry);
        _nextCookie = Math.Max(_nextCookie, cookie + 1);
        Version++;
    }

    public void Remove(DirectoryEntry entry)
    {
        _byName.Remove(entry.Name);
        _ordered.Remove(entry);
        Version++;
    }

    /// <summary>Points a name at another node (RENAME_EXCHANGE).</summary>
    public void Repoint(DirectoryEntry entry, MemoryNode node)
    {
        entry.Node = node;
        Version++;
    }

    /// <summary>Entries whose cookie is greater than <paramref name="cookie"/>, in cookie order.</summary>
    public IEnumerable<DirectoryEntry> After(long cookie)
    {
        if (_ordered.Count == 0 || cookie >= _ordered.Max!.Cookie)
        {
            return [];
        }
        var low = new DirectoryEntry([], null!, Math.Max(cookie + 1, FirstEntryCookie));
        return _ordered.GetViewBetween(low, _ordered.Max);
    }

    private sealed class CookieOrder : IComparer<DirectoryEntry>
    {
        public static readonly CookieOrder Instance = new();

        public int Compare(DirectoryEntry? x, DirectoryEntry? y) => x!.Cookie.CompareTo(y!.Cookie);
    }
}
