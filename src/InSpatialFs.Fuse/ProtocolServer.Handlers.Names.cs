using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;

namespace InSpatialFs.Fuse;

// Handlers of the opcodes that name, create, change and remove nodes (the table is in ProtocolServer.Opcodes.cs).
public sealed partial class ProtocolServer
{
    private static Errno GetAttr(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        FuseGetattrIn arg = ReadArg<FuseGetattrIn>(args);
        ulong? fh = (arg.GetattrFlags & FuseConstants.GetattrFh) != 0 ? arg.Fh : null;
        Errno e = s._fs.GetAttr(r.Request, r.Request.NodeId, fh, out FuseAttrOut attr);
        if (e == Errno.OK)
        {
            len = Put(body, in attr);
        }

        return e;
    }

    private static Errno SetAttr(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        FuseSetattrIn change = ReadArg<FuseSetattrIn>(args);
        Errno e = s._fs.SetAttr(r.Request, r.Request.NodeId, in change, out FuseAttrOut attr);
        if (e == Errno.OK)
        {
            len = Put(body, in attr);
        }

        return e;
    }

    private static Errno ReadLink(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        Span<byte> buffer = body[..Math.Min(FuseConstants.ReadLinkMax, body.Length)];
        Errno e = s._fs.ReadLink(r.Request, r.Request.NodeId, buffer, out int n);
        if (e != Errno.OK)
        {
            return e;
        }

        if (n < 0 || n > buffer.Length)
        {
            return s.BadResult(r, $"READLINK length {n} outside 0..{buffer.Length}");
        }

        len = n;
        return Errno.OK;
    }

    private static Errno Symlink(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        if (!TakeName(ref args, out ReadOnlySpan<byte> name) || !TakeString(ref args, out ReadOnlySpan<byte> target))
        {
            return Errno.EINVAL;
        }

        Errno e = s._fs.Symlink(r.Request, r.Request.NodeId, name, target, out FuseEntryOut entry);
        if (e == Errno.OK)
        {
            len = Put(body, in entry);
        }

        return e;
    }

    private static Errno MkNod(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        FuseMknodIn arg = ReadArg<FuseMknodIn>(args);
        ReadOnlySpan<byte> rest = args[Size<FuseMknodIn>()..];
        if (!TakeName(ref rest, out ReadOnlySpan<byte> name))
        {
            return Errno.EINVAL;
        }

        Errno e = s._fs.MkNod(r.Request, r.Request.NodeId, name, arg.Mode, arg.Rdev, arg.Umask, out FuseEntryOut entry);
        if (e == Errno.OK)
        {
            len = Put(body, in entry);
        }

        return e;
    }

    private static Errno MkDir(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        FuseMkdirIn arg = ReadArg<FuseMkdirIn>(args);
        ReadOnlySpan<byte> rest = args[Size<FuseMkdirIn>()..];
        if (!TakeName(ref rest, out ReadOnlySpan<byte> name))
        {
            return Errno.EINVAL;
        }

        Errno e = s._fs.MkDir(r.Request, r.Request.NodeId, name, arg.Mode, arg.Umask, out FuseEntryOut entry);
        if (e == Errno.OK)
        {
            len = Put(body, in entry);
        }

        return e;
    }

    private static Errno Unlink(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        return TakeName(ref args, out ReadOnlySpan<byte> name) ? s._fs.Unlink(r.Request, r.Request.NodeId, name) : Errno.EINVAL;
    }

    private static Errno RmDir(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        return TakeName(ref args, out ReadOnlySpan<byte> name) ? s._fs.RmDir(r.Request, r.Request.NodeId, name) : Errno.EINVAL;
    }

    private static Errno Rename(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        ulong newDir = ReadArg<FuseRenameIn>(args).NewDir;
        ReadOnlySpan<byte> rest = args[Size<FuseRenameIn>()..];
        if (!TakeName(ref rest, out ReadOnlySpan<byte> oldName) || !TakeName(ref rest, out ReadOnlySpan<byte> newName))
        {
            return Errno.EINVAL;
        }

        return s._fs.Rename(r.Request, r.Request.NodeId, oldName, newDir, newName, 0);
    }

    private static Errno Rename2(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        FuseRename2In arg = ReadArg<FuseRename2In>(args);
        ReadOnlySpan<byte> rest = args[Size<FuseRename2In>()..];
        if (!TakeName(ref rest, out ReadOnlySpan<byte> oldName) || !TakeName(ref rest, out ReadOnlySpan<byte> newName))
        {
            return Errno.EINVAL;
        }

        return s._fs.Rename(r.Request, r.Request.NodeId, oldName, arg.NewDir, newName, arg.Flags);
    }

    private static Errno Link(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        ulong oldNode = ReadArg<FuseLinkIn>(args).OldNodeId;
        ReadOnlySpan<byte> rest = args[Size<FuseLinkIn>()..];
        if (!TakeName(ref rest, out ReadOnlySpan<byte> newName))
        {
            return Errno.EINVAL;
        }

        Errno e = s._fs.Link(r.Request, oldNode, r.Request.NodeId, newName, out FuseEntryOut entry);
        if (e == Errno.OK)
        {
            len = Put(body, in entry);
        }

        return e;
    }

    private static Errno Access(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        return s._fs.Access(r.Request, r.Request.NodeId, (int)ReadArg<FuseAccessIn>(args).Mask);
    }

    private static Errno Create(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        FuseCreateIn arg = ReadArg<FuseCreateIn>(args);
        ReadOnlySpan<byte> rest = args[Size<FuseCreateIn>()..];
        if (!TakeName(ref rest, out ReadOnlySpan<byte> name))
        {
            return Errno.EINVAL;
        }

        Errno e = s._fs.Create(r.Request, r.Request.NodeId, name, (int)arg.Flags, arg.Mode, arg.Umask, out FuseEntryOut entry, out FuseOpenOut open);
        if (e == Errno.OK)
        {
            len = Put(body, in entry);
            len += Put(body[len..], in open);
        }

        return e;
    }

    private static Errno TmpFile(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        FuseCreateIn arg = ReadArg<FuseCreateIn>(args); // the kernel appends a placeholder name ("/"), not used
        Errno e = s._fs.TmpFile(r.Request, r.Request.NodeId, (int)arg.Flags, arg.Mode, arg.Umask, out FuseEntryOut entry, out FuseOpenOut open);
        if (e == Errno.OK)
        {
            len = Put(body, in entry);
            len += Put(body[len..], in open);
        }

        return e;
    }

    private static Errno StatFs(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        Errno e = s._fs.StatFs(r.Request, r.Request.NodeId, out FuseKstatfs stat);
        if (e == Errno.OK)
        {
            len = Put(body, in stat);
        }

        return e;
    }
}
