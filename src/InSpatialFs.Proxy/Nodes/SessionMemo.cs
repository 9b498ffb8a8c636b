using System.Buffers.Binary;
using InSpatialFs.Interop;

namespace InSpatialFs.Proxy.Nodes;

/// <summary>
/// A few bytes a live mount's servers pass on through the descriptor store (a memfd the keeper, or systemd, holds), so
/// that taking over never depends on the state disk for what must not be lost: the connections' INIT parameters, and a
/// ceiling above every node id and file handle ever handed out. Ids are reserved in blocks (<see cref="Block"/>): the
/// ceiling is raised in the memo before an id past it is used, so a successor that starts above it never gives a dead
/// server's id or handle to another file, even when the journal missed them (a full disk) or is gone (a deleted state
/// directory). Layout: magic, node ceiling, fh ceiling, then <see cref="Slots"/> parameter slots (length + bytes).
/// </summary>
public sealed unsafe class SessionMemo : IDisposable
{
    /// <summary>Ids reserved per raise: one pwrite(2) per this many new nodes or handles.</summary>
    public const ulong Block = 1 << 16;

    public const int Slots = 2, SlotBytes = 60;

    private const ulong Magic = 0x3130_4F4D_4553_4649; // "IFSEMO01"
    private const int NodeAt = 8, FhAt = 16, SlotsAt = 24;
    private const int Size = SlotsAt + (Slots * (4 + SlotBytes));

    private readonly SafeFd _fd;

    private SessionMemo(SafeFd fd) => _fd = fd;

    /// <summary>The memfd, for the descriptor store.</summary>
    public SafeFd Descriptor => _fd;

    /// <summary>A new, empty memo (a fresh mount).</summary>
    public static SessionMemo Create()
    {
        byte[] name = "inspatialfs-session\0"u8.ToArray();
        int fd;
        fixed (byte* n = name)
        {
            fd = LibC.memfd_create(n, LibC.MFD_CLOEXEC);
        }

        if (fd < 0)
        {
            throw new IOException($"memfd_create: {ErrnoExtensions.LastPInvoke()}");
        }

        var memo = new SessionMemo(new SafeFd(fd));
        Span<byte> blank = stackalloc byte[Size];
        blank.Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(blank, Magic);
        memo.Write(blank, 0);
        return memo;
    }

    /// <summary>A predecessor's memo, or null when <paramref name="fd"/> is not one (then owned and closed here).</summary>
    public static SessionMemo? Adopt(SafeFd? fd)
    {
        if (fd == null)
        {
            return null;
        }

        var memo = new SessionMemo(fd);
        Span<byte> head = stackalloc byte[8];
        if (!memo.TryRead(head, 0) || BinaryPrimitives.ReadUInt64LittleEndian(head) != Magic)
        {
            memo.Dispose();
            return null;
        }

        return memo;
    }

    public ulong NodeCeiling => ReadUInt64(NodeAt);

    public ulong FhCeiling => ReadUInt64(FhAt);

    /// <summary>Raises the node ceiling to <paramref name="ceiling"/>; false when the memo could not be written.</summary>
    public bool RaiseNodeCeiling(ulong ceiling) => WriteUInt64(NodeAt, ceiling);

    public bool RaiseFhCeiling(ulong ceiling) => WriteUInt64(FhAt, ceiling);

    /// <summary>Keeps <paramref name="payload"/> (at most <see cref="SlotBytes"/>) in slot <paramref name="slot"/>.</summary>
    public bool SetParameters(int slot, ReadOnlySpan<byte> payload)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(payload.Length, SlotBytes);
        Span<byte> record = stackalloc byte[4 + SlotBytes];
        record.Clear();
        BinaryPrimitives.WriteInt32LittleEndian(record, payload.Length);
        payload.CopyTo(record[4..]);
        return Write(record, SlotOffset(slot));
    }

    /// <summary>What slot <paramref name="slot"/> holds, or null when it was never set.</summary>
    public byte[]? Parameters(int slot)
    {
        Span<byte> record = stackalloc byte[4 + SlotBytes];
        if (!TryRead(record, SlotOffset(slot)))
        {
            return null;
        }

        int length = BinaryPrimitives.ReadInt32LittleEndian(record);
        return length is > 0 and <= SlotBytes ? record.Slice(4, length).ToArray() : null;
    }

    public void Dispose() => _fd.Dispose();

    private static long SlotOffset(int slot)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(slot);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(slot, Slots);
        return SlotsAt + (slot * (4 + SlotBytes));
    }

    private ulong ReadUInt64(long offset)
    {
        Span<byte> b = stackalloc byte[8];
        return TryRead(b, offset) ? BinaryPrimitives.ReadUInt64LittleEndian(b) : 0;
    }

    private bool WriteUInt64(long offset, ulong value)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, value);
        return Write(b, offset);
    }

    private bool TryRead(Span<byte> buffer, long offset)
    {
        fixed (byte* p = buffer)
        {
            return LibC.pread(_fd.Fd, p, buffer.Length, offset) == buffer.Length;
        }
    }

    private bool Write(ReadOnlySpan<byte> data, long offset)
    {
        fixed (byte* p = data)
        {
            return LibC.pwrite(_fd.Fd, p, data.Length, offset) == data.Length;
        }
    }
}
