namespace InSpatialFs.Storage.Overlay;

/// <summary>One object of one layer: the layer's index (0 = upper when there is one) and the layer backend's node id.</summary>
internal readonly record struct LayerObject(int Layer, ulong Ino);

/// <summary>
/// One name of a merged listing: its type, and the layer object that answers for it when that layer's backend already
/// knew it at listing time (<see cref="LayerObject.Ino"/> 0 otherwise), so a READDIR can name a known node without
/// resolving the name through the layers again.
/// </summary>
internal readonly record struct MergedEntry(byte[] Name, uint Type, LayerObject Top);

/// <summary>
/// A node of the merged tree. <see cref="Top"/> is the object that answers for it (attributes, data, link target):
/// the topmost layer that has the name. A directory also merges <see cref="Below"/>: the same-named directories of
/// the lower layers, top to bottom, down to the first opaque one. The node holds each of those layer objects (one
/// hold in the layer's backend), given back when the node is dropped. Fields change under the file system's tree lock.
/// </summary>
internal sealed class OverlayNode(ulong id, uint type, LayerObject top, LayerObject[] below, OverlayNode? parent, byte[] name)
{
    public ulong Id { get; } = id;

    /// <summary>S_IFMT bits.</summary>
    public uint Type { get; } = type;

    public LayerObject Top { get; set; } = top;

    public LayerObject[] Below { get; set; } = below;

    /// <summary>Where the node was last seen (for copy-up of its directories); null for the root.</summary>
    public OverlayNode? Parent { get; set; } = parent;

    public byte[] Name { get; set; } = name;

    /// <summary>Holders: the proxy's node table (Retain), and the overlay itself during a multi-step operation.</summary>
    public long Holds;

    /// <summary>Queued to be dropped if still unheld and closed when its turn comes.</summary>
    public bool Aging;

    public int OpenHandles;

    /// <summary>Its last name was removed while it answers from a lower layer (whose object keeps its links): report
    /// nlink 0 as the kernel's overlayfs does, until a name resolves to it again (a lower hard link).</summary>
    public bool Removed;

    public bool IsDirectory => Type == Interop.LibC.S_IFDIR;
}
