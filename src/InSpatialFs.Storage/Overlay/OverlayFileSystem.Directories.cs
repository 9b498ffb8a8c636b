using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Host;
using static InSpatialFs.Interop.LibC;

namespace InSpatialFs.Storage.Overlay;

// Merged directory listings: each layer's entries top down, a name shown once (the topmost wins), whiteouts and
// everything they hide left out, lower layers ignored below an opaque directory. A listing is taken at OPENDIR, so
// cookies (index + 3) stay valid while the directory changes, capped at MaxMergedEntries names.
public sealed partial class OverlayFileSystem
{
    public Errno OpenDir(ulong ino, out IOpenDirectory directory)
    {
        directory = null!;
        if (!TryNode(ino, out OverlayNode? node)) return Errno.ENOENT;
        if (!node.IsDirectory) return Errno.ENOTDIR;
        directory = new OverlayOpenDirectory(this, node, MergedEntries(node));
        return Errno.OK;
    }

    internal Errno ReadDir(OverlayOpenDirectory h, long offset, IDirectoryEntrySink sink)
    {
        ArgumentNullException.ThrowIfNull(sink);
        if (h.Released) return Errno.EBADF;
        lock (h.Gate)
        {
            // The first READDIR serves the listing taken at OPENDIR (its change stamp describes it); a later one from 0 is
            // a rewinddir and sees a fresh listing.
            if (offset == 0 && !h.Fresh) h.Listing = MergedEntries(h.Node);
            h.Fresh = false;
            if (offset < 1 && !sink.TryAdd("."u8, h.Node.Id, S_IFDIR, 1)) return Errno.OK;
            if (offset < 2 && !sink.TryAdd(".."u8, 0, S_IFDIR, 2)) return Errno.OK;
            for (long i = Math.Max(0, offset - 2); i < h.Listing.Count; i++)
            {
                MergedEntry entry = h.Listing[(int)i];
                if (!sink.TryAdd(entry.Name, KnownNodeId(entry.Top), entry.Type, i + 3)) break;
            }
        }

        return Errno.OK;
    }

    /// <summary>
    /// The node of the merged tree that <paramref name="top"/> answers for, if there is one (0 otherwise): the proxy then
    /// lists the name as a node the kernel already holds, without a lookup through every layer.
    /// </summary>
    private ulong KnownNodeId(LayerObject top)
    {
        if (top.Ino == 0) return 0;
        lock (_tree) return _byTop.TryGetValue(top, out OverlayNode? node) && !node.Removed ? node.Id : 0;
    }

    /// <summary>The merged entries of a directory node (without "." and "..").</summary>
    private List<MergedEntry> MergedEntries(OverlayNode dir)
    {
        var result = new List<MergedEntry>();
        var seen = new HashSet<byte[]>(ByteNameComparer.Instance); // shown, or hidden by a whiteout above
        foreach (LayerObject d in DirectoriesOf(dir))
        {
            HostFileSystem layer = LayerOf(d);
            if (layer.OpenDir(d.Ino, out IOpenDirectory listing) != Errno.OK) continue;
            var sink = new NameSink(MaxMergedEntries);
            listing.ReadDir(0, sink);
            listing.Release();
            bool xattrWhiteouts = OverlayFormat.HasXattr(layer, d.Ino, OverlayFormat.WhiteoutsMarkerXattrs, valueMustBeY: false);
            foreach ((byte[] name, uint type, ulong ino) in sink.Entries)
            {
                if (OverlayFormat.IsAufsName(name))
                {
                    if (name.AsSpan().SequenceEqual(OverlayFormat.AufsOpaque)) continue;
                    seen.Add(name[OverlayFormat.AufsPrefix.Length..]); // an aufs whiteout hides the name below
                    continue;
                }

                if (!seen.Add(name)) continue;
                if ((type == S_IFCHR || (xattrWhiteouts && type == S_IFREG)) && IsWhiteoutEntry(d, name)) continue;
                if (result.Count < MaxMergedEntries) result.Add(new MergedEntry(name, type, new LayerObject(d.Layer, ino)));
            }
        }

        return result;
    }

    private bool IsWhiteoutEntry(LayerObject dir, byte[] name)
    {
        if (LayerOf(dir).Lookup(dir.Ino, name, out FuseAttr a) != Errno.OK) return false;
        bool whiteout = IsWhiteout(dir, a);
        ReleaseLayer(dir.Layer, a.Ino);
        return whiteout;
    }

    /// <summary>Collects a layer's entries (names copied, "." and ".." left out; ino is the layer's node id, 0 if unknown).</summary>
    private sealed class NameSink(int limit) : IDirectoryEntrySink
    {
        public List<(byte[] Name, uint Type, ulong Ino)> Entries { get; } = [];

        public bool TryAdd(ReadOnlySpan<byte> name, ulong ino, uint mode, long nextOffset)
        {
            if (!name.SequenceEqual("."u8) && !name.SequenceEqual(".."u8)) Entries.Add((name.ToArray(), mode & S_IFMT, ino));
            return Entries.Count < limit;
        }
    }

    private sealed class ByteNameComparer : IEqualityComparer<byte[]>
    {
        public static readonly ByteNameComparer Instance = new();

        public bool Equals(byte[]? x, byte[]? y) => x.AsSpan().SequenceEqual(y);

        public int GetHashCode(byte[] obj)
        {
            var h = new HashCode();
            h.AddBytes(obj);
            return h.ToHashCode();
        }
    }
}
