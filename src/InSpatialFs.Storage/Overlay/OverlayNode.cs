namespace InSpatialFs.Storage.Overlay;

/// <summary>One object of one layer: the layer's index (0 = upper when there is one) and the layer backend's node id.</summary>
internal readonly record struct LayerObject(int Layer, ulong Ino);

/// <summary>
/// A node of the merged tree. <see cref="Top"/> is the object that answers for it (attributes, data, link target):
/// the topmost layer that has the name. A directory also merges <see cref="Below"/>: the same-named directories of
/// the lower layers, top to bottom, down to the first opaque one. The node holds one lookup reference on each of
/// those layer objects, given back when the node is dropped. Fields change under the file system's tree lock.
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

    public long Lookups;

    public int OpenHandles;

    public bool IsDirectory => Type == Interop.LibC.S_IFDIR;
}
