using InSpatialFs.Fuse;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Interop.Durable;
using InSpatialFs.Proxy.Direct;
using InSpatialFs.Proxy.Nodes;
using InSpatialFs.Security.Policy;
using InSpatialFs.Storage;
using InSpatialFs.Storage.Memory;
using InSpatialFs.Storage.Mounts;
using InSpatialFs.Storage.Overlay;

namespace InSpatialFs.Proxy;

/// <summary>What a server found of its predecessor's state when it took over a live connection.</summary>
public sealed record RestartReport
{
    /// <summary>Node ids found again (same object at the same name).</summary>
    public int Nodes { get; init; }

    /// <summary>Node ids whose object could not be found again: the kernel's requests on them get ENOENT.</summary>
    public int StaleNodes { get; init; }

    public int Handles { get; init; }

    /// <summary>Handles whose file could not be opened again (an unlinked file): their I/O gets ESTALE.</summary>
    public int StaleHandles { get; init; }

    /// <summary>Tree changes the previous server had begun, of which a resent one is answered as carried out.</summary>
    public int BegunChanges { get; init; }

    /// <summary>The newest of them (the request's unique), for the log.</summary>
    public ulong LastBegun { get; init; }

    /// <summary>Records of the journal's owner (type ≥ <see cref="SecureProxy.FirstOwnerRecord"/>), in log order.</summary>
    public IReadOnlyList<(ushort Type, byte[] Payload)> OwnerRecords { get; init; } = [];

    /// <summary>Bytes of a torn tail cut off the log (a write the dead server did not finish: its request is resent).</summary>
    public long DiscardedTailBytes { get; init; }

    /// <summary>The name a damaged journal was kept under when the takeover went on without it (null: it was whole).</summary>
    public string? DamagedJournalSetAside { get; init; }
}

/// <summary>
/// Restart underneath a live mount: the proxy's node and handle tables are journaled before each reply
/// (<see cref="SessionJournal"/>), and a new server rebuilds them from that journal before it serves the connection
/// it adopts. Node ids are found again by name under their parents and accepted only when the object there is the one
/// journaled (device, inode, file-handle hash): a name the host changed meanwhile never lends an old id to another file.
/// Handles are reopened (without O_CREAT, O_EXCL, O_TRUNC: the create and the truncation already happened). Host and
/// overlay mounts are found again this way (an overlay's copy also by its origin mark: <see cref="Refind"/>), memory
/// mounts from their own journal; <see cref="RestartRefusal"/> says why an instance cannot restart.
/// </summary>
public sealed partial class SecureProxy
{
    /// <summary>The journal's file in the state directory.</summary>
    public const string JournalFile = "session.log";

    /// <summary>Record types from here on are the daemon's (the connection's INIT parameters).</summary>
    public const ushort FirstOwnerRecord = SessionJournal.FirstOwnerType;

    private SessionJournal? _journal;
    private Dictionary<ulong, ulong> _applied = []; // from the previous server's journal; read-only once serving
    private Dictionary<ulong, SessionJournal.RenameRecord> _renamesBegun = []; // likewise, by unique
    private readonly Dictionary<ulong, (int BackingId, int Opens)> _restoredBacking = [];

    /// <summary>Null when every mount can be found again after a restart; else why not (a memory mount that cannot be kept).</summary>
    public string? RestartRefusal()
    {
        foreach (MountEntry m in _mounts)
        {
            if (m.Backend is MemoryFileSystem memory && memory.KeepRefusal is string why)
            {
                return $"the memory mount at {m.Path} cannot be kept: {why}";
            }

            if (m.Kind is not (MountKind.Host or MountKind.Direct or MountKind.Memory or MountKind.Overlay))
            {
                return $"the {m.Kind.ToString().ToLowerInvariant()} mount at {m.Path} cannot be rebuilt by a new server (its nodes live only in this process)";
            }
        }

        return null;
    }

    /// <summary>Bytes in the journal now (status).</summary>
    public long JournalBytes => _journal?.Length ?? 0;

    /// <summary>Why the session journal cannot be written now (its disk is full), or null (status).</summary>
    public string? JournalFailure => _journal?.FailedBecause;

