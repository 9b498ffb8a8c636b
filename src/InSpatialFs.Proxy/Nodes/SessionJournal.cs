using System.Buffers.Binary;
using System.Runtime.InteropServices;
using InSpatialFs.Interop;
using InSpatialFs.Interop.Durable;

namespace InSpatialFs.Proxy.Nodes;

/// <summary>
/// What the kernel refers to, kept in a <see cref="StateLog"/> before each reply, so that a server started after this one
/// died (kill -9, OOM) or handed over (upgrade) can take over the live FUSE connection: the node ids the kernel holds
/// (with where each sits in the namespace and which object it is), and the file handles it holds (with what they open).
///
/// Lookup counts are not logged: the kernel sends FORGET with its whole count when it drops an inode, so a restored node
/// leaves at its first FORGET that covers more than the lookups counted since the restore (<see cref="NodeTable"/>).
///
/// The journal also keeps a mirror of the live records, so the log is rewritten from it (compacted) once it has grown to
/// several times the live state: the log's size follows what the kernel holds, not the history of the container.
/// One lock serialises appends, the mirror and rewrites.
///
/// What is written when (each write is one copy into the log's shared mapping, or one write(2) where the log could not
/// be mapped: either way in the page cache at once, holding every record staged before it):
/// <list type="bullet">
/// <item>A request's intent (<see cref="Applied"/>, <see cref="Renaming"/>) and the owner's records are written at once: the change they
/// announce must not reach the backend before them.</item>
/// <item>What a reply tells the kernel or settles with it (<see cref="Entered"/>, <see cref="Moved"/>,
/// <see cref="Opened"/>, <see cref="Released"/>) is staged and written by <see cref="Commit"/>, which the server calls
/// before every reply: a create's node and handle are one write, not two.</item>
/// <item>A forgotten node (<see cref="Left"/>; FORGET has no reply) is staged and written with the next write, or once
/// <see cref="LazyKept"/> are waiting. A kill loses at most that many: the next server then keeps nodes the kernel no
/// longer refers to (a bounded leak; node ids are never handed out twice, and a lookup that finds such a node again
/// simply reuses it). A hand-over writes them (<see cref="Flush"/>).</item>
/// </list>
/// </summary>
internal sealed class SessionJournal : IDisposable
{
    internal const ushort NodeEntered = 1, NodeMoved = 2, NodeLeft = 3, HandleOpened = 4, HandleReleased = 5, RequestApplied = 6, IdFloor = 7,
        RenameBegun = 8;

    /// <summary>Carried-out requests kept across rewrites: only ones in flight when a server dies matter.</summary>
    private const int AppliedKept = 256;

    /// <summary>Record types from here on belong to the journal's owner (the daemon's session parameters).</summary>
    public const ushort FirstOwnerType = 100;

    private const int NodeFixed = 8 + 8 + 4 + 1 + 8 + 8 + 4; // id, parent, mount, flags, device, inode, generation
    private const int HandleSize = 8 + 8 + 4 + 1 + 4;        // fh, node, flags, is-directory, backing id
    private const int RenameFixed = 8 + 8 + 8 + 4 + 8 + 8 + 4 + 4; // unique, from parent, to parent, flags, source device, inode, generation, from-name length

    /// <summary>Forgotten nodes that may wait for the next write (what a kill may leak).</summary>
    internal const int LazyKept = 64;

    /// <summary>
    /// How far past the journaled floor a server that takes over starts its node ids and file handles. Every id reaches
    /// the log before the reply that hands it out, except while the log cannot be written (a full state disk): ids
    /// handed out then are unknown to a successor, which must still never give one of them to another object (the
    /// kernel would send a dead server's node id or fh to a different file). Retried every <see cref="RetryInterval"/>,
    /// such a spell would have to hand out this many before a successor could collide. Ids are st_ino, so the gap is
    /// kept well below 2^32: 256 takeovers before inode numbers need 64 bits.
    /// </summary>
    internal const ulong TakeoverIdGap = 1UL << 24;

    /// <summary>How often, while the log cannot be written, a change tries to write the whole live state again.</summary>
    internal static readonly TimeSpan RetryInterval = TimeSpan.FromSeconds(1);

