namespace InSpatialFs.Storage.Overlay;

// Which nodes the image layers alone answer (the proxy's kernel-cache choice).
public sealed partial class OverlayFileSystem : IReadOnlyLayerNodes
{
    /// <summary>
    /// Without an upper layer every node is an image node. With one, a node whose topmost object is in a lower layer
    /// (Top.Layer &gt; 0) has not been copied up; a directory merged with an upper part (Top.Layer 0) has not either.
    /// </summary>
    public bool InReadOnlyLayer(ulong ino) => !HasUpper || (TryNode(ino, out OverlayNode? node) && node.Top.Layer > 0);
}
