namespace InSpatialFs.Storage;

/// <summary>
/// A backend built from layers, some of them read-only images (an overlay's lower directories): it can say which
/// nodes are still answered by a read-only layer alone. Such a node changes only through this mount (a copy-up the
/// proxy serves and the kernel sees), so the proxy lets the kernel cache its entry, attributes and data for long.
/// </summary>
public interface IReadOnlyLayerNodes
{
    /// <summary>True when <paramref name="ino"/> lies only in read-only layers (not copied up, no upper part).</summary>
    bool InReadOnlyLayer(ulong ino);
}