    private readonly StateLog _log;
    private readonly Lock _lock = new();
    private readonly Dictionary<ulong, byte[]> _nodes = [];
    private readonly Dictionary<ulong, byte[]> _handles = [];
    private readonly List<(ushort Type, byte[] Payload)> _ownerRecords;
    private readonly Queue<(ushort Type, byte[] Payload)> _applied = new(); // RequestApplied or RenameBegun
    private long _appendedSinceRewrite;
    private ulong _highestNode, _highestFh; // ever handed out: a rewrite keeps them, so a successor never reuses one
    private bool _failed;
    private string? _failedBecause;
    private long _retryAtMs;
    private int _replyOwed;   // staged records a reply depends on: Commit writes them (read without the lock)
    private int _lazyStaged;  // staged records nothing depends on

    public SessionJournal(StateLog log, IEnumerable<(ushort Type, byte[] Payload)> ownerRecords)
    {
        _log = log;
        _ownerRecords = [.. ownerRecords];
    }

    /// <summary>Raised when a write fails (disk full): until <see cref="Recovered"/> a restart may not find what the kernel holds.</summary>
    public event Action<Exception>? Failed;

    /// <summary>Raised when a rewrite of the whole live state succeeded after <see cref="Failed"/>: the log is whole again.</summary>
    public event Action? Recovered;

    /// <summary>Why the log cannot be written now, or null.</summary>
    public string? FailedBecause
    {
        get
        {
            lock (_lock)
            {
                return _failed ? _failedBecause ?? "write failed" : null;
            }
        }
    }

    public long Length => _log.Length;

    /// <summary>Ids an earlier server handed out (its replayed floor): never used again, and kept by every rewrite.</summary>
    public void Reserve(ulong highestNode, ulong highestFh)
    {
        lock (_lock)
        {
            _highestNode = Math.Max(_highestNode, highestNode);
            _highestFh = Math.Max(_highestFh, highestFh);
        }
    }

    /// <summary>Whether records of <paramref name="type"/> announce a request's change (kept across rewrites, <see cref="KeepBegun"/>).</summary>
    public static bool IsBegun(ushort type) => type is RequestApplied or RenameBegun;

    /// <summary>
    /// Keeps a predecessor's begun-change records (<see cref="IsBegun"/>), oldest first, as if begun here: the next
    /// rewrite (<see cref="Start"/>) writes them again, so a successor of this server still knows them.
    /// </summary>
    public void KeepBegun(IEnumerable<(ushort Type, byte[] Payload)> records)
    {
        lock (_lock)
        {
            foreach ((ushort type, byte[] payload) in records)
            {
                KeepLocked(type, payload);
            }
        }
    }

    private void KeepLocked(ushort type, byte[] record)
    {
        if (_applied.Count == AppliedKept)
        {
            _applied.Dequeue();
        }

        _applied.Enqueue((type, record));
    }

    /// <summary>Replaces the log with <paramref name="nodes"/> and <paramref name="handles"/> (the proxy's tables at the start).</summary>
    public void Start(IEnumerable<ProxyNode> nodes, IEnumerable<(ulong Fh, ProxyHandle Handle)> handles, Func<ProxyNode, InodeIdentity> identity)
    {
        lock (_lock)
        {
            foreach (ProxyNode node in nodes)
            {
                if (node.NodeId != NodeTable.RootNodeId)
                {
                    _nodes[node.NodeId] = EncodeNode(node, identity(node));
                    _highestNode = Math.Max(_highestNode, node.NodeId);
                }
            }

            foreach ((ulong fh, ProxyHandle handle) in handles)
            {
                _handles[fh] = EncodeHandle(fh, handle);
                _highestFh = Math.Max(_highestFh, fh);
            }

            try
            {
                RewriteLocked();
            }
            catch (IOException e)
            {
                // A server taking over a live mount on a full state disk serves on (the container keeps its filesystem)
                // and writes the log once there is room; dying here would end the mount when the keeper gives up.
                Fail(e);
            }
        }
    }

    /// <summary>Sets the owner's record of <paramref name="type"/> (kept across rewrites) and appends it.</summary>
    public void SetOwnerRecord(ushort type, byte[] payload)
    {
        lock (_lock)
        {
            _ownerRecords.RemoveAll(r => r.Type == type);
            _ownerRecords.Add((type, payload));
            AppendLocked(type, payload);
        }
    }

