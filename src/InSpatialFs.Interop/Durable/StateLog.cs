using System.Buffers;
using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using Microsoft.Win32.SafeHandles;

namespace InSpatialFs.Interop.Durable;

/// <summary>Called once per intact record during replay, in the order they were appended.</summary>
public delegate void StateRecordHandler(ushort type, ReadOnlySpan<byte> payload);

/// <summary>
/// An append-only log of typed records that a process killed at any instant (SIGKILL, OOM) leaves readable: each record
/// goes to the file in one write(2), and replay stops at the first record that is torn or damaged, so a record is either
/// read exactly as appended or not at all — never misread. What the next server needs to adopt a live FUSE connection
/// (nodes, handles, backing ids) is kept this way.
///
/// Process death loses nothing that write(2) returned for: the data is in the page cache. A host crash is out of scope
/// (the FUSE connection does not survive one either), so appends do not fsync.
///
/// The file holds a header and then records with sequence numbers 1, 2, 3, ... (<see cref="StateLogFormat"/>); on open
/// a torn tail is cut off before anything is appended after it. <see cref="Rewrite"/> replaces the whole log with a
/// compact set of records (a new file renamed over the old one), so the log grows with live state, not with history.
/// Appends, stages and rewrites are serialised by one lock.
///
/// A log opened <c>mapped</c> appends by copying into a shared mapping of the file instead of write(2): no system call
/// per append, and the same guarantee (the stores are in the page cache the moment they are made; a copy cut short by
/// a kill leaves a record that fails its CRC, so the replay ends before it). The file then carries zero padding after
/// its records, up to the mapped capacity, whose blocks are allocated in advance (fallocate), so a store never meets a
/// hole on a full disk (SIGBUS). Where the file cannot be mapped so (a filesystem without fallocate, a full disk), the
/// log goes on with write(2) (<see cref="IsMapped"/>). For the log written on every request.
/// </summary>
public sealed unsafe class StateLog : IDisposable
{
    private readonly SafeFd _directory;
    private readonly string _directoryPath;
    private readonly string _name;
    private readonly Lock _lock = new();
    private const int StagedKept = 4096;
    private const int RewriteChunk = 256 << 10;
    private const long MapChunk = 1 << 20;
    private bool _mapped; // cleared for good when the file cannot be mapped (see TryMapLocked)
    private MemoryMappedFile? _map;
    private MemoryMappedViewAccessor? _view;
    private byte* _mappedBase;
    private long _capacity;
    private SafeFileHandle _file;
    private long _length;
    private ulong _nextSequence;
    private byte[] _staged = new byte[StagedKept];
    private int _stagedBytes, _stagedCount;
    private readonly long _reserveAhead; // a write(2) log's blocks allocated past its end (0: none); see ReserveRunsOut
    private long _reservedTo;
    private bool _reserveRunsOut;

    private StateLog(SafeFd directory, string directoryPath, string name, SafeFileHandle file, long length, ulong nextSequence, bool mapped, long reserveAhead)
    {
        _mapped = mapped;
        _reserveAhead = mapped ? 0 : reserveAhead;
        _directory = directory;
        _directoryPath = directoryPath;
        _name = name;
        _file = file;
        _length = length;
        _nextSequence = nextSequence;
    }

    /// <summary>Bytes in the log (header included).</summary>
    public long Length => Volatile.Read(ref _length);

    /// <summary>Records in the log.</summary>
    public long RecordCount => (long)Volatile.Read(ref _nextSequence) - 1;

    /// <summary>Bytes of a torn or damaged tail cut off when the log was opened (0: the log was whole).</summary>
    public long DiscardedTailBytes { get; private init; }

