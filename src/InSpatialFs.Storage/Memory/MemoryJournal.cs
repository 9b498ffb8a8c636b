using System.Buffers;
using System.Buffers.Binary;
using InSpatialFs.Interop;
using InSpatialFs.Interop.Durable;

namespace InSpatialFs.Storage.Memory;

/// <summary>
/// The metadata of a kept <see cref="MemoryFileSystem"/> (names, modes, owners, times, symlink targets, xattrs), in a
/// <see cref="StateLog"/>, so that a server started after this one died can rebuild the tree; the file data itself is in
/// the private tmpfs, whose descriptor the keeper holds. Every change under the namespace write lock becomes one record
/// (one write(2)) before the lock is let go, so before the reply: a kill at any instant leaves each operation wholly in
/// the log or not at all. Records are batches of items, upserts by key, so a replay applies them in order and a rewrite
/// (the whole live tree) replaces any history. Called under the namespace write lock only.
/// </summary>
internal sealed class MemoryJournal : IDisposable
{
    internal const ushort BatchRecord = 1;
    internal const byte NodeItem = 1, EntryItem = 2, EntryGoneItem = 3, NodeGoneItem = 4, FloorItem = 5;

    /// <summary>A rewrite splits the tree into records of about this size (a record may hold up to 1 MiB).</summary>
    private const int RewriteChunk = 256 * 1024;

    /// <summary>
    /// Blocks kept allocated past the log's end. A change's record is far smaller than a quarter of it, so the disk filling
    /// up shows while records still fit (<see cref="StateLog.ReserveRunsOut"/>): the change whose record took the
    /// reserve's end is in the log like every other, and the changes after it are refused before they are made.
    /// </summary>
    private const long Reserve = 256 * 1024;

    private readonly StateLog _log;
    private bool _reserveOnly; // failed for want of a reserve only: what is left of it still takes records
    private readonly ArrayBufferWriter<byte> _batch = new();
    private long _appendedSinceRewrite;

    private MemoryJournal(StateLog log) => _log = log;

    /// <summary>Raised once when an append fails (disk full): from then on a restart may not find the tree as it is.</summary>
    public event Action<Exception>? Failed;

    public bool HasFailed { get; private set; }

    /// <summary>Why the last append or rewrite failed, while <see cref="HasFailed"/>.</summary>
    public string? FailedBecause { get; private set; }

    public long Length => _log.Length;

    /// <summary>Records appended since the last rewrite (the caller rewrites when this outgrows the live tree).</summary>
    public long AppendedSinceRewrite => _appendedSinceRewrite;

    /// <summary>True when the batch under way has items.</summary>
    public bool HasPending => _batch.WrittenCount > 0;

    /// <summary>Opens <paramref name="name"/> in <paramref name="stateDirectory"/>, handing every intact record's payload to <paramref name="replay"/>.</summary>
    public static MemoryJournal Open(string stateDirectory, string name, Replayed? replay)
    {
        StateLog log = StateLog.Open(stateDirectory, name, (type, payload) =>
        {
            if (type == BatchRecord)
            {
                replay?.Apply(payload);
            }
        }, reserveAhead: Reserve);
        return new MemoryJournal(log);
    }

    public void Node(MemoryNode node) => WriteNode(_batch, node);

    public void Entry(ulong parent, DirectoryEntry entry) => WriteEntry(_batch, parent, entry);

    public void EntryGone(ulong parent, ReadOnlySpan<byte> name)
    {
        Span<byte> head = _batch.GetSpan(11);
        head[0] = EntryGoneItem;
        BinaryPrimitives.WriteUInt64LittleEndian(head[1..], parent);
        BinaryPrimitives.WriteUInt16LittleEndian(head[9..], (ushort)name.Length);
        _batch.Advance(11);
        _batch.Write(name);
    }

    public void NodeGone(ulong id)
    {
        Span<byte> item = _batch.GetSpan(9);
        item[0] = NodeGoneItem;
        BinaryPrimitives.WriteUInt64LittleEndian(item[1..], id);
        _batch.Advance(9);
    }

    /// <summary>Appends the batch under way as one record; false (and <see cref="Failed"/> once) when the write fails.</summary>
    public bool Commit()
    {
        if (_batch.WrittenCount == 0)
        {
            return true;
        }

        try
        {
            // Counted even while failed: the owner's next rewrite (a whole snapshot) is what recovers from a failure.
            _appendedSinceRewrite++;
            // Failed only for want of a reserve, the log still takes records: a change begun before the failure (a
            // capability dropped after its write) is journaled, and only changes begun after it are refused.
            if (!HasFailed || _reserveOnly)
            {
                _log.Append(BatchRecord, _batch.WrittenSpan);
                FailIfReserveRunsOut();
            }
        }
        catch (IOException e)
        {
            _reserveOnly = false;
            FailedBecause = e.Message;
            if (!HasFailed)
            {
                HasFailed = true;
                Failed?.Invoke(e);
            }
        }
        finally
        {
            _batch.ResetWrittenCount();
        }

        return !HasFailed;
    }

