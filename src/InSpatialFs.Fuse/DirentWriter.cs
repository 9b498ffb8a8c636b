using System.Buffers.Binary;
using System.Runtime.InteropServices;
using InSpatialFs.Fuse.Abi;

namespace InSpatialFs.Fuse;

/// <summary>
/// Writes fuse_dirent / fuse_direntplus records into the READDIR reply buffer. A record that does not
/// fit is not written and TryAdd returns false; records are never split.
/// </summary>
public ref struct DirentWriter
{
    private const int DirentHeader = 24; // ino u64, off u64, namelen u32, type u32
    private static readonly int EntryOutSize = Marshal.SizeOf<FuseEntryOut>();

    private readonly Span<byte> _buffer;
    private int _used;

    public DirentWriter(Span<byte> buffer)
    {
        _buffer = buffer;
        _used = 0;
    }

    public readonly int BytesWritten => _used;

    public readonly bool IsEmpty => _used == 0;

    /// <summary>Adds a plain entry. <paramref name="mode"/> supplies the S_IFMT type bits.</summary>
    public bool TryAdd(ReadOnlySpan<byte> name, ulong ino, uint mode, long nextOffset)
    {
        int size = Align8(DirentHeader + name.Length);
        if (_used + size > _buffer.Length)
        {
            return false;
        }

        WriteDirent(_buffer.Slice(_used, size), name, ino, mode, nextOffset);
        _used += size;
        return true;
    }

    /// <summary>Adds a READDIRPLUS entry; entry.NodeId 0 means "no lookup taken" (used for . and ..).</summary>
    public bool TryAddPlus(in FuseEntryOut entry, ReadOnlySpan<byte> name, long nextOffset)
    {
        int size = EntryOutSize + Align8(DirentHeader + name.Length);
        if (_used + size > _buffer.Length)
        {
            return false;
        }

        Span<byte> record = _buffer.Slice(_used, size);
        MemoryMarshal.Write(record, in entry);
        WriteDirent(record[EntryOutSize..], name, entry.Attr.Ino, entry.Attr.Mode, nextOffset);
        _used += size;
        return true;
    }

    /// <summary>True if a plus record with this name length would still fit (check before taking a lookup).</summary>
    public readonly bool HasRoomForPlus(int nameLength) => _used + EntryOutSize + Align8(DirentHeader + nameLength) <= _buffer.Length;

    private static void WriteDirent(Span<byte> dst, ReadOnlySpan<byte> name, ulong ino, uint mode, long nextOffset)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(dst, ino);
        BinaryPrimitives.WriteInt64LittleEndian(dst[8..], nextOffset);
        BinaryPrimitives.WriteUInt32LittleEndian(dst[16..], (uint)name.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(dst[20..], (mode & 0xF000) >> 12); // DT_* = S_IFMT >> 12
        name.CopyTo(dst[DirentHeader..]);
        dst[(DirentHeader + name.Length)..].Clear();
    }

    private static int Align8(int n) => (n + 7) & ~7;
}
