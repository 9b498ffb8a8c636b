using System.Diagnostics;
using InSpatialFs.Fuse;
using InSpatialFs.Interop;
using InSpatialFs.Proxy.Nodes;
using InSpatialFs.Security.Events;

namespace InSpatialFs.Proxy;

// Extended attributes. Writes are write-class; the gate sees the attribute name (file capabilities live
// in security.capability).
public sealed partial class SecureProxy
{
    public Errno SetXattr(FuseRequest request, ulong nodeId, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, int flags)
    {
        if (!_nodes.TryGet(nodeId, out ProxyNode node))
        {
            return UnknownNode;
        }

        FsEvent e = NewEvent(request, FsOp.SetXattr, node);
        e.XattrName = Decode(name);
        e.Flags = flags;
        e.Size = value.Length;
        Errno err = Admit(request, e, _mounts[node.Mount], out _);
        if (err != Errno.OK)
        {
            return err;
        }

        long started = Stopwatch.GetTimestamp();
        return Complete(e, BackendOf(node).SetXattr(node.Ino, name, value, flags), started);
    }

    public Errno GetXattr(FuseRequest request, ulong nodeId, ReadOnlySpan<byte> name, Span<byte> buffer, out int size)
    {
        size = 0;
        if (!_nodes.TryGet(nodeId, out ProxyNode node))
        {
            return UnknownNode;
        }

        // security.capability is asked on every write unless HANDLE_KILLPRIV_V2 is on; it is a plain read.
        return BackendOf(node).GetXattr(node.Ino, name, buffer, out size);
    }

    public Errno ListXattr(FuseRequest request, ulong nodeId, Span<byte> buffer, out int size)
    {
        size = 0;
        return _nodes.TryGet(nodeId, out ProxyNode node) ? BackendOf(node).ListXattr(node.Ino, buffer, out size) : UnknownNode;
    }

    public Errno RemoveXattr(FuseRequest request, ulong nodeId, ReadOnlySpan<byte> name)
    {
        if (!_nodes.TryGet(nodeId, out ProxyNode node))
        {
            return UnknownNode;
        }

        FsEvent e = NewEvent(request, FsOp.RemoveXattr, node);
        e.XattrName = Decode(name);
        Errno err = Admit(request, e, _mounts[node.Mount], out _);
        if (err != Errno.OK)
        {
            return err;
        }

        long started = Stopwatch.GetTimestamp();
        return Complete(e, BackendOf(node).RemoveXattr(node.Ino, name), started);
    }
}
