using System.Collections.Concurrent;
using System.Text;
using InSpatialFs.Fuse;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.Daemon.Control;

/// <summary>
/// The /proc-style control directory (ARCHITECTURE.md, "Control plane"), served by the same daemon on a second
/// FUSE mount: a fixed, root-only directory of generated files. Snapshot files are rendered at OPEN, so one
/// open sees one consistent snapshot; all files use direct I/O, so sizes need not be known in advance.
/// `events` is a live log (reads at its end block); `control` takes one command per written line, and a read of the
/// same open file returns the reply to each (ok, or refused with the reason).
/// The tree is fixed: anything that would change it is refused with EPERM or EACCES, never ENOSYS.
/// </summary>
internal sealed partial class ControlFileSystem : IFuseFileSystem
{
    private const ulong RootId = 1;
    private static readonly ControlFile[] Files = Enum.GetValues<ControlFile>();
    private static readonly byte[][] Names = Files.Select(f => Encoding.ASCII.GetBytes(f.ToString().ToLowerInvariant())).ToArray();

    private readonly IControlPlane _plane;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<ulong, OpenControlFile> _open = new();
    private readonly DateTime _started = DateTime.UtcNow;
    // Handles start at this server's start on CLOCK_MONOTONIC (ns): a predecessor that handed the live control mount over
    // opened fewer files than nanoseconds passed, so none of its handles, which the kernel may still send, is reused.
    private long _nextFh = FirstFh;
    private static readonly long FirstFh = (long)(System.Diagnostics.Stopwatch.GetTimestamp() * (1_000_000_000.0 / System.Diagnostics.Stopwatch.Frequency));
    private int _blockedReaders;
    private volatile bool _closing;

    public ControlFileSystem(IControlPlane plane, ILogger logger)
    {
        _plane = plane;
        _logger = logger;
    }

    /// <summary>
    /// Blocked `events` readers each hold a FUSE reader thread; past this many, a read at the end answers EAGAIN
    /// instead of blocking, so followers can never starve the snapshot files and commands (the server runs more threads).
    /// </summary>
    public const int MaxBlockedEventReaders = 12;

    /// <summary>Ends every blocked `events` read with end-of-file (shutdown: followers must not hold the mount).</summary>
    public void Close() => _closing = true;

    /// <summary>How long a read of `events` at its end waits before re-checking for an interrupt.</summary>
    private static readonly TimeSpan EventPoll = TimeSpan.FromMilliseconds(250);

    public void Initialized(FuseConnectionInfo connection)
    {
    }

    public Errno Lookup(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, out FuseEntryOut entry)
    {
        entry = default;
        if (parent != RootId)
        {
            return Errno.ENOTDIR;
        }

        for (int i = 0; i < Names.Length; i++)
        {
            if (name.SequenceEqual(Names[i]))
            {
                entry = new FuseEntryOut { NodeId = NodeOf(Files[i]), EntryValid = 60, Attr = AttrOf(NodeOf(Files[i])) };
                return Errno.OK;
            }
        }

        return Errno.ENOENT;
    }

    public void Forget(ulong nodeId, ulong lookupCount)
    {
        // The tree is fixed; nothing to release.
    }

    public Errno GetAttr(FuseRequest request, ulong nodeId, ulong? fh, out FuseAttrOut attr)
    {
        attr = default;
        if (!IsNode(nodeId))
        {
            return Errno.ENOENT;
        }

        attr = new FuseAttrOut { Attr = AttrOf(nodeId) }; // attr_valid 0: sizes and times are live
        return Errno.OK;
    }

    public Errno SetAttr(FuseRequest request, ulong nodeId, in FuseSetattrIn change, out FuseAttrOut attr)
    {
        attr = default;
        if (!IsNode(nodeId))
        {
            return Errno.ENOENT;
        }

        // `echo cmd > control` truncates first (O_TRUNC arrives in OPEN with ATOMIC_O_TRUNC; an explicit
        // truncate to 0 is harmless). Anything else would change the fixed tree.
        var valid = (FattrFlags)change.Valid;
        if (nodeId == NodeOf(ControlFile.Control) && (valid & ~(FattrFlags.Size | FattrFlags.Fh | FattrFlags.LockOwner | FattrFlags.Atime | FattrFlags.Mtime | FattrFlags.AtimeNow | FattrFlags.MtimeNow | FattrFlags.Ctime)) == 0)
        {
            attr = new FuseAttrOut { Attr = AttrOf(nodeId) };
            return Errno.OK;
        }

        return Errno.EPERM;
    }

