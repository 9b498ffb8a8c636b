using InSpatialFs.Interop;
using InSpatialFs.Interop.Durable;
using InSpatialFs.Storage.Posix;

namespace InSpatialFs.Storage.Memory;

/// <summary>
/// What a successor found of a kept memory filesystem. <paramref name="TreeLost"/>: the journal held no tree (its names
/// were lost with it), so the <paramref name="LostAndFound"/> data files are in /lost+found. <paramref name="DamagedJournalSetAside"/>:
/// the name a damaged journal was kept under (its tree is then lost as well).
/// </summary>
public sealed record MemoryRestoreReport(int Nodes, int DroppedNodes, int RecreatedDataFiles, int RemovedDataFiles, bool TreeLost = false, int LostAndFound = 0,
    string? DamagedJournalSetAside = null);

// Kept across a restart of the server: the file data is in the private tmpfs, whose descriptor the keeper holds
// (DuplicateDataVolume), and the metadata in a journal (MemoryJournal) written before each write lock is let go, so
// before the reply. A successor adopts both (Adopt). Nodes with no name (open but unlinked, O_TMPFILE) are not carried
// over: the proxy cannot find them again by name either, so their handles answer ESTALE after a restart.
public sealed partial class MemoryFileSystem
{
    private MemoryJournal? _journal;
    private readonly List<MemoryNode> _dirty = [];
    private readonly List<ulong> _freedData = [];

    /// <summary>Null when this filesystem can be kept across a server restart; else why not.</summary>
    public string? KeepRefusal => _volume is null
        ? $"its file data is in the server's own memory (the kernel refused a private tmpfs: {KernelDataError})"
        : null;

    /// <summary>Bytes in the metadata journal (0 when not kept).</summary>
    public long JournalBytes => _journal?.Length ?? 0;

    /// <summary>Why the journal cannot be written now (its disk is full), or null: see <see cref="RefusedWhileUnjournaled"/>.</summary>
    public string? JournalFailure => _journal is { HasFailed: true } journal ? journal.FailedBecause ?? "write failed" : null;

    /// <summary>How often a refused change tries to write the whole tree again while the journal cannot be written.</summary>
    internal static readonly TimeSpan JournalRetryInterval = TimeSpan.FromSeconds(1);

    private long _journalRetryAtMs;
    private Action? _journalRecovered;

    /// <summary>A new descriptor of the private tmpfs holding the file data, for the keeper (null without one).</summary>
    public SafeFd? DuplicateDataVolume() => _volume?.DuplicateRoot();

    /// <summary>
    /// Journals the tree from now on, in <paramref name="name"/> in <paramref name="stateDirectory"/>, starting from the
    /// whole tree as it is. <paramref name="failed"/> is told when an append fails (changes a restart would lose are then
    /// refused, see <see cref="RefusedWhileUnjournaled"/>), <paramref name="recovered"/> when the journal is whole again.
    /// </summary>
    public void StartJournal(string stateDirectory, string name, Action<Exception>? failed = null, Action? recovered = null)
    {
        if (KeepRefusal is string why)
        {
            throw new InvalidOperationException("cannot keep this memory filesystem: " + why);
        }

        MemoryJournal journal = MemoryJournal.Open(stateDirectory, name, replay: null);
        Attach(journal, failed, recovered);
    }

    /// <summary>
    /// The memory filesystem an earlier server kept: its tmpfs (<paramref name="dataVolume"/>, owned from here on) and its
    /// journal. Nodes without a name are dropped, data files no node claims are removed, a named file whose data file is
    /// missing gets an empty one (reported). Throws <see cref="InvalidDataException"/> when the journal holds no tree.
    /// </summary>
    public static MemoryFileSystem Adopt(SafeFd dataVolume, string stateDirectory, string name, long sizeLimit, long inodeLimit,
        out MemoryRestoreReport report, Action<Exception>? failed = null, Action? recovered = null, bool orphansIfNoTree = false)
    {
        var replayed = new MemoryJournal.Replayed();
        MemoryJournal journal;
        string? setAside = null;
        try
        {
            journal = MemoryJournal.Open(stateDirectory, name, replayed);
        }
        catch (InvalidDataException) when (orphansIfNoTree)
        {
            // Not a journal (a damaged header or record): kept for a post-mortem, and the tree is lost as without one.
            setAside = StateLog.SetAside(stateDirectory, name);
            replayed = new MemoryJournal.Replayed();
            journal = MemoryJournal.Open(stateDirectory, name, replayed);
        }

        var fs = new MemoryFileSystem(sizeLimit, inodeLimit, kernelData: false);
        try
        {
            fs._volume = DataVolume.Adopt(dataVolume, sizeLimit);
            fs.KernelDataError = Errno.OK;
            if (replayed.Device is not ulong device || !replayed.Nodes.ContainsKey(RootId))
            {
                if (!orphansIfNoTree)
                {
                    throw new InvalidDataException($"the memory journal {name} in {stateDirectory} holds no tree");
                }

                // The names are gone (the state directory was removed, the log emptied), the bytes are not: every data
                // file becomes /lost+found/ID, and the journal starts again from that tree.
                List<ulong> orphans = fs._volume.Ids();
                replayed = MemoryJournal.Replayed.Orphans(orphans, fs._device);
                report = fs.Rebuild(replayed, fs._device) with { TreeLost = true, LostAndFound = orphans.Count, DamagedJournalSetAside = setAside };
                fs.Attach(journal, failed, recovered);
                return fs;
            }

            report = fs.Rebuild(replayed, device);
            fs.Attach(journal, failed, recovered);
            return fs;
        }
        catch
        {
            journal.Dispose();
            fs.Dispose();
            throw;
        }
    }

