using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Fuse.Transport;
using InSpatialFs.Interop;

namespace InSpatialFs.Fuse;

/// <summary>
/// Daemon-to-kernel notifications: out_header with unique 0 and error = notify code, then the body. The write's
/// result is the outcome (ENOENT when the kernel has nothing cached). Frames are built on the stack.
/// </summary>
internal sealed class FuseNotifier(IFuseTransport transport) : IFuseNotifier
{
    private const int HeaderSize = 16;

    public Errno InvalidateInode(ulong nodeId, long offset, long length)
    {
        Span<byte> frame = stackalloc byte[HeaderSize + Unsafe.SizeOf<FuseNotifyInvalInodeOut>()];
        var body = new FuseNotifyInvalInodeOut { Ino = nodeId, Off = offset, Len = length };
        MemoryMarshal.Write(frame[HeaderSize..], in body);
        return Send(frame, FuseNotifyCode.InvalInode);
    }

    public Errno InvalidateEntry(ulong parent, ReadOnlySpan<byte> name)
    {
        Errno bad = CheckName(name);
        if (bad != Errno.OK)
        {
            return bad;
        }

        int fixedSize = Unsafe.SizeOf<FuseNotifyInvalEntryOut>();
        Span<byte> frame = stackalloc byte[HeaderSize + fixedSize + name.Length + 1];
        var body = new FuseNotifyInvalEntryOut { Parent = parent, NameLen = (uint)name.Length, Flags = 0 };
        MemoryMarshal.Write(frame[HeaderSize..], in body);
        name.CopyTo(frame[(HeaderSize + fixedSize)..]);
        frame[^1] = 0; // the kernel requires the trailing NUL (EINVAL without it)
        return Send(frame, FuseNotifyCode.InvalEntry);
    }

    public Errno Delete(ulong parent, ulong child, ReadOnlySpan<byte> name)
    {
        Errno bad = CheckName(name);
        if (bad != Errno.OK)
        {
            return bad;
        }

        int fixedSize = Unsafe.SizeOf<FuseNotifyDeleteOut>();
        Span<byte> frame = stackalloc byte[HeaderSize + fixedSize + name.Length + 1];
        var body = new FuseNotifyDeleteOut { Parent = parent, Child = child, NameLen = (uint)name.Length };
        MemoryMarshal.Write(frame[HeaderSize..], in body);
        name.CopyTo(frame[(HeaderSize + fixedSize)..]);
        frame[^1] = 0;
        return Send(frame, FuseNotifyCode.Delete);
    }

    public Errno IncrementEpoch()
    {
        // No body: the kernel bumps its connection epoch, and every dentry looked up before (including lookups still
        // in flight, which sampled the old epoch when they were sent) is revalidated on its next use.
        Span<byte> frame = stackalloc byte[HeaderSize];
        return Send(frame, FuseNotifyCode.IncEpoch);
    }

    /// <summary>
    /// NOTIFY_RESEND (7.40): every request read from any descriptor of the connection and not answered goes back to the
    /// input queue with bit 63 of its unique set, so a server that adopted the connection from a dead one answers it.
    /// </summary>
    internal Errno Resend()
    {
        Span<byte> frame = stackalloc byte[HeaderSize];
        return Send(frame, FuseNotifyCode.Resend);
    }

    /// <summary>
    /// A name we send the kernel in a notification, which the kernel checks itself (FUSE_NAME_MAX, 1024): only what
    /// would corrupt the frame. Kept apart from InSpatialFs.Storage.Posix.EntryName, the rule for names the kernel sends
    /// us (NAME_MAX, 255), which this layer cannot reference; a change to either is checked against the other.
    /// </summary>
    private static Errno CheckName(ReadOnlySpan<byte> name)
    {
        if (name.IsEmpty || name.Contains((byte)0))
        {
            return Errno.EINVAL;
        }

        return name.Length > FuseConstants.NameMax ? Errno.ENAMETOOLONG : Errno.OK;
    }

    private Errno Send(Span<byte> frame, FuseNotifyCode code)
    {
        var header = new FuseOutHeader { Len = (uint)frame.Length, Error = (int)code, Unique = 0 };
        MemoryMarshal.Write(frame, in header);
        return transport.Notify(frame[..HeaderSize], frame[HeaderSize..]);
    }
}
