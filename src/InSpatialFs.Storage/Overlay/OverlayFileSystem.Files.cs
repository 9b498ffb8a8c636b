using InSpatialFs.Fuse;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Host;
using InSpatialFs.Storage.Direct;
using static InSpatialFs.Interop.LibC;

namespace InSpatialFs.Storage.Overlay;

// Attributes, open files, data and extended attributes: read from the answering layer, written after a copy-up.
public sealed partial class OverlayFileSystem : ISplicedReads
{
    public Errno GetAttr(ulong ino, out FuseAttr attr)
    {
        attr = default;
        if (!TryNode(ino, out OverlayNode? node)) return Errno.ENOENT;
        Errno e = LayerOf(node.Top).GetAttr(node.Top.Ino, out attr);
        attr.Ino = node.Id;
        return e;
    }

    public Errno SetAttr(ulong ino, in FuseSetattrIn change, in Caller caller, out FuseAttr attr)
    {
        attr = default;
        if (!TryNode(ino, out OverlayNode? node)) return Errno.ENOENT;
        Errno e = EnsureUpper(node);
        if (e != Errno.OK) return e;
        FuseSetattrIn layerChange = change;
        if ((((FattrFlags)change.Valid) & FattrFlags.Fh) != 0)
        {
            if (_handles.TryGetValue(change.Fh, out OverlayHandle? h) && h.Layer == 0) layerChange.Fh = h.LayerFh;
            else layerChange.Valid &= ~(uint)FattrFlags.Fh; // a handle opened before the copy-up: truncate by node
        }

        e = _layers[0].SetAttr(node.Top.Ino, layerChange, caller, out attr);
        attr.Ino = node.Id;
        return e;
    }

    public Errno ReadLink(ulong ino, Span<byte> buffer, out int length)
    {
        length = 0;
        return TryNode(ino, out OverlayNode? node) ? LayerOf(node.Top).ReadLink(node.Top.Ino, buffer, out length) : Errno.ENOENT;
    }

    public Errno Open(ulong ino, int flags, in Caller caller, out OpenResult result)
    {
        result = default;
        if (!TryNode(ino, out OverlayNode? node)) return Errno.ENOENT;
        bool writes = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC) != 0;
        if (writes)
        {
            Errno up = EnsureUpper(node);
            if (up != Errno.OK) return up;
        }

        LayerObject top = node.Top;
        Errno e = LayerOf(top).Open(top.Ino, flags, caller, out OpenResult layerResult);
        if (e != Errno.OK) return e;
        result = Handle(node, top.Layer, layerResult);
        return Errno.OK;
    }

    /// <summary>Wraps a layer's open file: our own fh (the layer's may clash across layers), the layer's flags and passthrough descriptor.</summary>
    private OpenResult Handle(OverlayNode node, int layer, in OpenResult layerResult)
    {
        ulong fh = (ulong)Interlocked.Increment(ref _nextFh);
        _handles[fh] = new OverlayHandle(node, layer, layerResult.Fh);
        lock (_tree) node.OpenHandles++;
        return new OpenResult { Fh = fh, Flags = layerResult.Flags, PassthroughFd = layerResult.PassthroughFd };
    }

    private bool TryHandle(ulong fh, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out OverlayHandle? handle) => _handles.TryGetValue(fh, out handle);

    public Errno Read(ulong ino, ulong fh, long offset, Span<byte> buffer, out int bytesRead)
    {
        bytesRead = 0;
        return TryHandle(fh, out OverlayHandle? h) ? _layers[h.Layer].Read(0, h.LayerFh, offset, buffer, out bytesRead) : Errno.EBADF;
    }

    public Errno ReadSpliced(ulong ino, ulong fh, long offset, int length, ISpliceReadSink sink, out int bytesRead)
    {
        bytesRead = 0;
        return TryHandle(fh, out OverlayHandle? h) ? _layers[h.Layer].ReadSpliced(0, h.LayerFh, offset, length, sink, out bytesRead) : Errno.EBADF;
    }

    public Errno Write(ulong ino, ulong fh, long offset, ReadOnlySpan<byte> data, out int bytesWritten)
    {
        bytesWritten = 0;
        return TryHandle(fh, out OverlayHandle? h) ? _layers[h.Layer].Write(0, h.LayerFh, offset, data, out bytesWritten) : Errno.EBADF;
    }

    public Errno Flush(ulong ino, ulong fh) => TryHandle(fh, out OverlayHandle? h) ? _layers[h.Layer].Flush(0, h.LayerFh) : Errno.EBADF;

    public Errno Fsync(ulong ino, ulong fh, bool dataOnly) => TryHandle(fh, out OverlayHandle? h) ? _layers[h.Layer].Fsync(0, h.LayerFh, dataOnly) : Errno.EBADF;

    public Errno Release(ulong ino, ulong fh)
    {
        if (!_handles.TryRemove(fh, out OverlayHandle? h)) return Errno.EBADF;
        Errno e = h.Listing == null ? _layers[h.Layer].Release(0, h.LayerFh) : Errno.OK;
        lock (_tree)
        {
            h.Node.OpenHandles--;
            DropIfUnusedLocked(h.Node);
        }

        return e;
    }

    public Errno Fallocate(ulong ino, ulong fh, int mode, long offset, long length) =>
        TryHandle(fh, out OverlayHandle? h) ? _layers[h.Layer].Fallocate(0, h.LayerFh, mode, offset, length) : Errno.EBADF;

    public Errno Lseek(ulong ino, ulong fh, long offset, int whence, out long result)
    {
        result = 0;
        return TryHandle(fh, out OverlayHandle? h) ? _layers[h.Layer].Lseek(0, h.LayerFh, offset, whence, out result) : Errno.EBADF;
    }

    public Errno CopyFileRange(ulong inoIn, ulong fhIn, long offsetIn, ulong inoOut, ulong fhOut, long offsetOut, long length, out long copied)
    {
        copied = 0;
        if (!TryHandle(fhIn, out OverlayHandle? a) || !TryHandle(fhOut, out OverlayHandle? b)) return Errno.EBADF;
        // Across layers the kernel falls back to read and write through the mount.
        return a.Layer != b.Layer ? Errno.EXDEV : _layers[a.Layer].CopyFileRange(0, a.LayerFh, offsetIn, 0, b.LayerFh, offsetOut, length, out copied);
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