    public void Entered(ProxyNode node, InodeIdentity identity)
    {
        byte[] record = EncodeNode(node, identity);
        lock (_lock)
        {
            _highestNode = Math.Max(_highestNode, node.NodeId);
            _nodes[node.NodeId] = record;
            StageLocked(NodeEntered, record, replyDepends: true);
        }
    }

    public void Moved(ProxyNode node)
    {
        lock (_lock)
        {
            if (!_nodes.TryGetValue(node.NodeId, out byte[]? entered))
            {
                return;
            }

            // The mirror keeps one NodeEntered per node, brought up to date; the log gets the move.
            byte[] name = ExactNameBytes(node.Name);
            byte[] updated = new byte[NodeFixed + name.Length];
            entered.AsSpan(0, NodeFixed).CopyTo(updated);
            BinaryPrimitives.WriteUInt64LittleEndian(updated.AsSpan(8), node.Parent?.NodeId ?? 0);
            name.CopyTo(updated.AsSpan(NodeFixed));
            _nodes[node.NodeId] = updated;
            Span<byte> move = stackalloc byte[16 + name.Length];
            BinaryPrimitives.WriteUInt64LittleEndian(move, node.NodeId);
            BinaryPrimitives.WriteUInt64LittleEndian(move[8..], node.Parent?.NodeId ?? 0);
            name.CopyTo(move[16..]);
            StageLocked(NodeMoved, move, replyDepends: true);
        }
    }

    public void Left(ulong nodeId)
    {
        Span<byte> record = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(record, nodeId);
        lock (_lock)
        {
            if (_nodes.Remove(nodeId))
            {
                StageLocked(NodeLeft, record, replyDepends: false);
            }
        }
    }

    /// <summary>
    /// Request <paramref name="unique"/> is about to change the tree (a create, remove or rename): a server that takes
    /// over after this one died before the reply treats the resent request as possibly carried out already.
    /// <paramref name="nodeId"/> is reserved (0): the successor needs only the unique.
    /// </summary>
    public void Applied(ulong unique, ulong nodeId)
    {
        byte[] record = new byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(record, unique);
        BinaryPrimitives.WriteUInt64LittleEndian(record.AsSpan(8), nodeId);
        Begin(RequestApplied, record);
    }

    /// <summary>
    /// Rename <paramref name="unique"/> is about to move (<paramref name="fromParent"/>, <paramref name="fromName"/>) to
    /// (<paramref name="toParent"/>, <paramref name="toName"/>). Besides what <see cref="Applied"/> tells, it lets a
    /// successor find a node the dead server moved but had not yet journaled as moved (it died between the rename and the
    /// reply): that node is no longer at its journaled name, and the kernel, once the resent rename is answered, moves
    /// its dentry to the new name with the same node id. <paramref name="source"/> is the object at the source name (for an
    /// exchange, where both names exist before and after, it tells whether the swap was carried out; else none).
    /// </summary>
    public void Renaming(ulong unique, ulong fromParent, string fromName, ulong toParent, string toName, uint flags, InodeIdentity source)
    {
        byte[] from = ExactNameBytes(fromName), to = ExactNameBytes(toName);
        byte[] record = new byte[RenameFixed + from.Length + to.Length];
        Span<byte> s = record;
        BinaryPrimitives.WriteUInt64LittleEndian(s, unique);
        BinaryPrimitives.WriteUInt64LittleEndian(s[8..], fromParent);
        BinaryPrimitives.WriteUInt64LittleEndian(s[16..], toParent);
        BinaryPrimitives.WriteUInt32LittleEndian(s[24..], flags);
        BinaryPrimitives.WriteUInt64LittleEndian(s[28..], source.Device);
        BinaryPrimitives.WriteUInt64LittleEndian(s[36..], source.Inode);
        BinaryPrimitives.WriteUInt32LittleEndian(s[44..], source.Generation);
        BinaryPrimitives.WriteInt32LittleEndian(s[48..], from.Length);
        from.CopyTo(s[RenameFixed..]);
        to.CopyTo(s[(RenameFixed + from.Length)..]);
        Begin(RenameBegun, record);
    }

    private void Begin(ushort type, byte[] record)
    {
        lock (_lock)
        {
            KeepLocked(type, record);
            AppendLocked(type, record);
        }
    }

