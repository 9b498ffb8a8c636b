using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;

namespace InSpatialFs.Fuse;

// The opcode table (go-fuse's opcode.go shape): per opcode its name, the minimum argument size checked before the
// handler runs, whether it is answered, and the handler. Handlers decode the rest of the arguments with checked
// lengths, call IFuseFileSystem and write the reply body; the dispatcher writes the header.
public sealed partial class ProtocolServer
{
    private delegate Errno OpHandler(ProtocolServer server, Reader reader, ReadOnlySpan<byte> args, Span<byte> body, out int bodyLength);

    private enum ReplyKind : byte
    {
        Always,
        Never,
        /// <summary>INTERRUPT: answered only with EAGAIN, when its target is not (yet) in flight.</summary>
        OnlyEagain,
    }

    private readonly struct OpEntry(string name, int argSize, ReplyKind reply, OpHandler? handler, Errno unhandled = Errno.ENOSYS)
    {
        public readonly string Name = name;
        public readonly int ArgSize = argSize;
        public readonly ReplyKind Reply = reply;
        public readonly OpHandler? Handler = handler;
        /// <summary>The answer when there is no handler (ENOSYS, or ENOTTY for IOCTL).</summary>
        public readonly Errno Unhandled = unhandled;
    }

    private static readonly OpEntry UnknownOp = new("UNKNOWN", 0, ReplyKind.Always, null);

    private static readonly OpEntry[] OpTable = BuildTable();

    private static OpEntry[] BuildTable()
    {
        var t = new OpEntry[(int)FuseOpcode.CopyFileRange64 + 1];
        for (int i = 0; i < t.Length; i++)
        {
            t[i] = UnknownOp;
        }

        void Add(FuseOpcode op, int argSize, OpHandler? handler, ReplyKind reply = ReplyKind.Always, Errno unhandled = Errno.ENOSYS) =>
            t[(int)op] = new OpEntry(op.ToString().ToUpperInvariant(), argSize, reply, handler, unhandled);

        Add(FuseOpcode.Lookup, 0, Lookup);
        Add(FuseOpcode.Forget, Size<FuseForgetIn>(), Forget, ReplyKind.Never);
        Add(FuseOpcode.GetAttr, Size<FuseGetattrIn>(), GetAttr);
        Add(FuseOpcode.SetAttr, Size<FuseSetattrIn>(), SetAttr);
        Add(FuseOpcode.ReadLink, 0, ReadLink);
        Add(FuseOpcode.Symlink, 0, Symlink);
        Add(FuseOpcode.MkNod, Size<FuseMknodIn>(), MkNod);
        Add(FuseOpcode.MkDir, Size<FuseMkdirIn>(), MkDir);
        Add(FuseOpcode.Unlink, 0, Unlink);
        Add(FuseOpcode.RmDir, 0, RmDir);
        Add(FuseOpcode.Rename, Size<FuseRenameIn>(), Rename);
        Add(FuseOpcode.Link, Size<FuseLinkIn>(), Link);
        Add(FuseOpcode.Open, Size<FuseOpenIn>(), Open);
        Add(FuseOpcode.Read, Size<FuseReadIn>(), Read);
        Add(FuseOpcode.Write, Size<FuseWriteIn>(), Write);
        Add(FuseOpcode.StatFs, 0, StatFs);
        Add(FuseOpcode.Release, Size<FuseReleaseIn>(), Release);
        Add(FuseOpcode.Fsync, Size<FuseFsyncIn>(), Fsync);
        Add(FuseOpcode.SetXattr, FuseSetxattrIn.CompatSize, SetXattr);
        Add(FuseOpcode.GetXattr, Size<FuseGetxattrIn>(), GetXattr);
        Add(FuseOpcode.ListXattr, Size<FuseGetxattrIn>(), ListXattr);
        Add(FuseOpcode.RemoveXattr, 0, RemoveXattr);
        Add(FuseOpcode.Flush, Size<FuseFlushIn>(), Flush);
        Add(FuseOpcode.Init, 16, Init); // pre-7.36 kernels send only major, minor, max_readahead, flags
        Add(FuseOpcode.OpenDir, Size<FuseOpenIn>(), OpenDir);
        Add(FuseOpcode.ReadDir, Size<FuseReadIn>(), ReadDir);
        Add(FuseOpcode.ReleaseDir, Size<FuseReleaseIn>(), ReleaseDir);
        Add(FuseOpcode.FsyncDir, Size<FuseFsyncIn>(), FsyncDir);
        Add(FuseOpcode.GetLk, Size<FuseLkIn>(), null); // POSIX_LOCKS is never negotiated: the kernel locks locally
        Add(FuseOpcode.SetLk, Size<FuseLkIn>(), null);
        Add(FuseOpcode.SetLkW, Size<FuseLkIn>(), null);
        Add(FuseOpcode.Access, Size<FuseAccessIn>(), Access);
        Add(FuseOpcode.Create, Size<FuseCreateIn>(), Create);
        Add(FuseOpcode.Interrupt, Size<FuseInterruptIn>(), Interrupt, ReplyKind.OnlyEagain);
        Add(FuseOpcode.Bmap, Size<FuseBmapIn>(), null);
        Add(FuseOpcode.Destroy, 0, Destroy);
        Add(FuseOpcode.Ioctl, Size<FuseIoctlIn>(), null, unhandled: Errno.ENOTTY);
        Add(FuseOpcode.Poll, Size<FusePollIn>(), null); // ENOSYS: the kernel uses the default poll mask
        Add(FuseOpcode.NotifyReply, 0, NotifyReply, ReplyKind.Never);
        Add(FuseOpcode.BatchForget, Size<FuseBatchForgetIn>(), BatchForget, ReplyKind.Never);
        Add(FuseOpcode.Fallocate, Size<FuseFallocateIn>(), Fallocate);
        Add(FuseOpcode.ReadDirPlus, Size<FuseReadIn>(), ReadDirPlus);
        Add(FuseOpcode.Rename2, Size<FuseRename2In>(), Rename2);
        Add(FuseOpcode.Lseek, Size<FuseLseekIn>(), Lseek);
        Add(FuseOpcode.CopyFileRange, Size<FuseCopyFileRangeIn>(), CopyFileRange);
        Add(FuseOpcode.SetupMapping, 0, null);
        Add(FuseOpcode.RemoveMapping, 0, null);
        Add(FuseOpcode.SyncFs, Size<FuseSyncfsIn>(), null);
        Add(FuseOpcode.TmpFile, Size<FuseCreateIn>(), TmpFile);
        Add(FuseOpcode.Statx, Size<FuseStatxIn>(), null); // ENOSYS: the kernel falls back to GETATTR
        Add(FuseOpcode.CopyFileRange64, Size<FuseCopyFileRangeIn>(), CopyFileRange64);
        return t;
    }

