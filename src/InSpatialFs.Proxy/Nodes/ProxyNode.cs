using System.Runtime.CompilerServices;
using System.Text;
using InSpatialFs.Interop;
using InSpatialFs.Storage;

namespace InSpatialFs.Proxy.Nodes;

/// <summary>
/// A node the kernel knows by nodeid: which mount and backend node it is, where it sits in the namespace,
/// and how many lookups the kernel holds on it. The path is derived from the parent chain, so renaming a
/// directory moves every descendant at once; the cached string is refreshed when a rename happened since.
///
/// Depth is chosen by the container (mkdir d; cd d; ... thousands of times), so nothing here recurses on it:
/// paths are built by an iterative walk up the chain. Paths longer than <see cref="CachedPathLimit"/> are not
/// cached (a cached path per level of a deep chain costs memory quadratic in its depth); the proxy refuses new
/// names beyond <see cref="MaxPathLength"/>.
/// </summary>
internal sealed class ProxyNode
{
    /// <summary>The longest namespace path a name may get (PATH_MAX less its NUL; longer names get ENAMETOOLONG).</summary>
    public const int MaxPathLength = 4095;

    /// <summary>Paths up to this length are cached per node.</summary>
    public const int CachedPathLimit = 1024;

    // Path and epoch in one object, swapped atomically: a reader never pairs a new epoch with an old string.
    private sealed record PathCache(string Path, long Epoch);

    private PathCache? _cache;
    private InodeIdentity _identity;
    private volatile bool _identityKnown; // set after _identity is written: a reader never sees a torn identity
    // The overlay copy-up's identity, which wins over _identity. A box, set whole: a reader never sees it torn, and
    // only a copied-up node pays for one.
    private volatile StrongBox<InodeIdentity>? _copy;

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

    /// <summary>
    /// Open files (not directories) of the node, whatever their io mode (Interlocked): a quota keeps the charge of a file
    /// unlinked while open until the last of them is released, because its blocks stay allocated until then.
    /// </summary>
    public int OpenFiles;

    /// <summary>Open files of a DirectFS node served through the daemon (guarded by the proxy's io-mode lock).</summary>
    public int CachedOpens;

    /// <summary>Open files of a DirectFS node in kernel passthrough (guarded by the proxy's io-mode lock).</summary>
    public int PassthroughOpens;

    /// <summary>Of those, the ones open for writing (guarded by the proxy's io-mode lock).</summary>
    public int PassthroughWriters;

    /// <summary>
    /// The last LOOKUP found the node in a read-only policy class: writes through this mount are refused, so the kernel
    /// may cache it for long. Rewritten at each lookup; a policy reload invalidates the kernel's copy.
    /// </summary>
    public volatile bool ReadOnlyClass;

    /// <summary>
    /// A directory's change stamp (<see cref="Storage.IOpenDirectory.ChangeStamp"/>) at its last OPENDIR, mixed with
    /// the cache generation of then: a later OPENDIR that finds the same lets the kernel keep the listing it cached.
    /// </summary>
    public ulong ListingStamp;

    /// <summary>Where the node was last seen (hard links: the last name used). Null for the root.</summary>
    public ProxyNode? Parent { get; private set; }

    public string Name { get; private set; }

    /// <summary>
    /// Put back from a previous server's journal: <see cref="LookupCount"/> counts only the lookups since, and the
    /// kernel's own count is higher (see <see cref="NodeTable.Forget"/>).
    /// </summary>
    public bool Restored { get; init; }

    /// <summary>The node was found through a mount point: it is the root of <see cref="Mount"/>.</summary>
    public bool IsMountRoot { get; init; }

    /// <summary>
    /// What the node is: asked of its backend once, then kept, so a file deleted while open keeps its identity. The one
    /// change is an overlay copy-up (<see cref="CopiedTo"/>).
    /// </summary>
    public InodeIdentity IdentityFrom(IFileSystemBackend backend)
    {
        if (_copy is { } copy)
        {
            return copy.Value;
        }

        if (_identityKnown)
        {
            return _identity;
        }

        InodeIdentity id = backend.IdentityOf(Ino);
        if (!id.IsNone)
        {
            _identity = id;
            _identityKnown = true;
        }

        return id;
    }

    /// <summary>The identity for the restart journal: the one known already, else the backend's journaled one (not kept).</summary>
    public InodeIdentity JournaledIdentityFrom(IFileSystemBackend backend) =>
        _copy is { } copy ? copy.Value : _identityKnown ? _identity : backend.JournaledIdentityOf(Ino);

    /// <summary>The file now lives in <paramref name="copy"/> (an overlay copy-up): it is what the node is from now on.</summary>
    public void CopiedTo(in InodeIdentity copy) => _copy = new StrongBox<InodeIdentity>(copy);

    public void MoveTo(ProxyNode parent, string name)
    {
        Parent = parent;
        Name = name;
        _cache = null;
    }

    /// <summary>The namespace path; <paramref name="epoch"/> is the node table's rename epoch.</summary>
    public string PathAt(long epoch)
    {
        PathCache? cached = Volatile.Read(ref _cache);
        if (cached != null && cached.Epoch == epoch)
        {
            return cached.Path;
        }

        if (Parent == null)
        {
            return "/";
        }

        // Up to the nearest ancestor whose path is cached for this epoch (or the root), then down again.
        var chain = new List<ProxyNode>();
        string prefix = "/";
        for (ProxyNode? n = this; n != null; n = n.Parent)
        {
            PathCache? c = Volatile.Read(ref n._cache);
            if (c != null && c.Epoch == epoch)
            {
                prefix = c.Path;
                break;
            }

            if (n.Parent == null)
            {
                break; // the root: "/"
            }

            chain.Add(n);
        }

        var sb = new StringBuilder(prefix, prefix.Length + 16 * chain.Count);
        for (int i = chain.Count - 1; i >= 0; i--)
        {
            ProxyNode n = chain[i];
            if (sb.Length > 1)
            {
                sb.Append('/');
            }

            sb.Append(n.Name);
            if (sb.Length <= CachedPathLimit)
            {
                Volatile.Write(ref n._cache, new PathCache(sb.ToString(), epoch));
            }
        }

        return sb.Length <= CachedPathLimit && Volatile.Read(ref _cache) is { } mine && mine.Epoch == epoch ? mine.Path : sb.ToString();
    }

    public static string Join(string dir, string name) => dir.Length == 1 ? "/" + name : dir + "/" + name;
}
