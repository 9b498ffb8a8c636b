using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;

namespace InSpatialFs.Fuse;

// Handlers of the extended-attribute opcodes (the table is in ProtocolServer.Opcodes.cs).
public sealed partial class ProtocolServer
{
    private static Errno SetXattr(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        int structSize = s._setxattrExt ? Size<FuseSetxattrIn>() : FuseSetxattrIn.CompatSize;
        if (args.Length < structSize)
        {
            return Errno.EINVAL;
        }

        uint size = MemoryMarshal.Read<uint>(args);
        int flags = MemoryMarshal.Read<int>(args[4..]);
        ReadOnlySpan<byte> rest = args[structSize..];
        if (!TakeName(ref rest, out ReadOnlySpan<byte> name) || size > (uint)rest.Length)
        {
            return Errno.EINVAL;
        }

        return s._fs.SetXattr(r.Request, r.Request.NodeId, name, rest[..(int)size], flags);
    }

    private static Errno GetXattr(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        uint size = ReadArg<FuseGetxattrIn>(args).Size;
        ReadOnlySpan<byte> rest = args[Size<FuseGetxattrIn>()..];
        if (!TakeName(ref rest, out ReadOnlySpan<byte> name))
        {
            return Errno.EINVAL;
        }

        Span<byte> buffer = size == 0 ? default : body[..(int)Math.Min(size, (uint)body.Length)];
        Errno e = s._fs.GetXattr(r.Request, r.Request.NodeId, name, buffer, out int n);
        return e == Errno.OK ? XattrReply(s, r, size, buffer.Length, n, body, out len) : e;
    }

    private static Errno ListXattr(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        uint size = ReadArg<FuseGetxattrIn>(args).Size;
        Span<byte> buffer = size == 0 ? default : body[..(int)Math.Min(size, (uint)body.Length)];
        Errno e = s._fs.ListXattr(r.Request, r.Request.NodeId, buffer, out int n);
        return e == Errno.OK ? XattrReply(s, r, size, buffer.Length, n, body, out len) : e;
    }

    /// <summary>Size 0 asked for the length (getxattr_out); otherwise the value is already in the body.</summary>
    private static Errno XattrReply(ProtocolServer s, Reader r, uint asked, int bufferLength, int n, Span<byte> body, out int len)
    {
        len = 0;
        if (n < 0)
        {
            return s.BadResult(r, $"xattr size {n} is negative");
        }

        if (asked == 0)
        {
            len = Put(body, new FuseGetxattrOut { Size = (uint)n });
            return Errno.OK;
        }

        if (n > bufferLength)
        {
            return Errno.ERANGE;
        }

        len = n;
        return Errno.OK;
    }

    private static Errno RemoveXattr(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        return TakeName(ref args, out ReadOnlySpan<byte> name) ? s._fs.RemoveXattr(r.Request, r.Request.NodeId, name) : Errno.EINVAL;
    }
}
