using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Host;
using static InSpatialFs.Interop.LibC;

namespace InSpatialFs.Storage.Overlay;

// Attributes, open files, data and extended attributes: read from the answering layer, written after a copy-up.
public sealed partial class OverlayFileSystem
{
    public Errno GetAttr(ulong ino, out FuseAttr attr)
    {
        attr = default;
        if (!TryNode(ino, out OverlayNode? node)) return Errno.ENOENT;
        Errno e = LayerOf(node.Top).GetAttr(node.Top.Ino, out attr);
        attr.Ino = node.Id;
        if (node.Removed) attr.Nlink = 0;
        return e;
    }

    public Errno SetAttr(ulong ino, in AttrChange change, in Caller caller, out FuseAttr attr)
    {
        attr = default;
        if (!TryNode(ino, out OverlayNode? node)) return Errno.ENOENT;
        Errno e = EnsureUpper(node);
        if (e != Errno.OK) return e;
        // A file opened before the copy-up is a lower layer's: the upper copy is truncated by node instead.
        AttrChange layerChange = change with { File = change.File is OverlayOpenFile { Layer: 0 } open ? open.Inner : null };
        e = _layers[0].SetAttr(node.Top.Ino, layerChange, caller, out attr);
        attr.Ino = node.Id;
        return e;
    }

    public Errno ReadLink(ulong ino, Span<byte> buffer, out int length)
    {
        length = 0;
        return TryNode(ino, out OverlayNode? node) ? LayerOf(node.Top).ReadLink(node.Top.Ino, buffer, out length) : Errno.ENOENT;
    }

    public Errno Open(ulong ino, int flags, in Caller caller, out IOpenFile file)
    {
        file = null!;
        if (!TryNode(ino, out OverlayNode? node)) return Errno.ENOENT;
        bool writes = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC) != 0;
        if (writes)
        {
            Errno up = EnsureUpper(node);
            if (up != Errno.OK) return up;
        }

        LayerObject top = node.Top;
        Errno e = LayerOf(top).Open(top.Ino, flags, caller, out IOpenFile layerFile);
        if (e != Errno.OK) return e;
        file = new OverlayOpenFile(this, node, top.Layer, layerFile);
        return Errno.OK;
    }

    /// <summary>Counts an open of <paramref name="node"/>: it stays while open, though its names go.</summary>
    internal void Opened(OverlayNode node)
    {
        lock (_tree) node.OpenHandles++;
    }

    internal void Closed(OverlayNode node)
    {
        lock (_tree)
        {
            node.OpenHandles--;
            DropIfUnusedLocked(node);
        }
    }

    public Errno CopyFileRange(IOpenFile input, long offsetIn, IOpenFile output, long offsetOut, long length, out long copied)
    {
        copied = 0;
        if (input is not OverlayOpenFile a || output is not OverlayOpenFile b) return Errno.EXDEV;
        // Across layers the kernel falls back to read and write through the mount.
        return a.Layer != b.Layer ? Errno.EXDEV : _layers[a.Layer].CopyFileRange(a.Inner, offsetIn, b.Inner, offsetOut, length, out copied);
    }

    public Errno StatFs(out FuseKstatfs stat) => _layers[0].StatFs(out stat);

    public Errno SetXattr(ulong ino, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, int flags)
    {
        if (OverlayFormat.IsPrivateXattr(name)) return Errno.EPERM; // the container may not forge whiteouts or opacity
        if (!TryNode(ino, out OverlayNode? node)) return Errno.ENOENT;
        Errno e = EnsureUpper(node);
        return e != Errno.OK ? e : _layers[0].SetXattr(node.Top.Ino, name, value, flags);
    }

    public Errno GetXattr(ulong ino, ReadOnlySpan<byte> name, Span<byte> buffer, out int size)
    {
        size = 0;
        if (OverlayFormat.IsPrivateXattr(name)) return Errno.ENODATA;
        return TryNode(ino, out OverlayNode? node) ? LayerOf(node.Top).GetXattr(node.Top.Ino, name, buffer, out size) : Errno.ENOENT;
    }

    public Errno ListXattr(ulong ino, Span<byte> buffer, out int size)
    {
        size = 0;
        if (!TryNode(ino, out OverlayNode? node)) return Errno.ENOENT;
        HostFileSystem layer = LayerOf(node.Top);
        Errno e = layer.ListXattr(node.Top.Ino, [], out int all);
        if (e != Errno.OK || all == 0) return e;
        byte[] names = new byte[all];
        if ((e = layer.ListXattr(node.Top.Ino, names, out all)) != Errno.OK) return e;
        // The overlay's own attributes are left out of the list.
        int n = 0;
        Span<byte> visible = all <= 4096 ? stackalloc byte[all] : new byte[all];
        foreach (Range r in names.AsSpan(0, all).Split((byte)0))
        {
            ReadOnlySpan<byte> name = names.AsSpan(0, all)[r];
            if (name.IsEmpty || OverlayFormat.IsPrivateXattr(name)) continue;
            name.CopyTo(visible[n..]);
            n += name.Length;
            visible[n++] = 0;
        }

        size = n;
        if (buffer.IsEmpty) return Errno.OK;
        if (buffer.Length < n) return Errno.ERANGE;
        visible[..n].CopyTo(buffer);
        return Errno.OK;
    }

    public Errno RemoveXattr(ulong ino, ReadOnlySpan<byte> name)
    {
        if (OverlayFormat.IsPrivateXattr(name)) return Errno.EPERM;
        if (!TryNode(ino, out OverlayNode? node)) return Errno.ENOENT;
        Errno e = EnsureUpper(node);
        return e != Errno.OK ? e : _layers[0].RemoveXattr(node.Top.Ino, name);
    }
}