    private void Attach(MemoryJournal journal, Action<Exception>? failed, Action? recovered)
    {
        _journalRecovered = recovered;
        if (failed != null)
        {
            journal.Failed += failed;
        }

        _namespace.EnterWriteLock();
        try
        {
            journal.Rewrite(_nodes.Values, _nextId, _device);
            _journal = journal;
        }
        finally
        {
            _namespace.ExitWriteLock();
        }
    }

    private MemoryRestoreReport Rebuild(MemoryJournal.Replayed replayed, ulong device)
    {
        _device = device;
        var made = new Dictionary<ulong, MemoryNode>(replayed.Nodes.Count);
        foreach (MemoryJournal.NodeState s in replayed.Nodes.Values)
        {
            MemoryNode node = s.Id == RootId ? _root : new MemoryNode(s.Id, s.Mode, s.Uid, s.Gid);
            node.Mode = s.Mode;
            node.Uid = s.Uid;
            node.Gid = s.Gid;
            node.Rdev = s.Rdev;
            (node.Atime, node.Mtime, node.Ctime) = (s.Atime, s.Mtime, s.Ctime);
            node.ChargedBytes = s.ChargedBytes;
            node.SymlinkTarget = s.SymlinkTarget;
            node.Xattrs = s.Xattrs;
            node.Nlink = node.IsDirectory ? 2u : 0u;
            if (node.IsDirectory)
            {
                node.Directory = new MemoryDirectory(node);
            }
            else if (node.IsRegular)
            {
                node.Data = new KernelFile(_volume!, node.Id);
            }

            made[s.Id] = node;
        }

        // The tree from the root down: a node no name reaches is not carried over, and a directory keeps its first name.
        ILookup<ulong, MemoryJournal.EntryState> children = replayed.Entries.Values.ToLookup(e => e.Parent);
        var reached = new Dictionary<ulong, MemoryNode> { [RootId] = _root };
        var pending = new Queue<MemoryNode>([_root]);
        long entryBytes = 0;
        while (pending.TryDequeue(out MemoryNode? dir))
        {
            foreach ((_, long cookie, ulong childId, byte[] name) in children[dir.Id].OrderBy(e => e.Cookie))
            {
                if (!made.TryGetValue(childId, out MemoryNode? child) || child == _root
                    || (child.IsDirectory && reached.ContainsKey(childId)) || dir.Directory!.Find(name) is not null)
                {
                    continue;
                }

                dir.Directory!.AddRestored(name, child, cookie);
                entryBytes += EntryBytes(name);
                if (child.IsDirectory)
                {
                    child.Directory!.Parent = dir;
                    dir.Nlink++;
                    pending.Enqueue(child);
                }
                else
                {
                    child.Nlink++;
                }

                reached[childId] = child;
            }
        }

        _nodes.Clear();
        int recreated = 0;
        long charged = 0;
        foreach (MemoryNode node in reached.Values)
        {
            _nodes.Add(node.Id, node);
            charged += node.ChargedBytes;
            if (node.Data is { } data && data.Stat(out _) == Errno.ENOENT && _volume!.Create(node.Id) == Errno.OK)
            {
                recreated++; // the data file went and the journal did not say so: an empty file, not a missing one
            }
        }

        int removed = _volume!.RemoveUnclaimed(id => _nodes.TryGetValue(id, out MemoryNode? n) && n.IsRegular);
        _usedBytes = charged + entryBytes;
        _nextId = Math.Max(replayed.NextId, _nodes.Keys.Max());
        return new MemoryRestoreReport(_nodes.Count, made.Count + (made.ContainsKey(RootId) ? 0 : 1) - _nodes.Count, recreated, removed);
    }