    /// <summary>Replaces the log with <paramref name="nodes"/> (every live node; directories with their entries) and the id floor.</summary>
    public void Rewrite(IEnumerable<MemoryNode> nodes, ulong nextId, ulong device)
    {
        _batch.ResetWrittenCount();
        var records = new List<(ushort, byte[])>();
        var chunk = new ArrayBufferWriter<byte>();
        WriteFloor(chunk, nextId, device);
        foreach (MemoryNode node in nodes)
        {
            WriteNode(chunk, node);
            if (node.Directory is { } dir)
            {
                foreach (DirectoryEntry entry in dir.After(0))
                {
                    WriteEntry(chunk, node.Id, entry);
                    if (chunk.WrittenCount >= RewriteChunk)
                    {
                        records.Add((BatchRecord, chunk.WrittenSpan.ToArray()));
                        chunk.ResetWrittenCount();
                    }
                }
            }

            if (chunk.WrittenCount >= RewriteChunk)
            {
                records.Add((BatchRecord, chunk.WrittenSpan.ToArray()));
                chunk.ResetWrittenCount();
            }
        }

        if (chunk.WrittenCount > 0)
        {
            records.Add((BatchRecord, chunk.WrittenSpan.ToArray()));
        }

        try
        {
            _log.Rewrite(records);
            _appendedSinceRewrite = 0;
            if (_log.ReserveRunsOut)
            {
                FailIfReserveRunsOut(); // written whole, with no room for what comes next: still failed
                return;
            }

            HasFailed = false;
            _reserveOnly = false;
            FailedBecause = null;
        }
        catch (IOException e)
        {
            FailedBecause = e.Message;
            if (!HasFailed)
            {
                HasFailed = true;
                Failed?.Invoke(e);
            }
        }
    }

    /// <summary>The disk has no room left to reserve: failed from here on (the records so far are all in).</summary>
    private void FailIfReserveRunsOut()
    {
        if (!_log.ReserveRunsOut)
        {
            return;
        }

        FailedBecause = $"no room left in the state directory to reserve {Reserve / 1024} KiB ahead of the journal";
        if (!HasFailed)
        {
            HasFailed = true;
            _reserveOnly = true;
            Failed?.Invoke(new IOException(FailedBecause));
        }
    }

    public void Dispose() => _log.Dispose();

    private static void WriteFloor(IBufferWriter<byte> w, ulong nextId, ulong device)
    {
        Span<byte> item = w.GetSpan(17);
        item[0] = FloorItem;
        BinaryPrimitives.WriteUInt64LittleEndian(item[1..], nextId);
        BinaryPrimitives.WriteUInt64LittleEndian(item[9..], device);
        w.Advance(17);
    }

    private static void WriteEntry(IBufferWriter<byte> w, ulong parent, DirectoryEntry entry)
    {
        Span<byte> head = w.GetSpan(27);
        head[0] = EntryItem;
        BinaryPrimitives.WriteUInt64LittleEndian(head[1..], parent);
        BinaryPrimitives.WriteInt64LittleEndian(head[9..], entry.Cookie);
        BinaryPrimitives.WriteUInt64LittleEndian(head[17..], entry.Node.Id);
        BinaryPrimitives.WriteUInt16LittleEndian(head[25..], (ushort)entry.Name.Length);
        w.Advance(27);
        w.Write(entry.Name);
    }

    private const int NodeFixed = 1 + 8 + 4 * 4 + 1 + (8 + 4) * 3 + 8 + 4 + 4;