    public Errno ReadLink(FuseRequest request, ulong nodeId, Span<byte> buffer, out int length)
    {
        length = 0;
        return Errno.EINVAL;
    }

    public Errno Symlink(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, ReadOnlySpan<byte> target, out FuseEntryOut entry) => Refuse(out entry);

    public Errno MkNod(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, uint mode, uint rdev, uint umask, out FuseEntryOut entry) => Refuse(out entry);

    public Errno MkDir(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, uint mode, uint umask, out FuseEntryOut entry) => Refuse(out entry);

    public Errno Unlink(FuseRequest request, ulong parent, ReadOnlySpan<byte> name) => Errno.EPERM;

    public Errno RmDir(FuseRequest request, ulong parent, ReadOnlySpan<byte> name) => Errno.EPERM;

    public Errno Rename(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, ulong newParent, ReadOnlySpan<byte> newName, uint flags) => Errno.EPERM;

    public Errno Link(FuseRequest request, ulong nodeId, ulong newParent, ReadOnlySpan<byte> newName, out FuseEntryOut entry) => Refuse(out entry);

    public Errno StatFs(FuseRequest request, ulong nodeId, out FuseKstatfs stat)
    {
        stat = new FuseKstatfs { Bsize = 4096, Frsize = 4096, NameLen = 255, Files = (ulong)Files.Length + 1 };
        return Errno.OK;
    }

    public Errno Fsync(FuseRequest request, ulong nodeId, ulong fh, bool dataOnly) => Errno.OK;

    public Errno SetXattr(FuseRequest request, ulong nodeId, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, int flags) => Errno.EPERM;

    public Errno GetXattr(FuseRequest request, ulong nodeId, ReadOnlySpan<byte> name, Span<byte> buffer, out int size)
    {
        size = 0;
        return Errno.ENODATA;
    }

    public Errno ListXattr(FuseRequest request, ulong nodeId, Span<byte> buffer, out int size)
    {
        size = 0;
        return Errno.OK;
    }

    public Errno RemoveXattr(FuseRequest request, ulong nodeId, ReadOnlySpan<byte> name) => Errno.EPERM;

    public Errno OpenDir(FuseRequest request, ulong nodeId, int flags, out FuseOpenOut open)
    {
        open = default;
        return nodeId == RootId ? Errno.OK : Errno.ENOTDIR;
    }

    public Errno ReadDir(FuseRequest request, ulong nodeId, ulong fh, long offset, bool plus, ref DirentWriter writer)
    {
        // Cookies: 1 = after ".", 2 = after "..", 3 + i = after file i.
        for (long position = offset; position < Files.Length + 2; position++)
        {
            ReadOnlySpan<byte> name = position switch { 0 => "."u8, 1 => ".."u8, _ => Names[position - 2] };
            ulong node = position < 2 ? RootId : NodeOf(Files[position - 2]);
            FuseAttr attr = AttrOf(node);
            bool added = plus
                ? writer.TryAddPlus(new FuseEntryOut { NodeId = position < 2 ? 0 : node, EntryValid = 60, Attr = attr }, name, position + 1)
                : writer.TryAdd(name, node, attr.Mode, position + 1);
            if (!added)
            {
                break;
            }
        }

        return Errno.OK;
    }

    public Errno ReleaseDir(FuseRequest request, ulong nodeId, ulong fh) => Errno.OK;

    public Errno FsyncDir(FuseRequest request, ulong nodeId, ulong fh, bool dataOnly) => Errno.OK;

    public Errno Access(FuseRequest request, ulong nodeId, int mask) => IsNode(nodeId) ? Errno.OK : Errno.ENOENT;

    public Errno Create(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, int flags, uint mode, uint umask, out FuseEntryOut entry, out FuseOpenOut open)
    {
        open = default;
        return Refuse(out entry);
    }

    public Errno TmpFile(FuseRequest request, ulong parent, int flags, uint mode, uint umask, out FuseEntryOut entry, out FuseOpenOut open)
    {
        open = default;
        return Refuse(out entry);
    }