    /// <summary>Namespace write lock held: the node's state goes into the batch committed when the lock is let go.</summary>
    private void Dirty(MemoryNode node)
    {
        if (_journal != null && !_dirty.Contains(node))
        {
            _dirty.Add(node);
        }
    }

    private void JournalEntry(MemoryNode dir, DirectoryEntry entry) => _journal?.Entry(dir.Id, entry);

    private void JournalEntryGone(MemoryNode dir, ReadOnlySpan<byte> name) => _journal?.EntryGone(dir.Id, name);

    private void JournalGone(MemoryNode node)
    {
        if (_journal is { } journal)
        {
            journal.NodeGone(node.Id);
            _dirty.Remove(node);
        }
    }

    /// <summary>A freed node's data file: removed now, or (kept) once the journal says the node is gone.</summary>
    private void ForgetData(ulong id)
    {
        if (_journal != null)
        {
            _freedData.Add(id);
        }
        else
        {
            _volume!.Remove(id);
        }
    }

    /// <summary>
    /// Namespace write lock held, before a change a successor must find (a name, a link, a mode or owner, an xattr).
    /// While the journal cannot be written (the state disk is full), such a change would be acknowledged and then be
    /// missing after a restart (a created file gone, a removed one back, a chmod undone), so it gets ENOSPC instead, as a
    /// full disk gives. At most once per <see cref="JournalRetryInterval"/> a refused change first tries to write the
    /// whole tree again; once that succeeds the journal is whole and changes go through. The change whose own record
    /// first failed was already made and is served; file data (in the private tmpfs) is not refused.
    /// </summary>
    private Errno RefusedWhileUnjournaled()
    {
        if (_journal is not { HasFailed: true } journal)
        {
            return Errno.OK;
        }

        long now = Environment.TickCount64;
        if (now < _journalRetryAtMs)
        {
            return Errno.ENOSPC;
        }

        _journalRetryAtMs = now + (long)JournalRetryInterval.TotalMilliseconds;
        journal.Rewrite(_nodes.Values, _nextId, _device);
        if (journal.HasFailed)
        {
            return Errno.ENOSPC;
        }

        _journalRecovered?.Invoke();
        return Errno.OK;
    }

    /// <summary>
    /// Namespace write lock held, before a write, truncate or chown of <paramref name="node"/>: each drops its
    /// security.capability (as the kernel does), a metadata change a successor must find. Made while the journal cannot
    /// be written, a restart would give the changed file its capability back; so it is refused as the other such changes.
    /// </summary>
    private Errno RefusedIfItDropsCapability(MemoryNode node) =>
        node.Xattrs is not null && FindXattr(node, XattrName.Capability) >= 0 ? RefusedWhileUnjournaled() : Errno.OK;

    /// <summary>No lock held: <see cref="RefusedIfItDropsCapability"/> for a write through <paramref name="open"/>, before any byte moves.</summary>
    private Errno RefusedIfWriteDropsCapability(OpenFile open)
    {
        if (_journal is not { HasFailed: true })
        {
            return Errno.OK; // read without the lock: a journal failing after this is still written to (its reserve)
        }

        _namespace.EnterWriteLock();
        try
        {
            return GetFileHandle(open, out var handle) == Errno.OK ? RefusedIfItDropsCapability(handle.Node) : Errno.OK;
        }
        finally
        {
            EndWrite();
        }
    }

    /// <summary>Lets go of the namespace write lock, first committing what changed under it as one journal record.</summary>
    private void EndWrite()
    {
        if (_journal is { } journal && (_dirty.Count > 0 || journal.HasPending || _freedData.Count > 0))
        {
            CommitLocked(journal);
        }

        _namespace.ExitWriteLock();
    }

    private void CommitLocked(MemoryJournal journal)
    {
        foreach (MemoryNode node in _dirty)
        {
            journal.Node(node);
        }

        _dirty.Clear();
        journal.Commit();
        foreach (ulong id in _freedData)
        {
            _volume!.Remove(id); // after the journal: a successor never finds a node whose data was removed
        }

        _freedData.Clear();
        if (journal.AppendedSinceRewrite > 4096 + (2L * _nodes.Count))
        {
            journal.Rewrite(_nodes.Values, _nextId, _device);
        }
    }
}