    private static int Size<T>()
        where T : unmanaged => Unsafe.SizeOf<T>();

    private static ref readonly OpEntry Entry(uint opcode)
    {
        OpEntry[] table = OpTable;
        if (opcode < (uint)table.Length)
        {
            return ref table[opcode];
        }

        return ref UnknownOp;
    }

    /// <summary>The table's view of an opcode, for tests: name, minimum argument size, whether it is answered, whether it has a handler.</summary>
    internal static (string Name, int ArgSize, bool NeverReplied, bool Handled) DescribeOpcode(uint opcode)
    {
        ref readonly OpEntry e = ref Entry(opcode);
        return (e.Name, e.ArgSize, e.Reply == ReplyKind.Never, e.Handler is not null);
    }

    private static Errno Init(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        if (s._connection is not null)
        {
            return Errno.EIO; // a second INIT on a live connection is a protocol error
        }

        uint major = MemoryMarshal.Read<uint>(args);
        uint minor = MemoryMarshal.Read<uint>(args[4..]);
        uint maxReadahead = MemoryMarshal.Read<uint>(args[8..]);
        uint flags = MemoryMarshal.Read<uint>(args[12..]);
        uint flags2 = args.Length >= 20 ? MemoryMarshal.Read<uint>(args[16..]) : 0;
        var reply = new FuseInitOut { Major = FuseConstants.KernelVersion, Minor = FuseConstants.KernelMinorVersion };
        if (major > FuseConstants.KernelVersion)
        {
            // Answer with our major only; the kernel then sends a second INIT with major 7.
            FuseLog.InitMajorTooNew(s._logger, major);
            len = Put(body, in reply);
            return Errno.OK;
        }

        if (major < FuseConstants.KernelVersion || minor < FuseConstants.MinimumMinorVersion)
        {
            FuseLog.InitRefused(s._logger, major, minor, $"need 7.{FuseConstants.MinimumMinorVersion} or newer");
            return Errno.EPROTO;
        }

        ulong offered = flags;
        if ((flags & (uint)FuseInitFlags.InitExt) != 0)
        {
            offered |= (ulong)flags2 << 32;
        }

        ProtocolServerOptions o = s._options;
        ulong wanted = (ulong)o.WantedFlags & ~(ulong)FuseInitFlags.InitExt;
        if (o.IoUring && (offered & (ulong)FuseInitFlags.OverIoUring) != 0 && s.PrepareRings())
        {
            wanted |= (ulong)FuseInitFlags.OverIoUring; // the rings register after this reply (ProtocolServer.Ring.cs)
        }
        else if (o.IoUring && (offered & (ulong)FuseInitFlags.OverIoUring) == 0)
        {
            // Said before the reply: once it is sent, other readers serve requests while this one is still in AfterInit.
            s.RingsUnavailable(NotOffered);
        }

        if ((wanted & (ulong)FuseInitFlags.WritebackCache) != 0)
        {
            wanted &= ~(ulong)FuseInitFlags.Passthrough;
        }

        ulong accepted = wanted & offered;
        if ((offered & (ulong)FuseInitFlags.InitExt) != 0)
        {
            accepted |= (ulong)FuseInitFlags.InitExt;
        }
        else
        {
            accepted &= 0xFFFF_FFFF; // without INIT_EXT the kernel cannot read flags2
        }

        bool passthrough = (accepted & (ulong)FuseInitFlags.Passthrough) != 0;
        reply.Minor = Math.Min(minor, FuseConstants.KernelMinorVersion);
        reply.MaxReadahead = maxReadahead;
        reply.Flags = (uint)accepted;
        reply.Flags2 = (uint)(accepted >> 32);
        reply.MaxBackground = o.MaxBackground;
        reply.CongestionThreshold = o.CongestionThreshold;
        reply.MaxWrite = o.MaxWrite;
        reply.TimeGran = o.TimeGranularity;
        reply.MaxPages = (accepted & (ulong)FuseInitFlags.MaxPages) != 0 ? o.MaxPages : (ushort)0;
        reply.MaxStackDepth = passthrough ? o.MaxStackDepth : 0;
        len = Put(body, in reply);

        s._setxattrExt = (accepted & (ulong)FuseInitFlags.SetxattrExt) != 0;
        s._connection = new FuseConnectionInfo
        {
            KernelMajor = major,
            KernelMinor = minor,
            NegotiatedMinor = reply.Minor,
            KernelFlags = offered,
            ReplyFlags = accepted,
            MaxWrite = o.MaxWrite,
            MaxReadahead = maxReadahead,
            PassthroughEnabled = passthrough,
            Backing = passthrough ? s._transport.Backing : null,
            Notifier = s._notifier,
        };
        FuseLog.Initialized(s._logger, major, minor, offered, reply.Minor, accepted, o.MaxWrite, passthrough);
        return Errno.OK;
    }