    private static void WriteNode(IBufferWriter<byte> w, MemoryNode node)
    {
        Span<byte> s = w.GetSpan(NodeFixed);
        s[0] = NodeItem;
        BinaryPrimitives.WriteUInt64LittleEndian(s[1..], node.Id);
        BinaryPrimitives.WriteUInt32LittleEndian(s[9..], node.Mode);
        BinaryPrimitives.WriteUInt32LittleEndian(s[13..], node.Uid);
        BinaryPrimitives.WriteUInt32LittleEndian(s[17..], node.Gid);
        BinaryPrimitives.WriteUInt32LittleEndian(s[21..], node.Rdev);
        s[25] = (byte)(node.Linkable ? 1 : 0);
        int at = 26;
        foreach (Timestamp t in (ReadOnlySpan<Timestamp>)[node.Atime, node.Mtime, node.Ctime])
        {
            BinaryPrimitives.WriteInt64LittleEndian(s[at..], t.Seconds);
            BinaryPrimitives.WriteUInt32LittleEndian(s[(at + 8)..], t.Nanoseconds);
            at += 12;
        }

        BinaryPrimitives.WriteInt64LittleEndian(s[at..], node.ChargedBytes);
        BinaryPrimitives.WriteInt32LittleEndian(s[(at + 8)..], node.SymlinkTarget?.Length ?? -1);
        List<KeyValuePair<byte[], byte[]>>? xattrs = node.Xattrs;
        BinaryPrimitives.WriteInt32LittleEndian(s[(at + 12)..], xattrs?.Count ?? 0);
        w.Advance(NodeFixed);
        if (node.SymlinkTarget is { } target)
        {
            w.Write(target);
        }

        if (xattrs != null)
        {
            foreach ((byte[] key, byte[] value) in xattrs)
            {
                Span<byte> lengths = w.GetSpan(8);
                BinaryPrimitives.WriteInt32LittleEndian(lengths, key.Length);
                BinaryPrimitives.WriteInt32LittleEndian(lengths[4..], value.Length);
                w.Advance(8);
                w.Write(key);
                w.Write(value);
            }
        }
    }

    /// <summary>One node as the log last described it.</summary>
    internal sealed record NodeState(
        ulong Id, uint Mode, uint Uid, uint Gid, uint Rdev, bool Linkable, Timestamp Atime, Timestamp Mtime, Timestamp Ctime,
        long ChargedBytes, byte[]? SymlinkTarget, List<KeyValuePair<byte[], byte[]>>? Xattrs);

    /// <summary>One name as the log last described it.</summary>
    internal readonly record struct EntryState(ulong Parent, long Cookie, ulong Child, byte[] Name);

    /// <summary>The tree a log describes: its items applied in order (later ones win).</summary>
    internal sealed class Replayed
    {
        public Dictionary<ulong, NodeState> Nodes { get; } = [];

        /// <summary>(directory, name as hex) → the entry.</summary>
        public Dictionary<(ulong Parent, string Name), EntryState> Entries { get; } = [];

        public ulong NextId { get; private set; }

        public ulong? Device { get; private set; }

        /// <summary>
        /// The tree of a volume whose log holds none: the root and /lost+found with one file per data file, named by
        /// its id (root's, 0600, times now). Ids are the data files' own, so their bytes stay theirs.
        /// </summary>
        public static Replayed Orphans(IReadOnlyCollection<ulong> dataIds, ulong device)
        {
            var tree = new Replayed { Device = device };
            Timestamp now = Timestamp.Now();
            ulong lostFound = dataIds.Count == 0 ? MemoryFileSystem.RootId + 1 : Math.Max(dataIds.Max(), MemoryFileSystem.RootId) + 1;
            tree.NextId = lostFound;
            tree.Nodes[MemoryFileSystem.RootId] = new NodeState(MemoryFileSystem.RootId, LibC.S_IFDIR | 0x1ED, 0, 0, 0, false, now, now, now, MemoryFileSystem.NodeOverheadBytes, null, null);
            tree.Nodes[lostFound] = new NodeState(lostFound, LibC.S_IFDIR | 0x1C0, 0, 0, 0, false, now, now, now, MemoryFileSystem.NodeOverheadBytes, null, null);
            tree.Entries[(MemoryFileSystem.RootId, "lost+found")] = new EntryState(MemoryFileSystem.RootId, MemoryDirectory.FirstEntryCookie, lostFound, "lost+found"u8.ToArray());
            long cookie = MemoryDirectory.FirstEntryCookie - 1;
            foreach (ulong id in dataIds.Order())
            {
                tree.Nodes[id] = new NodeState(id, LibC.S_IFREG | 0x180, 0, 0, 0, true, now, now, now, MemoryFileSystem.NodeOverheadBytes, null, null);
                byte[] name = System.Text.Encoding.ASCII.GetBytes(id.ToString(System.Globalization.CultureInfo.InvariantCulture));
                tree.Entries[(lostFound, Convert.ToHexString(name))] = new EntryState(lostFound, ++cookie, id, name);
            }

            return tree;
        }