    /// <summary>
    /// Opens the journal in <paramref name="stateDirectory"/>; with <paramref name="restore"/> first rebuilds the tables
    /// from it (an adopted connection), else starts it empty. From then on every node and handle the kernel gets is
    /// journaled before the reply. Call once, before serving.
    /// </summary>
    public RestartReport OpenJournal(string stateDirectory, bool restore, SessionMemo? memo = null)
    {
        var replayed = new SessionJournal.Replayed();
        List<(ushort, byte[])> owner = [], begun = [];
        void Replay(ushort type, ReadOnlySpan<byte> payload)
        {
            if (type >= FirstOwnerRecord)
            {
                owner.Add((type, payload.ToArray()));
            }
            else if (restore)
            {
                replayed.Apply(type, payload);
                if (SessionJournal.IsBegun(type))
                {
                    begun.Add((type, payload.ToArray()));
                }
            }
        }

        string? damaged = null;
        StateLog log;
        try
        {
            log = StateLog.Open(stateDirectory, JournalFile, mapped: true, replay: Replay);
        }
        catch (InvalidDataException e) when (restore && memo?.Parameters(0) is { Length: > 0 })
        {
            // A takeover of a live mount whose journal is not one (a damaged header): the memo kept what the connection
            // needs, so the container keeps its mount (its nodes answer ESTALE until looked up anew, as without a
            // journal) instead of every successor failing until the keeper gives up and the mount is aborted.
            damaged = StateLog.SetAside(stateDirectory, JournalFile);
            Log.JournalSetAside(_logger, e.Message, damaged);
            (replayed, owner, begun) = (new SessionJournal.Replayed(), [], []); // nothing read from it is trusted
            log = StateLog.Open(stateDirectory, JournalFile, mapped: true, replay: Replay);
        }

        if (!log.IsMapped)
        {
            Log.JournalUnmapped(_logger, stateDirectory);
        }

        // Above every id a predecessor handed out: the memo's ceiling where it kept one (exact, whatever the journal
        // missed); else past the journal's floor by the gap (ids handed out while the journal could not be written).
        (ulong nodeFloor, ulong fhFloor) = memo is { NodeCeiling: > 0 } m
            ? (Math.Max(m.NodeCeiling, replayed.HighestNodeId), Math.Max(m.FhCeiling, replayed.HighestFh))
            : (replayed.HighestNodeId + SessionJournal.TakeoverIdGap, replayed.HighestFh + SessionJournal.TakeoverIdGap);
        RestartReport report = restore ? Restore(replayed, nodeFloor, fhFloor) : new RestartReport();
        var journal = new SessionJournal(log, restore ? owner : []);
        if (restore)
        {
            journal.Reserve(nodeFloor, fhFloor);
            journal.KeepBegun(begun); // a request resent to this server and not yet answered is resent again if it dies too
        }

        journal.Failed += e => Log.JournalFailed(_logger, e.Message);
        journal.Recovered += () => Log.JournalRecovered(_logger);
        journal.Start(_nodes.Snapshot(), _handles.Snapshot(), JournaledIdentityOf);
        _nodes.Journal(journal, JournaledIdentityOf);
        _handles.Journal(journal);
        if (memo != null)
        {
            _nodes.ReserveIn(memo);
            _handles.ReserveIn(memo);
        }

        _journal = journal;
        return report with { OwnerRecords = owner, DiscardedTailBytes = log.DiscardedTailBytes, DamagedJournalSetAside = damaged };
    }

    /// <summary>Node ids and handles a reply is about to give the kernel reach the journal first (one write per request).</summary>
    public void BeforeReply() => _journal?.Commit();

    /// <summary>Writes what the journal holds back (forgotten nodes): before a hand-over.</summary>
    public void FlushJournal() => _journal?.Flush();