    public void Opened(ulong fh, ProxyHandle handle)
    {
        byte[] record = EncodeHandle(fh, handle);
        lock (_lock)
        {
            _highestFh = Math.Max(_highestFh, fh);
            _handles[fh] = record;
            StageLocked(HandleOpened, record, replyDepends: true);
        }
    }

    public void Released(ulong fh)
    {
        Span<byte> record = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(record, fh);
        lock (_lock)
        {
            if (_handles.Remove(fh))
            {
                // Owed before RELEASE's reply: a successor that restored a released passthrough handle would hand its
                // closed (perhaps reused) backing id to the next open of the file.
                StageLocked(HandleReleased, record, replyDepends: true);
            }
        }
    }

    /// <summary>Writes the staged records a reply depends on (and any others with them); the server calls it before every reply.</summary>
    public void Commit()
    {
        if (Volatile.Read(ref _replyOwed) == 0)
        {
            return;
        }

        lock (_lock)
        {
            // _replyOwed is cleared only after the write: a racing reply either waits here or finds its record written.
            WriteStagedLocked();
        }
    }

    /// <summary>Writes every staged record (a hand-over, shutdown).</summary>
    public void Flush()
    {
        lock (_lock)
        {
            WriteStagedLocked();
        }
    }

    private void StageLocked(ushort type, ReadOnlySpan<byte> payload, bool replyDepends)
    {
        if (_failed)
        {
            TryRecoverLocked(); // the mirror already holds this change: a rewrite writes it
            return;
        }

        _log.Stage(type, payload);
        if (replyDepends)
        {
            _replyOwed++;
        }
        else if (++_lazyStaged >= LazyKept)
        {
            WriteStagedLocked();
            return;
        }

        CompactIfDue(1);
    }

    /// <summary>Writes a record now, with every record staged before it (one write).</summary>
    private void AppendLocked(ushort type, ReadOnlySpan<byte> payload)
    {
        if (_failed)
        {
            TryRecoverLocked(); // the record is already among those a rewrite writes (owner records, begun changes)
            return;
        }

        try
        {
            _log.Append(type, payload);
        }
        catch (IOException e)
        {
            Fail(e);
            return;
        }

        NothingStaged();
        CompactIfDue(1);
    }

    private void WriteStagedLocked()
    {
        if (_failed)
        {
            return;
        }

        try
        {
            _log.WriteStaged();
        }
        catch (IOException e)
        {
            Fail(e);
            return;
        }

        NothingStaged();
        CompactIfDue(0); // the staged records were counted as they were staged
    }

    private void NothingStaged()
    {
        Volatile.Write(ref _replyOwed, 0);
        _lazyStaged = 0;
    }

    private void Fail(IOException e)
    {
        _failed = true;
        _failedBecause = e.Message;
        _retryAtMs = Environment.TickCount64 + (long)RetryInterval.TotalMilliseconds;
        Volatile.Write(ref _replyOwed, 0);
        Failed?.Invoke(e);
    }

    /// <summary>While failed, at most once per <see cref="RetryInterval"/>: writes the whole live state (the mirror) again.</summary>
    private void TryRecoverLocked()
    {
        long now = Environment.TickCount64;
        if (now < _retryAtMs)
        {
            return;
        }

        _retryAtMs = now + (long)RetryInterval.TotalMilliseconds;
        try
        {
            RewriteLocked();
        }
        catch (IOException e)
        {
            _failedBecause = e.Message;
            return;
        }

        _failed = false;
        _failedBecause = null;
        NothingStaged();
        Recovered?.Invoke();
    }

    /// <summary>Counts <paramref name="records"/> more and compacts once the history is several times the live state (never for a few records).</summary>
    private void CompactIfDue(int records)
    {
        _appendedSinceRewrite += records;
        if (_appendedSinceRewrite > 4096 + 2L * (_nodes.Count + _handles.Count))
        {
            try
            {
                RewriteLocked(); // the live state, staged changes included: what was staged is dropped, not owed
                NothingStaged();
            }
            catch (IOException e)
            {
                Fail(e);
            }
        }
    }