        /// <summary>Applies one record's items. A record passed its checksum, so an item that does not parse is refused (another format).</summary>
        public void Apply(ReadOnlySpan<byte> p)
        {
            while (!p.IsEmpty)
            {
                byte kind = p[0];
                switch (kind)
                {
                    case NodeItem:
                        p = ReadNode(p);
                        break;
                    case EntryItem:
                    {
                        Need(p, 27);
                        ulong parent = BinaryPrimitives.ReadUInt64LittleEndian(p[1..]);
                        long cookie = BinaryPrimitives.ReadInt64LittleEndian(p[9..]);
                        ulong child = BinaryPrimitives.ReadUInt64LittleEndian(p[17..]);
                        int length = BinaryPrimitives.ReadUInt16LittleEndian(p[25..]);
                        Need(p, 27 + length);
                        byte[] name = p.Slice(27, length).ToArray();
                        Entries[(parent, Convert.ToHexString(name))] = new EntryState(parent, cookie, child, name);
                        NextId = Math.Max(NextId, child);
                        p = p[(27 + length)..];
                        break;
                    }
                    case EntryGoneItem:
                    {
                        Need(p, 11);
                        ulong parent = BinaryPrimitives.ReadUInt64LittleEndian(p[1..]);
                        int length = BinaryPrimitives.ReadUInt16LittleEndian(p[9..]);
                        Need(p, 11 + length);
                        Entries.Remove((parent, Convert.ToHexString(p.Slice(11, length))));
                        p = p[(11 + length)..];
                        break;
                    }
                    case NodeGoneItem:
                        Need(p, 9);
                        Nodes.Remove(BinaryPrimitives.ReadUInt64LittleEndian(p[1..]));
                        p = p[9..];
                        break;
                    case FloorItem:
                        Need(p, 17);
                        NextId = Math.Max(NextId, BinaryPrimitives.ReadUInt64LittleEndian(p[1..]));
                        Device = BinaryPrimitives.ReadUInt64LittleEndian(p[9..]);
                        p = p[17..];
                        break;
                    default:
                        throw new InvalidDataException($"memory journal: unknown item {kind}");
                }
            }
        }

        private ReadOnlySpan<byte> ReadNode(ReadOnlySpan<byte> p)
        {
            Need(p, NodeFixed);
            ulong id = BinaryPrimitives.ReadUInt64LittleEndian(p[1..]);
            var times = new Timestamp[3];
            int at = 26;
            for (int i = 0; i < 3; i++, at += 12)
            {
                times[i] = new Timestamp(BinaryPrimitives.ReadInt64LittleEndian(p[at..]), BinaryPrimitives.ReadUInt32LittleEndian(p[(at + 8)..]));
            }

            long charged = BinaryPrimitives.ReadInt64LittleEndian(p[at..]);
            int targetLength = BinaryPrimitives.ReadInt32LittleEndian(p[(at + 8)..]);
            int xattrCount = BinaryPrimitives.ReadInt32LittleEndian(p[(at + 12)..]);
            if (targetLength < -1 || xattrCount < 0)
            {
                throw new InvalidDataException("memory journal: a node item with a negative length");
            }

            int pos = NodeFixed;
            byte[]? target = null;
            if (targetLength >= 0)
            {
                Need(p, pos + targetLength);
                target = p.Slice(pos, targetLength).ToArray();
                pos += targetLength;
            }

            List<KeyValuePair<byte[], byte[]>>? xattrs = xattrCount == 0 ? null : new(Math.Min(xattrCount, 64));
            for (int i = 0; i < xattrCount; i++)
            {
                Need(p, pos + 8);
                int keyLength = BinaryPrimitives.ReadInt32LittleEndian(p[pos..]);
                int valueLength = BinaryPrimitives.ReadInt32LittleEndian(p[(pos + 4)..]);
                if (keyLength < 0 || valueLength < 0)
                {
                    throw new InvalidDataException("memory journal: an xattr with a negative length");
                }

                pos += 8;
                Need(p, pos + keyLength + valueLength);
                xattrs!.Add(new(p.Slice(pos, keyLength).ToArray(), p.Slice(pos + keyLength, valueLength).ToArray()));
                pos += keyLength + valueLength;
            }

            Nodes[id] = new NodeState(
                id, BinaryPrimitives.ReadUInt32LittleEndian(p[9..]), BinaryPrimitives.ReadUInt32LittleEndian(p[13..]),
                BinaryPrimitives.ReadUInt32LittleEndian(p[17..]), BinaryPrimitives.ReadUInt32LittleEndian(p[21..]), p[25] != 0,
                times[0], times[1], times[2], charged, target, xattrs);
            NextId = Math.Max(NextId, id);
            return p[pos..];
        }

        private static void Need(ReadOnlySpan<byte> p, int length)
        {
            if (p.Length < length)
            {
                throw new InvalidDataException("memory journal: an item runs past its record");
            }
        }
    }
}