    /// <summary>
    /// Opens (creating, 0600) <paramref name="name"/> in the daemon's state directory <paramref name="directoryPath"/>
    /// (reached through <see cref="TrustedPath"/>: no symlinks, trusted owner), hands every intact record to
    /// <paramref name="replay"/>, and cuts off a torn tail. A file that is not a state log (wrong magic or version) is
    /// refused with <see cref="InvalidDataException"/> and left as it is.
    /// With <paramref name="mapped"/>, appends go through a shared mapping of the file (see the class comment).
    /// </summary>
    /// <param name="reserveAhead">For a write(2) log: keep this many bytes allocated past its end (fallocate, the size
    /// unchanged), so that the disk filling up is seen while its records still fit (<see cref="ReserveRunsOut"/>).</param>
    public static StateLog Open(string directoryPath, string name, StateRecordHandler replay, bool mapped = false, long reserveAhead = 0)
    {
        ArgumentNullException.ThrowIfNull(replay);
        SafeFd directory = TrustedPath.OpenDirectory(directoryPath, create: true);
        SafeFileHandle? file = null;
        try
        {
            file = TrustedPath.OpenFile(directory, directoryPath, name, LibC.O_RDWR | LibC.O_CREAT);
            long size = RandomAccess.GetLength(file);
            long intact;
            ulong next;
            if (size < StateLogFormat.HeaderSize)
            {
                // New, or torn while its header was written: nothing in it can be a record.
                WriteHeader(file);
                intact = StateLogFormat.HeaderSize;
                next = 1;
            }
            else
            {
                byte[] content = new byte[size];
                RandomAccess.Read(file, content, 0);
                if (!StateLogFormat.IsHeader(content))
                {
                    throw new InvalidDataException($"{Path.Combine(directoryPath, name)} is not an InSpatialFs state log (bad header); left untouched");
                }

                intact = StateLogFormat.Replay(content, replay, out next);
                if (mapped)
                {
                    size = intact + content.AsSpan((int)intact).TrimEnd((byte)0).Length; // its zero padding is not a torn tail
                }
            }

            // Cut the torn tail (and a mapped log's padding): nothing after the records may be read as one later.
            if (intact < RandomAccess.GetLength(file))
            {
                RandomAccess.SetLength(file, intact);
            }

            var log = new StateLog(directory, directoryPath, name, file, intact, next, mapped, reserveAhead)
            {
                DiscardedTailBytes = Math.Max(0, size - intact),
            };
            if (mapped)
            {
                log.TryMapLocked(intact);
            }

            log.ReserveLocked(); // not shared yet: no lock needed

            return log;
        }
        catch
        {
            file?.Dispose();
            directory.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Renames <paramref name="name"/> in the state directory to <c>NAME.damaged-UTCTIME</c> (never over another file) and
    /// returns the new name: a log <see cref="Open"/> refused is kept for a post-mortem while a fresh one takes its place.
    /// </summary>
    public static string SetAside(string directoryPath, string name)
    {
        using SafeFd directory = TrustedPath.OpenDirectory(directoryPath, create: false);
        string stamp = name + ".damaged-" + DateTime.UtcNow.ToString("yyyyMMdd'T'HHmmss'Z'", System.Globalization.CultureInfo.InvariantCulture);
        byte[] from = System.Text.Encoding.UTF8.GetBytes(name + "\0");
        for (int n = 0; ; n++)
        {
            string aside = n == 0 ? stamp : FormattableString.Invariant($"{stamp}.{n}"); // two in one second (a restart loop)
            byte[] to = System.Text.Encoding.UTF8.GetBytes(aside + "\0");
            fixed (byte* f = from)
            fixed (byte* t = to)
            {
                if (LibC.renameat2(directory.Fd, f, directory.Fd, t, LibC.RENAME_NOREPLACE) == 0)
                {
                    return aside;
                }
            }

            Errno error = ErrnoExtensions.LastPInvoke();
            if (error != Errno.EEXIST || n == 99)
            {
                throw new IOException($"cannot set {Path.Combine(directoryPath, name)} aside: {error}");
            }
        }
    }

    /// <summary>
    /// Appends one record, together with any staged before it, with one write(2). Throws <see cref="IOException"/> when
    /// the write fails (disk full); the staged records are then lost with it.
    /// </summary>
    public void Append(ushort type, ReadOnlySpan<byte> payload)
    {
        lock (_lock)
        {
            StageLocked(type, payload);
            WriteStagedLocked();
        }
    }

    /// <summary>
    /// Encodes a record and keeps it in memory, numbered in order, until the next <see cref="Append"/> or
    /// <see cref="WriteStaged"/> writes it with the others in one write(2): several records of one request (or records
    /// whose loss in a crash costs nothing but a leak) then cost one write instead of one each. A process killed before
    /// then loses them; the log stays a readable prefix.
    /// </summary>
    public void Stage(ushort type, ReadOnlySpan<byte> payload)
    {
        lock (_lock)
        {
            StageLocked(type, payload);
        }
    }

    /// <summary>Writes the staged records (one write(2)); nothing when none are staged.</summary>
    public void WriteStaged()
    {
        lock (_lock)
        {
            WriteStagedLocked();
        }
    }

    /// <summary>Records staged and not yet written.</summary>
    public int StagedCount
    {
        get
        {
            lock (_lock) return _stagedCount;
        }
    }

    private void StageLocked(ushort type, ReadOnlySpan<byte> payload)
    {
        if (payload.Length > StateLogFormat.MaxPayload)
        {
            throw new ArgumentOutOfRangeException(nameof(payload), payload.Length, $"a state record holds at most {StateLogFormat.MaxPayload} bytes");
        }

        int size = StateLogFormat.RecordSize(payload.Length);
        if (_staged.Length - _stagedBytes < size)
        {
            Array.Resize(ref _staged, Math.Max(_staged.Length * 2, _stagedBytes + size));
        }

        StateLogFormat.WriteRecord(_staged.AsSpan(_stagedBytes, size), _nextSequence, type, payload);
        _stagedBytes += size;
        _stagedCount++;
        _nextSequence++;
    }

    private void WriteStagedLocked()
    {
        if (_stagedBytes == 0)
        {
            return;
        }

        int bytes = _stagedBytes, count = _stagedCount;
        _stagedBytes = 0;
        _stagedCount = 0;
        try
        {
            if (_mapped && (_length + bytes <= _capacity || TryMapLocked(_length + bytes)))
            {
                _staged.AsSpan(0, bytes).CopyTo(new Span<byte>(_mappedBase + _length, bytes));
            }
            else
            {
                RandomAccess.Write(_file, _staged.AsSpan(0, bytes), _length);
            }
        }
        catch
        {
            // Lost, and their numbers freed: the next record continues the sequence where the file's last one ended
            // (a partly written tail is overwritten by it, as _length did not move).
            _nextSequence -= (ulong)count;
            throw;
        }

        _length += bytes;
        if (_staged.Length > StagedKept)
        {
            _staged = new byte[StagedKept]; // one big record (an owner's) does not pin its buffer
        }

        ReserveLocked();
    }

    /// <summary>
    /// A log opened with a reserve could not allocate more of it (the disk is full): the records written so far are in,
    /// and the next ones fit only in what is left of it (a quarter of the reserve or more). Its owner stops making
    /// changes that need a record, rather than learn of the full disk from a record that is lost. Cleared when a later
    /// append or <see cref="Rewrite"/> could reserve again.
    /// </summary>
    public bool ReserveRunsOut
    {
        get
        {
            lock (_lock) return _reserveRunsOut;
        }
    }

    /// <summary>Tops the reserve up once less than a quarter of it is left. Only a full disk (or quota) counts as running out.</summary>
    private void ReserveLocked()
    {
        if (_reserveAhead == 0 || _reservedTo - _length >= _reserveAhead / 4)
        {
            return;
        }

        if (LibC.fallocate((int)_file.DangerousGetHandle(), LibC.FALLOC_FL_KEEP_SIZE, _length, _reserveAhead) == 0)
        {
            _reservedTo = _length + _reserveAhead;
            _reserveRunsOut = false;
        }
        else if (ErrnoExtensions.LastPInvoke() is Errno.ENOSPC or Errno.EDQUOT)
        {
            _reserveRunsOut = true;
        }
        else
        {
            _reservedTo = long.MaxValue; // no fallocate here (EOPNOTSUPP): a write(2) log as without a reserve
        }
    }

    /// <summary>
    /// Replaces the log with <paramref name="records"/> (the live state, as its owner sees it now): written to a new
    /// file that is renamed over the old one, so a kill during the rewrite leaves either the old log or the new one.
    /// Records staged and not yet written are dropped: the owner's live state already holds what they changed.
    /// </summary>
    public void Rewrite(IEnumerable<(ushort Type, byte[] Payload)> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        string temporary = _name + ".new";
        lock (_lock)
        {
            // A leftover of a rewrite killed before its rename is ours to discard, whatever it became: removed by name in the
            // trusted directory (never followed), then created afresh with O_EXCL.
            RemoveEntry(temporary);
            SafeFileHandle next = TrustedPath.OpenFile(_directory, _directoryPath, temporary, LibC.O_RDWR | LibC.O_CREAT | LibC.O_EXCL);
            long length = StateLogFormat.HeaderSize;
            ulong sequence = 1;
            try
            {
                WriteHeader(next);
                // A buffer of its own, reused: a growing one would go through the large-object heap on every compaction.
                byte[] buffer = ArrayPool<byte>.Shared.Rent(RewriteChunk);
                try
                {
                    int used = 0;
                    foreach ((ushort type, byte[] payload) in records)
                    {
                        int size = StateLogFormat.RecordSize(payload.Length);
                        if (buffer.Length - used < size)
                        {
                            RandomAccess.Write(next, buffer.AsSpan(0, used), length);
                            length += used;
                            used = 0;
                            if (buffer.Length < size)
                            {
                                ArrayPool<byte>.Shared.Return(buffer);
                                buffer = ArrayPool<byte>.Shared.Rent(size);
                            }
                        }

                        StateLogFormat.WriteRecord(buffer.AsSpan(used, size), sequence++, type, payload);
                        used += size;
                    }

                    RandomAccess.Write(next, buffer.AsSpan(0, used), length);
                    length += used;
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }

                RenameOver(temporary);
            }
            catch
            {
                next.Dispose();
                throw;
            }

            Unmap();
            _file.Dispose();
            _file = next;
            _length = length;
            _nextSequence = sequence;
            _stagedBytes = 0; // staged changes are part of the live state just written
            _stagedCount = 0;
            if (_mapped)
            {
                TryMapLocked(length);
            }

            _reservedTo = 0; // a new file: nothing of it is reserved yet
            ReserveLocked();
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            Unmap();
        }

        _file.Dispose();
        _directory.Dispose();
    }

    /// <summary>Whether appends go through a mapping (false once the file could not be mapped: appends use write(2)).</summary>
    public bool IsMapped
    {
        get
        {
            lock (_lock) return _mapped;
        }
    }

    /// <summary>
    /// Maps the file with room for at least <paramref name="needed"/> bytes, or, when it cannot (a filesystem without
    /// fallocate, a full disk), goes on with write(2) from here for good: the log keeps its guarantee either way, and
    /// write(2) reports a full disk to the owner as it always did. False in that case.
    /// </summary>
    private bool TryMapLocked(long needed)
    {
        try
        {
            MapLocked(needed);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Unmap();
            _mapped = false;
            return false;
        }
    }

    /// <summary>
    /// Maps the file with room for at least <paramref name="needed"/> bytes (1 MiB, doubling), its blocks allocated
    /// first: an <see cref="IOException"/> on a full disk here, never a SIGBUS on a store into a hole later.
    /// </summary>
    private void MapLocked(long needed)
    {
        long capacity = MapChunk;
        while (capacity < needed)
        {
            capacity *= 2;
        }

        Unmap();
        if (LibC.fallocate((int)_file.DangerousGetHandle(), 0, 0, capacity) != 0)
        {
            throw new IOException($"cannot reserve {capacity} bytes for the state log {Path.Combine(_directoryPath, _name)}: {ErrnoExtensions.LastPInvoke()}");
        }

        _map = MemoryMappedFile.CreateFromFile(_file, null, capacity, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: true);
        _view = _map.CreateViewAccessor(0, capacity, MemoryMappedFileAccess.ReadWrite);
        byte* pointer = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        _mappedBase = pointer + _view.PointerOffset;
        _capacity = capacity;
    }

    private void Unmap()
    {
        if (_view != null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
            _view = null;
        }

        _map?.Dispose();
        _map = null;
        _mappedBase = null;
        _capacity = 0;
    }

    private static void WriteHeader(SafeFileHandle file)
    {
        Span<byte> header = stackalloc byte[StateLogFormat.HeaderSize];
        StateLogFormat.WriteHeader(header);
        RandomAccess.Write(file, header, 0);
    }

    private unsafe void RemoveEntry(string name)
    {
        byte[] path = System.Text.Encoding.UTF8.GetBytes(name + "\0");
        fixed (byte* p = path)
        {
            if (LibC.unlinkat(_directory.Fd, p, 0) != 0 && ErrnoExtensions.LastPInvoke() is Errno error and not Errno.ENOENT)
            {
                throw new IOException($"cannot remove the leftover {Path.Combine(_directoryPath, name)}: {error}");
            }
        }
    }

    private unsafe void RenameOver(string temporary)
    {
        byte[] from = System.Text.Encoding.UTF8.GetBytes(temporary + "\0");
        byte[] to = System.Text.Encoding.UTF8.GetBytes(_name + "\0");
        fixed (byte* f = from)
        fixed (byte* t = to)
        {
            if (LibC.renameat2(_directory.Fd, f, _directory.Fd, t, 0) != 0)
            {
                Errno error = ErrnoExtensions.LastPInvoke();
                throw new IOException($"cannot replace {Path.Combine(_directoryPath, _name)}: {error}");
            }
        }
    }
}

/// <summary>
/// The byte layout of a <see cref="StateLog"/>, little-endian:
/// header (16 bytes) = magic "ISFSSLOG", u32 version (1), u32 CRC-32C of the first 12 bytes;
/// record = u32 payload length, u16 type, u16 zero, u64 sequence, payload, u32 CRC-32C of everything before it in the
/// record. A record is accepted only when its length fits what is left of the file, its padding is zero, its sequence
/// is the next expected one and its CRC matches: a tail cut at any byte, or any one changed byte, ends the replay at
/// that record.
/// </summary>
public static class StateLogFormat
{
    public const int HeaderSize = 16;
    public const int RecordOverhead = 20;
    public const int MaxPayload = 1 << 20;
    private const uint Version = 1;
    private static ReadOnlySpan<byte> Magic => "ISFSSLOG"u8;

    public static int RecordSize(int payloadLength) => RecordOverhead + payloadLength;

    public static void WriteHeader(Span<byte> header)
    {
        Magic.CopyTo(header);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], Version);
        BinaryPrimitives.WriteUInt32LittleEndian(header[12..], Crc32C(header[..12]));
    }