    private void RewriteLocked()
    {
        var records = new List<(ushort, byte[])>(_ownerRecords.Count + _nodes.Count + _handles.Count);
        records.AddRange(_ownerRecords);
        // A released fh may come back in a resent RELEASE (the dead server carried it out, the reply was lost): it must
        // not name a new server's handle. So the highest ids ever used survive the compaction that drops their records.
        byte[] floor = new byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(floor, _highestNode);
        BinaryPrimitives.WriteUInt64LittleEndian(floor.AsSpan(8), _highestFh);
        records.Add((IdFloor, floor));
        records.AddRange(_nodes.Values.Select(n => (NodeEntered, n)));
        records.AddRange(_handles.Values.Select(h => (HandleOpened, h)));
        records.AddRange(_applied);
        _log.Rewrite(records);
        _appendedSinceRewrite = 0;
    }

    private static byte[] EncodeNode(ProxyNode node, InodeIdentity identity)
    {
        byte[] name = ExactNameBytes(node.Name);
        byte[] record = new byte[NodeFixed + name.Length];
        Span<byte> s = record;
        BinaryPrimitives.WriteUInt64LittleEndian(s, node.NodeId);
        BinaryPrimitives.WriteUInt64LittleEndian(s[8..], node.Parent?.NodeId ?? 0);
        BinaryPrimitives.WriteInt32LittleEndian(s[16..], node.Mount);
        s[20] = (byte)(node.IsMountRoot ? 1 : 0);
        BinaryPrimitives.WriteUInt64LittleEndian(s[21..], identity.Device);
        BinaryPrimitives.WriteUInt64LittleEndian(s[29..], identity.Inode);
        BinaryPrimitives.WriteUInt32LittleEndian(s[37..], identity.Generation);
        name.CopyTo(s[NodeFixed..]);
        return record;
    }

    private static byte[] EncodeHandle(ulong fh, ProxyHandle handle)
    {
        byte[] record = new byte[HandleSize];
        Span<byte> s = record;
        BinaryPrimitives.WriteUInt64LittleEndian(s, fh);
        BinaryPrimitives.WriteUInt64LittleEndian(s[8..], handle.Node.NodeId);
        BinaryPrimitives.WriteInt32LittleEndian(s[16..], handle.Flags);
        s[20] = (byte)(handle.IsDirectory ? 1 : 0);
        BinaryPrimitives.WriteInt32LittleEndian(s[21..], handle.BackingId);
        return record;
    }

    /// <summary>Names are kept as the proxy's strings (UTF-16, lossless: <see cref="Security.Policy.ExactNames"/>).</summary>
    private static byte[] ExactNameBytes(string name) => MemoryMarshal.AsBytes(name.AsSpan()).ToArray();

    public void Dispose()
    {
        Flush();
        _log.Dispose();
    }

    // ---- replay ---------------------------------------------------------------------------------------

    /// <summary>A node as the log last described it.</summary>
    internal readonly record struct NodeRecord(ulong NodeId, ulong ParentId, int Mount, bool IsMountRoot, InodeIdentity Identity, string Name);

    /// <summary>A rename begun (<see cref="Renaming"/>), in its parents' node ids and the proxy's names.</summary>
    internal readonly record struct RenameRecord(ulong Unique, ulong FromParent, string FromName, ulong ToParent, string ToName, uint Flags, InodeIdentity Source);

    /// <summary>An open handle as the log describes it.</summary>
    internal readonly record struct HandleRecord(ulong Fh, ulong NodeId, int Flags, bool IsDirectory, int BackingId);

    /// <summary>
    /// Folds a log's records into the live state they describe. Records the journal does not know (owner types) go to
    /// <paramref name="owner"/>; a record too short for its type is an error in the log's writer, reported, not guessed at.
    /// </summary>
    internal sealed class Replayed
    {
        public Dictionary<ulong, NodeRecord> Nodes { get; } = [];

        public Dictionary<ulong, HandleRecord> Handles { get; } = [];

        /// <summary>Requests begun: their changes may be carried out (unique without the resend bit → 0, reserved).</summary>
        public Dictionary<ulong, ulong> Applied { get; } = [];

        /// <summary>Renames begun, oldest first (also in <see cref="Applied"/>).</summary>
        public List<RenameRecord> Renames { get; } = [];

        public ulong HighestNodeId { get; private set; }