    public Errno Fallocate(FuseRequest request, ulong nodeId, ulong fh, int mode, long offset, long length) => Errno.EPERM;

    public Errno Lseek(FuseRequest request, ulong nodeId, ulong fh, long offset, int whence, out long result)
    {
        result = 0;
        return whence is LibC.SEEK_SET or LibC.SEEK_END ? SeekGeneric(fh, offset, whence, out result) : Errno.EINVAL;
    }

    public Errno CopyFileRange(FuseRequest request, ulong nodeIn, ulong fhIn, long offsetIn, ulong nodeOut, ulong fhOut, long offsetOut, long length, ulong flags, out long copied)
    {
        copied = 0;
        return Errno.EXDEV;
    }

    private Errno SeekGeneric(ulong fh, long offset, int whence, out long result)
    {
        result = 0;
        if (!_open.TryGetValue(fh, out OpenControlFile? open))
        {
            return Errno.EBADF;
        }

        long size = open.File == ControlFile.Events ? _plane.Events.End : open.Snapshot.Length;
        result = whence == LibC.SEEK_END ? size + offset : offset;
        return result < 0 ? Errno.EINVAL : Errno.OK;
    }

    private static Errno Refuse(out FuseEntryOut entry)
    {
        entry = default;
        return Errno.EPERM;
    }

    private static bool IsNode(ulong nodeId) => nodeId >= RootId && nodeId < RootId + 1 + (ulong)Files.Length;

    private static ulong NodeOf(ControlFile file) => RootId + 1 + (ulong)file;

    private static ControlFile FileOf(ulong nodeId) => (ControlFile)(nodeId - RootId - 1);

    private FuseAttr AttrOf(ulong nodeId)
    {
        DateTime time = _started;
        ulong size = 0;
        uint mode;
        if (nodeId == RootId)
        {
            mode = LibC.S_IFDIR | 0x1C0; // 0700: root only
        }
        else
        {
            ControlFile file = FileOf(nodeId);
            mode = LibC.S_IFREG | (file == ControlFile.Control ? 0x180u : 0x100u); // 0600 control (read: the replies), 0400 the rest
            if (file == ControlFile.Events)
            {
                size = (ulong)_plane.Events.End;
                time = _plane.Events.LastAppendUtc;
            }
        }

        long seconds = (time.Ticks - DateTime.UnixEpoch.Ticks) / TimeSpan.TicksPerSecond;
        uint nanos = (uint)((time.Ticks - DateTime.UnixEpoch.Ticks) % TimeSpan.TicksPerSecond * 100);
        return new FuseAttr
        {
            Ino = nodeId,
            Mode = mode,
            Nlink = nodeId == RootId ? 2u : 1u,
            Size = size,
            Atime = (ulong)seconds,
            Mtime = (ulong)seconds,
            Ctime = (ulong)seconds,
            AtimeNsec = nanos,
            MtimeNsec = nanos,
            CtimeNsec = nanos,
            BlkSize = 4096,
        };
    }

    private sealed class OpenControlFile(ControlFile file, byte[] snapshot, bool NonBlocking)
    {
        public ControlFile File { get; } = file;

        public bool NonBlocking { get; } = NonBlocking;

        public byte[] Snapshot { get; } = snapshot;

        /// <summary>control: the line being written, at most <see cref="ControlCommand.MaxLineBytes"/> (allocated for control opens only).</summary>
        public byte[] Pending { get; } = file == ControlFile.Control ? new byte[ControlCommand.MaxLineBytes] : [];

        public int PendingLength;

        /// <summary>control: the current line went past the limit; its remaining bytes are dropped up to its newline.</summary>
        public bool Discarding;

        /// <summary>control: "ok: MESSAGE" or "refused: LINE:COLUMN: REASON" per command written on this open, read back by the writer.</summary>
        public StringBuilder Replies { get; } = new();

        /// <summary>control: bytes of <see cref="Replies"/> already read (replies are a stream, whatever the file offset).</summary>
        public int RepliesRead;

        /// <summary>control: lines seen on this open (for positioned refusals).</summary>
        public int LineNumber;

        /// <summary>events: this reader's place in the log (null for the other files).</summary>
        public EventCursor? Events { get; init; }
    }
}
