using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;

namespace InSpatialFs.Fuse;

// Handlers of the opcodes on open files and directories: open, data, sync, release, listings (the table is in ProtocolServer.Opcodes.cs).
public sealed partial class ProtocolServer
{
    private static Errno Open(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        FuseOpenIn input = ReadArg<FuseOpenIn>(args);
        Errno e = s._fs.Open(r.Request, r.Request.NodeId, (int)input.Flags, input.OpenFlags, out FuseOpenOut open);
        if (e == Errno.OK)
        {
            len = Put(body, in open);
        }

        return e;
    }

    private static Errno OpenDir(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        Errno e = s._fs.OpenDir(r.Request, r.Request.NodeId, (int)ReadArg<FuseOpenIn>(args).Flags, out FuseOpenOut open);
        if (e == Errno.OK)
        {
            len = Put(body, in open);
        }

        return e;
    }

    private static Errno Read(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        FuseReadIn arg = ReadArg<FuseReadIn>(args);
        if (s._splicedRead is { SplicedReadsWanted: true } && s.TryReadSpliced(r, in arg))
        {
            return Errno.OK; // answered through the pipe
        }

        Span<byte> buffer = body[..(int)Math.Min(arg.Size, (uint)body.Length)];
        Errno e = s._fs.Read(r.Request, r.Request.NodeId, arg.Fh, (long)arg.Offset, buffer, out int n);
        if (e != Errno.OK)
        {
            return e;
        }

        if (n < 0 || n > buffer.Length)
        {
            return s.BadResult(r, $"READ returned {n} bytes for a {buffer.Length}-byte buffer");
        }

        len = n;
        return Errno.OK;
    }

    private static Errno Write(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        FuseWriteIn arg = ReadArg<FuseWriteIn>(args);
        ReadOnlySpan<byte> payload = args[Size<FuseWriteIn>()..];
        if (arg.Size > (uint)payload.Length)
        {
            return Errno.EINVAL;
        }

        ReadOnlySpan<byte> data = payload[..(int)arg.Size];
        Errno e = s._fs.Write(r.Request, r.Request.NodeId, arg.Fh, (long)arg.Offset, data, arg.WriteFlags, out int n);
        if (e != Errno.OK)
        {
            return e;
        }

        if (n < 0 || n > data.Length)
        {
            return s.BadResult(r, $"WRITE reported {n} bytes of {data.Length}");
        }

        len = Put(body, new FuseWriteOut { Size = (uint)n });
        return Errno.OK;
    }

    private static Errno Release(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        FuseReleaseIn arg = ReadArg<FuseReleaseIn>(args);
        return s._fs.Release(r.Request, r.Request.NodeId, arg.Fh, (int)arg.Flags);
    }

    private static Errno ReleaseDir(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        return s._fs.ReleaseDir(r.Request, r.Request.NodeId, ReadArg<FuseReleaseIn>(args).Fh);
    }

    private static Errno Fsync(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        FuseFsyncIn arg = ReadArg<FuseFsyncIn>(args);
        return s._fs.Fsync(r.Request, r.Request.NodeId, arg.Fh, (arg.FsyncFlags & FuseConstants.FsyncFdatasync) != 0);
    }

    private static Errno FsyncDir(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        FuseFsyncIn arg = ReadArg<FuseFsyncIn>(args);
        return s._fs.FsyncDir(r.Request, r.Request.NodeId, arg.Fh, (arg.FsyncFlags & FuseConstants.FsyncFdatasync) != 0);
    }

    private static Errno Flush(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        return s._fs.Flush(r.Request, r.Request.NodeId, ReadArg<FuseFlushIn>(args).Fh);
    }

    private static Errno Fallocate(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        FuseFallocateIn arg = ReadArg<FuseFallocateIn>(args);
        return s._fs.Fallocate(r.Request, r.Request.NodeId, arg.Fh, (int)arg.Mode, (long)arg.Offset, (long)arg.Length);
    }

    private static Errno Lseek(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        FuseLseekIn arg = ReadArg<FuseLseekIn>(args);
        Errno e = s._fs.Lseek(r.Request, r.Request.NodeId, arg.Fh, (long)arg.Offset, (int)arg.Whence, out long result);
        if (e != Errno.OK)
        {
            return e;
        }

        if (result < 0)
        {
            return s.BadResult(r, $"LSEEK result {result} is negative");
        }

        len = Put(body, new FuseLseekOut { Offset = (ulong)result });
        return Errno.OK;
    }

    private static Errno CopyFileRange(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len) =>
        CopyFileRangeCommon(s, r, args, body, wide: false, out len);

    private static Errno CopyFileRange64(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len) =>
        CopyFileRangeCommon(s, r, args, body, wide: true, out len);

    private static Errno CopyFileRangeCommon(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, bool wide, out int len)
    {
        len = 0;
        FuseCopyFileRangeIn arg = ReadArg<FuseCopyFileRangeIn>(args);
        Errno e = s._fs.CopyFileRange(r.Request, r.Request.NodeId, arg.FhIn, (long)arg.OffIn, arg.NodeIdOut, arg.FhOut, (long)arg.OffOut,
            (long)Math.Min(arg.Len, long.MaxValue), arg.Flags, out long copied);
        if (e != Errno.OK)
        {
            return e;
        }

        if (copied < 0 || (ulong)copied > arg.Len || (!wide && copied > uint.MaxValue))
        {
            return s.BadResult(r, $"COPY_FILE_RANGE reported {copied} bytes for a {arg.Len}-byte request");
        }

        len = wide ? Put(body, new FuseCopyFileRangeOut { BytesCopied = (ulong)copied }) : Put(body, new FuseWriteOut { Size = (uint)copied });
        return Errno.OK;
    }

    private static Errno ReadDir(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len) =>
        ReadDirCommon(s, r, args, body, plus: false, out len);

    private static Errno ReadDirPlus(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len) =>
        ReadDirCommon(s, r, args, body, plus: true, out len);

    private static Errno ReadDirCommon(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, bool plus, out int len)
    {
        len = 0;
        FuseReadIn arg = ReadArg<FuseReadIn>(args);
        var writer = new DirentWriter(body[..(int)Math.Min(arg.Size, (uint)body.Length)]);
        Errno e = s._fs.ReadDir(r.Request, r.Request.NodeId, arg.Fh, (long)arg.Offset, plus, ref writer);
        if (e == Errno.OK)
        {
            len = writer.BytesWritten;
        }

        return e;
    }
}
