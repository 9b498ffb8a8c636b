namespace InSpatialFs.Proxy.Nodes;

/// <summary>
/// A node the kernel knows by nodeid: which mount and backend node it is, where it sits in the namespace,
/// and how many lookups the kernel holds on it. The path is derived from the parent chain, so renaming a
/// directory moves every descendant at once; the cached string is refreshed when a rename happened since.
/// </summary>
internal sealed class ProxyNode
{
    private string? _cachedPath;
    private long _cachedEpoch = -1;

    public ProxyNode(ulong nodeId, int mount, ulong ino, ProxyNode? parent, string name)
    {
        NodeId = nodeId;
        Mount = mount;
        Ino = ino;
        Parent = parent;
        Name = name;
    }

    public ulong NodeId { get; }

    /// <summary>Index into the proxy's mount list.</summary>
    public int Mount { get; }

    /// <summary>The backend's id for this node.</summary>
    public ulong Ino { get; }

    /// <summary>Kernel lookup count (guarded by the node table's lock).</summary>
    public ulong LookupCount;

    /// <summary>Open files of a DirectFS node served through the daemon (guarded by the proxy's io-mode lock).</summary>
    public int CachedOpens;

    /// <summary>Open files of a DirectFS node in kernel passthrough (guarded by the proxy's io-mode lock).</summary>
    public int PassthroughOpens;

    /// <summary>Where the node was last seen (hard links: the last name used). Null for the root.</summary>
    public ProxyNode? Parent { get; private set; }

    public string Name { get; private set; }

    /// <summary>The node was found through a mount point: it is the root of <see cref="Mount"/>.</summary>
    public bool IsMountRoot { get; init; }

    public void MoveTo(ProxyNode parent, string name)
    {
        Parent = parent;
        Name = name;
        _cachedEpoch = -1;
    }

    /// <summary>The namespace path; <paramref name="epoch"/> is the node table's rename epoch.</summary>
    public string PathAt(long epoch)
    {
        string? cached = _cachedPath;
        if (cached != null && Volatile.Read(ref _cachedEpoch) == epoch)
        {
            return cached;
        }

        string path = Parent == null ? "/" : Join(Parent.PathAt(epoch), Name);
        _cachedPath = path;
        Volatile.Write(ref _cachedEpoch, epoch);
        return path;
    }

    public static string Join(string dir, string name) => dir.Length == 1 ? "/" + name : dir + "/" + name;
}