    private static Errno Lookup(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        if (!TakeName(ref args, out ReadOnlySpan<byte> name))
        {
            return Errno.EINVAL;
        }

        Errno e = s._fs.Lookup(r.Request, r.Request.NodeId, name, out FuseEntryOut entry);
        if (e == Errno.OK)
        {
            len = Put(body, in entry);
        }

        return e;
    }

    private static Errno Forget(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        s._fs.Forget(r.Request.NodeId, ReadArg<FuseForgetIn>(args).Nlookup);
        return Errno.OK;
    }

    private static Errno BatchForget(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        uint count = ReadArg<FuseBatchForgetIn>(args).Count;
        ReadOnlySpan<byte> items = args[Size<FuseBatchForgetIn>()..];
        int one = Size<FuseForgetOne>();
        if ((ulong)count * (ulong)one > (ulong)items.Length)
        {
            FuseLog.MalformedFrame(s._logger, "BATCH_FORGET", r.Request.Unique, args.Length, "count reaches past the frame");
            return Errno.EINVAL; // not answered (BATCH_FORGET takes no reply); nothing is forgotten
        }

        for (int i = 0; i < (int)count; i++)
        {
            FuseForgetOne item = MemoryMarshal.Read<FuseForgetOne>(items.Slice(i * one, one));
            s._fs.Forget(item.NodeId, item.Nlookup);
        }

        return Errno.OK;
    }

    private static Errno NotifyReply(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0; // RETRIEVE is never sent by this server, so any NOTIFY_REPLY is dropped
        return Errno.OK;
    }

    private static Errno Destroy(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0; // fuseblk/virtiofs only; the read loop ends on ENODEV afterwards
        return Errno.OK;
    }

    private static Errno Interrupt(ProtocolServer s, Reader r, ReadOnlySpan<byte> args, Span<byte> body, out int len)
    {
        len = 0;
        ulong target = ReadArg<FuseInterruptIn>(args).Unique;
        return s.InterruptInFlight(target) ? Errno.OK : Errno.EAGAIN; // EAGAIN: the kernel re-queues the interrupt
    }
}