    /// <summary>Adds the daemon's own records (kept across compactions), e.g. the INIT parameters once negotiated.</summary>
    public void JournalOwnerRecord(ushort type, byte[] payload)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(type, FirstOwnerRecord);
        _journal?.SetOwnerRecord(type, payload);
    }

    private RestartReport Restore(SessionJournal.Replayed journal, ulong nodeFloor, ulong fhFloor)
    {
        var found = new Dictionary<ulong, ProxyNode?> { [NodeTable.RootNodeId] = _nodes.Root };
        foreach (ulong id in journal.Nodes.Keys)
        {
            Resolve(id, journal, found);
        }

        _nodes.ReserveIdsThrough(nodeFloor);
        _applied = journal.Applied;
        foreach (SessionJournal.RenameRecord m in journal.Renames)
        {
            _renamesBegun[m.Unique] = m; // a unique is journaled once (a resumed rename keeps its first record)
        }
        int nodes = found.Count(p => p.Value != null) - 1;
        int handles = 0, staleHandles = 0;
        foreach (SessionJournal.HandleRecord h in journal.Handles.Values)
        {
            if (RestoreHandle(h))
            {
                handles++;
            }
            else
            {
                staleHandles++;
            }
        }

        _handles.ReserveThrough(fhFloor);
        return new RestartReport
        {
            Nodes = nodes, StaleNodes = journal.Nodes.Count - nodes, Handles = handles, StaleHandles = staleHandles,
            BegunChanges = _applied.Count, LastBegun = _applied.Count == 0 ? 0 : _applied.Keys.Max(),
        };
    }

    /// <summary>
    /// Finds journaled node <paramref name="id"/> again, and its ancestors first. Iterative (a container chooses the depth):
    /// walks up to the nearest ancestor already settled, then down, one backend lookup per level.
    /// </summary>
    private ProxyNode? Resolve(ulong id, SessionJournal.Replayed journal, Dictionary<ulong, ProxyNode?> found)
    {
        var chain = new List<SessionJournal.NodeRecord>();
        ulong at = id;
        ProxyNode? parent = null;
        while (true)
        {
            if (found.TryGetValue(at, out parent))
            {
                break;
            }

            if (!journal.Nodes.TryGetValue(at, out SessionJournal.NodeRecord record) || chain.Count > journal.Nodes.Count)
            {
                parent = null; // an ancestor the journal does not have (or a cycle it cannot hold): nothing below is found
                break;
            }

            chain.Add(record);
            at = record.ParentId;
        }

        for (int i = chain.Count - 1; i >= 0; i--)
        {
            SessionJournal.NodeRecord r = chain[i];
            ProxyNode? node = parent == null ? null : Refind(parent, r);
            found[r.NodeId] = node; // settled before a detour through a rename, which may walk back up to it
            node ??= RefindMoved(r, journal, found);
            found[r.NodeId] = node;
            parent = node;
        }

        return parent;
    }

    /// <summary>
    /// A node not at its journaled name may have been moved by a rename the previous server carried out but died before
    /// answering: the move of the node was to be journaled with the reply, so the journal still has the old name. The
    /// kernel will resend the rename and, once it is answered, move its dentry to the new name with this node id; so the
    /// node is looked for at the other end of each rename begun from (or, for an exchange, to) its name, newest first,
    /// and accepted there only as the very object journaled (<see cref="Refind"/>).
    /// </summary>
    private ProxyNode? RefindMoved(SessionJournal.NodeRecord r, SessionJournal.Replayed journal, Dictionary<ulong, ProxyNode?> found)
    {
        for (int i = journal.Renames.Count - 1; i >= 0; i--)
        {
            SessionJournal.RenameRecord m = journal.Renames[i];
            (ulong parentId, string name) = m.FromParent == r.ParentId && m.FromName == r.Name ? (m.ToParent, m.ToName)
                : (m.Flags & LibC.RENAME_EXCHANGE) != 0 && m.ToParent == r.ParentId && m.ToName == r.Name ? (m.FromParent, m.FromName)
                : (0UL, "");
            if (parentId == 0 || r.IsMountRoot || Resolve(parentId, journal, found) is not ProxyNode parent)
            {
                continue;
            }

            if (Refind(parent, r with { ParentId = parentId, Name = name }) is ProxyNode moved)
            {
                Log.RefoundMoved(_logger, r.NodeId, name);
                return moved;
            }
        }

        return null;
    }

    private ProxyNode? Refind(ProxyNode parent, SessionJournal.NodeRecord r)
    {
        if (r.Mount < 0 || r.Mount >= _mounts.Length)
        {
            return null;
        }

        IFileSystemBackend backend = _mounts[r.Mount].Backend;
        ulong ino;
        if (r.IsMountRoot)
        {
            ino = backend.RootIno;
        }
        else
        {
            if (r.Mount != parent.Mount || CheckName(ExactNames.Encode(r.Name)) != Errno.OK
                || backend.Lookup(parent.Ino, ExactNames.Encode(r.Name), out FuseAttr attr) != Errno.OK)
            {
                return null;
            }

            if (!IsSameObject(backend.IdentityOf(attr.Ino), r.Identity)
                && !(backend is OverlayFileSystem overlay && overlay.IsCopyOf(attr.Ino, r.Identity)))
            {
                return null; // another file has the name now (not the copy an overlay made of the journaled one)
            }

            ino = attr.Ino;
        }

        return _nodes.Restore(r.NodeId, r.Mount, ino, parent, r.Name, r.IsMountRoot, out ProxyNode node) ? node : null;
    }

    private bool RestoreHandle(SessionJournal.HandleRecord h)
    {
        if (!_nodes.TryGet(h.NodeId, out ProxyNode node))
        {
            return false; // its RELEASE gets EBADF, which the kernel ignores
        }

        IFileSystemBackend backend = BackendOf(node);
        if (h.IsDirectory)
        {
            if (backend.OpenDir(node.Ino, out IOpenDirectory directory) != Errno.OK)
            {
                return false;
            }

            _handles.Restore(h.Fh, new ProxyHandle(node, directory, h.Flags) { ReadsDecidedAt = -1 });
            return true;
        }

        // The create, the exclusivity check and the truncation happened when the file was first opened.
        int flags = h.Flags & ~(LibC.O_CREAT | LibC.O_EXCL | LibC.O_TRUNC);
        bool reopened = backend.Open(node.Ino, flags, new Caller(0, 0, 0), out IOpenFile file) == Errno.OK;
        // Decided by an earlier server, perhaps under an earlier config: the first READ here is decided again.
        var handle = new ProxyHandle(node, reopened ? file : StaleOpenFile.Instance, h.Flags) { ReadsDecidedAt = -1 };
        if (h.BackingId > 0)
        {
            // The kernel still has the backing file: its reads and writes never come here. Count the open so that the
            // last RELEASE closes the backing id and later opens of the node join passthrough.
            handle.BackingId = h.BackingId;
            node.PassthroughOpens++;
            if ((h.Flags & LibC.O_ACCMODE) != LibC.O_RDONLY)
            {
                handle.CountedPassthroughWriter = true;
                node.PassthroughWriters++;
            }

            _restoredBacking[PassthroughKey(node)] = (h.BackingId, _restoredBacking.TryGetValue(PassthroughKey(node), out var seen) ? seen.Opens + 1 : 1);
        }
        else if (OffersPassthrough(_mounts[node.Mount]))
        {
            handle.CountedCached = true;
            node.CachedOpens++;
        }

        Interlocked.Increment(ref node.OpenFiles);
        _handles.Restore(h.Fh, handle);
        return reopened;
    }

    /// <summary>
    /// Journals, before a request changes the tree (create, link, remove, rename), that it is about to: a server that
    /// takes over after this one died before the reply knows the resent request may already be carried out. True when
    /// <paramref name="request"/> is such a resent request (the previous server journaled it).
    /// </summary>
    private bool NoteIntent(FuseRequest request)
    {
        ulong unique = request.Unique & ~FuseConstants.UniqueResend;
        _journal?.Applied(unique, 0);
        return IsResumed(request.Unique);
    }

    /// <summary>
    /// <see cref="NoteIntent"/> for a rename, with the move it makes (see <see cref="RefindMoved"/>) and, for an exchange,
    /// the object at the source name (see <see cref="ExchangeCarriedOut"/>).
    /// </summary>
    private bool NoteRename(FuseRequest request, ProxyNode fromDir, string fromName, ProxyNode toDir, string toName, uint flags, InodeIdentity source)
    {
        ulong unique = request.Unique & ~FuseConstants.UniqueResend;
        if (IsResumed(request.Unique) && _renamesBegun.ContainsKey(unique))
        {
            // The first server's record is carried in this journal already (KeepBegun) and must stand: taken now, after
            // that server's exchange, the source would be the other object, and a successor would swap the names back.
            return true;
        }

        _journal?.Renaming(unique, fromDir.NodeId, fromName, toDir.NodeId, toName, flags, source);
        return IsResumed(request.Unique);
    }

    /// <summary>
    /// A resumed exchange finds both names in place whether or not the previous server swapped them; swapping again would
    /// undo it. It was carried out when the target name now holds the object the source name held when it began.
    /// </summary>
    private bool ExchangeCarriedOut(FuseRequest request, ProxyNode toDir, ReadOnlySpan<byte> newName)
    {
        if (!_renamesBegun.TryGetValue(request.Unique & ~FuseConstants.UniqueResend, out SessionJournal.RenameRecord begun)
            || begun.Source.IsNone || !IsSameObject(IdentityAt(toDir, newName), begun.Source))
        {
            return false;
        }

        Log.ReplayedApplied(_logger, "its names are swapped already");
        return true;
    }

    /// <summary>The object at <paramref name="name"/> in <paramref name="dir"/>, or none.</summary>
    private InodeIdentity IdentityAt(ProxyNode dir, ReadOnlySpan<byte> name)
    {
        IFileSystemBackend backend = BackendOf(dir);
        return backend.Lookup(dir.Ino, name, out FuseAttr attr) == Errno.OK ? backend.IdentityOf(attr.Ino) : default;
    }

    private static bool IsSameObject(in InodeIdentity a, in InodeIdentity b) =>
        !a.IsNone && a.Device == b.Device && a.Inode == b.Inode && a.Generation == b.Generation;

    private bool IsResumed(ulong unique) =>
        (unique & FuseConstants.UniqueResend) != 0 && _applied.ContainsKey(unique & ~FuseConstants.UniqueResend);

    /// <summary>
    /// A resumed removal or rename that finds its source gone was carried out by the previous server (it died between
    /// the change and the reply): success, as the first attempt answered. Any other result stands.
    /// </summary>
    private Errno ResumedRemoval(bool resumed, Errno result)
    {
        if (!resumed || result != Errno.ENOENT)
        {
            return result;
        }

        Log.ReplayedApplied(_logger, "its source is gone");
        return Errno.OK;
    }

    /// <summary>A resumed create that finds its name taken: the previous server made it; the entry is the node there now.</summary>
    private Errno ResumedCreate(bool resumed, Errno result, ProxyNode dir, ReadOnlySpan<byte> name, ref FuseAttr attr)
    {
        if (!resumed || result != Errno.EEXIST || BackendOf(dir).Lookup(dir.Ino, name, out FuseAttr made) != Errno.OK)
        {
            return result;
        }

        Log.ReplayedApplied(_logger, "its name exists");
        attr = made;
        return Errno.OK;
    }

    /// <summary>The backing ids the kernel still holds for restored passthrough opens (seeded into the new table).</summary>
    private void AdoptRestoredBacking(BackingFileTable table)
    {
        foreach ((ulong key, (int id, int opens)) in _restoredBacking)
        {
            table.Adopt(key, id, opens);
        }

        _restoredBacking.Clear();
    }

    /// <summary>A handle whose file a restarted server could not open again (its last name went while it was open).</summary>
    private sealed class StaleOpenFile : IOpenFile
    {
        public static readonly StaleOpenFile Instance = new();

        public FopenFlags OpenFlags => FopenFlags.None;

        public Errno Read(long offset, Span<byte> buffer, out int bytesRead)
        {
            bytesRead = 0;
            return Errno.ESTALE;
        }

        public Errno Write(long offset, ReadOnlySpan<byte> data, out int bytesWritten)
        {
            bytesWritten = 0;
            return Errno.ESTALE;
        }

        public Errno Flush() => Errno.OK; // close(2) of such a file succeeds, as it would have

        public Errno Fsync(bool dataOnly) => Errno.ESTALE;

        public Errno Fallocate(int mode, long offset, long length) => Errno.ESTALE;

        public Errno Lseek(long offset, int whence, out long result)
        {
            result = 0;
            return Errno.ESTALE;
        }

        public SafeFd? DuplicatePassthroughFd() => null;

        public Errno Release() => Errno.OK;
    }
}