        public ulong HighestFh { get; private set; }

        public int Malformed { get; private set; }

        public void Apply(ushort type, ReadOnlySpan<byte> p)
        {
            switch (type)
            {
                case NodeEntered when p.Length >= NodeFixed:
                    {
                        ulong id = BinaryPrimitives.ReadUInt64LittleEndian(p);
                        Nodes[id] = new NodeRecord(id, BinaryPrimitives.ReadUInt64LittleEndian(p[8..]), BinaryPrimitives.ReadInt32LittleEndian(p[16..]), p[20] == 1,
                            new InodeIdentity(BinaryPrimitives.ReadUInt64LittleEndian(p[21..]), BinaryPrimitives.ReadUInt64LittleEndian(p[29..]),
                                BinaryPrimitives.ReadUInt32LittleEndian(p[37..]), Persistent: true),
                            NameOf(p[NodeFixed..]));
                        HighestNodeId = Math.Max(HighestNodeId, id);
                        break;
                    }

                case NodeMoved when p.Length >= 16:
                    {
                        ulong id = BinaryPrimitives.ReadUInt64LittleEndian(p);
                        if (Nodes.TryGetValue(id, out NodeRecord n))
                        {
                            Nodes[id] = n with { ParentId = BinaryPrimitives.ReadUInt64LittleEndian(p[8..]), Name = NameOf(p[16..]) };
                        }

                        break;
                    }

                case NodeLeft when p.Length >= 8:
                    Nodes.Remove(BinaryPrimitives.ReadUInt64LittleEndian(p));
                    break;
                case HandleOpened when p.Length >= HandleSize:
                    {
                        ulong fh = BinaryPrimitives.ReadUInt64LittleEndian(p);
                        Handles[fh] = new HandleRecord(fh, BinaryPrimitives.ReadUInt64LittleEndian(p[8..]), BinaryPrimitives.ReadInt32LittleEndian(p[16..]),
                            p[20] == 1, BinaryPrimitives.ReadInt32LittleEndian(p[21..]));
                        HighestFh = Math.Max(HighestFh, fh);
                        break;
                    }

                case RequestApplied when p.Length >= 16:
                    Applied[BinaryPrimitives.ReadUInt64LittleEndian(p)] = BinaryPrimitives.ReadUInt64LittleEndian(p[8..]);
                    break;
                case RenameBegun when p.Length >= RenameFixed
                    && BinaryPrimitives.ReadInt32LittleEndian(p[48..]) is int fromLength && fromLength >= 0 && fromLength <= p.Length - RenameFixed:
                    {
                        ulong unique = BinaryPrimitives.ReadUInt64LittleEndian(p);
                        Applied[unique] = 0;
                        var source = new InodeIdentity(BinaryPrimitives.ReadUInt64LittleEndian(p[28..]), BinaryPrimitives.ReadUInt64LittleEndian(p[36..]),
                            BinaryPrimitives.ReadUInt32LittleEndian(p[44..]), Persistent: true);
                        Renames.Add(new RenameRecord(unique, BinaryPrimitives.ReadUInt64LittleEndian(p[8..]), NameOf(p.Slice(RenameFixed, fromLength)),
                            BinaryPrimitives.ReadUInt64LittleEndian(p[16..]), NameOf(p[(RenameFixed + fromLength)..]), BinaryPrimitives.ReadUInt32LittleEndian(p[24..]), source));
                        break;
                    }

                case IdFloor when p.Length >= 16:
                    HighestNodeId = Math.Max(HighestNodeId, BinaryPrimitives.ReadUInt64LittleEndian(p));
                    HighestFh = Math.Max(HighestFh, BinaryPrimitives.ReadUInt64LittleEndian(p[8..]));
                    break;
                case HandleReleased when p.Length >= 8:
                    Handles.Remove(BinaryPrimitives.ReadUInt64LittleEndian(p));
                    break;
                case NodeEntered or NodeMoved or NodeLeft or HandleOpened or HandleReleased or RequestApplied or IdFloor or RenameBegun:
                    Malformed++;
                    break;
            }
        }

        private static string NameOf(ReadOnlySpan<byte> bytes) =>
            bytes.Length % 2 == 0 ? new string(MemoryMarshal.Cast<byte, char>(bytes)) : "";
    }
}