    public static bool IsHeader(ReadOnlySpan<byte> content) =>
        content.Length >= HeaderSize
        && content[..8].SequenceEqual(Magic)
        && BinaryPrimitives.ReadUInt32LittleEndian(content[8..]) == Version
        && BinaryPrimitives.ReadUInt32LittleEndian(content[12..]) == Crc32C(content[..12]);

    public static void WriteRecord(Span<byte> destination, ulong sequence, ushort type, ReadOnlySpan<byte> payload)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)payload.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[4..], type);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[6..], 0);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[8..], sequence);
        payload.CopyTo(destination[16..]);
        int end = 16 + payload.Length;
        BinaryPrimitives.WriteUInt32LittleEndian(destination[end..], Crc32C(destination[..end]));
    }

    /// <summary>
    /// Hands every intact record of <paramref name="content"/> (a whole log, header included) to
    /// <paramref name="handler"/> and returns the length of the intact prefix; <paramref name="nextSequence"/> is the
    /// sequence the next record must carry.
    /// </summary>
    public static long Replay(ReadOnlySpan<byte> content, StateRecordHandler handler, out ulong nextSequence)
    {
        ArgumentNullException.ThrowIfNull(handler);
        nextSequence = 1;
        int offset = HeaderSize;
        while (content.Length - offset >= RecordOverhead)
        {
            ReadOnlySpan<byte> rest = content[offset..];
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(rest);
            if (length > MaxPayload || length > (uint)(rest.Length - RecordOverhead))
            {
                break;
            }

            int end = 16 + (int)length;
            if (BinaryPrimitives.ReadUInt16LittleEndian(rest[6..]) != 0
                || BinaryPrimitives.ReadUInt64LittleEndian(rest[8..]) != nextSequence
                || BinaryPrimitives.ReadUInt32LittleEndian(rest[end..]) != Crc32C(rest[..end]))
            {
                break;
            }

            handler(BinaryPrimitives.ReadUInt16LittleEndian(rest[4..]), rest.Slice(16, (int)length));
            nextSequence++;
            offset += end + 4;
        }

        return offset;
    }

    /// <summary>CRC-32C (Castagnoli), hardware-assisted where the CPU has it; detects every 1- to 3-bit error and burst up to 32 bits.</summary>
    public static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint crc = ~0u;
        while (data.Length >= 8)
        {
            crc = System.Numerics.BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[8..];
        }

        foreach (byte b in data)
        {
            crc = System.Numerics.BitOperations.Crc32C(crc, b);
        }

        return ~crc;
    }
}
