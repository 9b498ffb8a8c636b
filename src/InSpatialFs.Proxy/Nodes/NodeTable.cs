using System.Collections.Concurrent;
using InSpatialFs.Storage;

namespace InSpatialFs.Proxy.Nodes;

/// <summary>
/// nodeid ⇄ node, with the kernel's lookup counts: the only ledger of them. A backend is told only when a node enters
/// the table (<see cref="IFileSystemBackend.Retain"/>, once) and when it leaves it (<see cref="IFileSystemBackend.Release"/>,
/// once); mount roots are neither (a backend's root never goes). Reads (every request) are lock-free through a concurrent
/// dictionary; count transitions (LOOKUP adds, FORGET drops) take one lock, and the backend is told under it, so a
/// release and a retain of the same node never cross. Node ids are never reused, so generation numbers stay 0.
///
/// Lock order: NodeTable._gate > backend locks (backends never call the proxy).
/// </summary>
internal sealed class NodeTable
{
    public const ulong RootNodeId = 1;

    private readonly ConcurrentDictionary<ulong, ProxyNode> _byId = new();
    private readonly Dictionary<(int Mount, ulong Ino), ProxyNode> _byBackendNode = [];
    private readonly IFileSystemBackend[] _backends; // by mount index
    private readonly Lock _gate = new();
    private ulong _nextId = RootNodeId + 1;
    private SessionMemo? _memo;
    private ulong _ceiling; // ids below it are reserved in the memo
    private long _renameEpoch;
    private SessionJournal? _journal;

    public NodeTable(IFileSystemBackend[] backends, int rootMount, ulong rootIno)
    {
        _backends = backends;
        Root = new ProxyNode(RootNodeId, rootMount, rootIno, parent: null, name: "") { IsMountRoot = true, LookupCount = 1 };
        _byId[RootNodeId] = Root;
        _byBackendNode[(rootMount, rootIno)] = Root;
    }

    public ProxyNode Root { get; }

    /// <summary>
    /// From now on every node entering, moving and leaving is logged before the caller replies (a restart's state).
    /// Set once, before serving; the journal's first rewrite is made from the table as it is then.
    /// </summary>
    public void Journal(SessionJournal journal, Func<ProxyNode, Interop.InodeIdentity> identity)
    {
        lock (_gate)
        {
            _identity = identity;
            _journal = journal;
        }
    }

    private Func<ProxyNode, Interop.InodeIdentity> _identity = static _ => default;

    /// <summary>Nodes the kernel currently holds (root included): the leak check after find + drop_caches.</summary>
    public int Count => _byId.Count;

    public long RenameEpoch => Volatile.Read(ref _renameEpoch);

    /// <summary>The nodes the kernel holds now (a moment's copy: nodes may come and go while it is used).</summary>
    public ProxyNode[] Snapshot() => [.. _byId.Values];

    public bool TryGet(ulong nodeId, out ProxyNode node) => _byId.TryGetValue(nodeId, out node!);

    public string PathOf(ProxyNode node) => node.PathAt(RenameEpoch);

    /// <summary>
    /// Records one kernel lookup of backend node (mount, ino) reached as <paramref name="name"/> in
    /// <paramref name="parent"/>, returning the node (existing or new). A node new to the table is retained in its
    /// backend; null when the backend dropped it since the lookup returned it (look it up again).
    /// </summary>
    public ProxyNode? AddLookup(int mount, ulong ino, ProxyNode parent, string name, bool isMountRoot = false) =>
        Add(mount, ino, parent, name, isMountRoot, keepIfGone: false);

    /// <summary>
    /// As <see cref="AddLookup"/> for the entry of a node just made (mkdir, create, link...): the kernel gets it even when
    /// a concurrent removal already dropped it in the backend; its later requests then fail there as on a deleted inode.
    /// </summary>
    public ProxyNode AddEntry(int mount, ulong ino, ProxyNode parent, string name) =>
        Add(mount, ino, parent, name, isMountRoot: false, keepIfGone: true)!;

    private ProxyNode? Add(int mount, ulong ino, ProxyNode parent, string name, bool isMountRoot, bool keepIfGone)
    {
        lock (_gate)
        {
            if (_byBackendNode.TryGetValue((mount, ino), out ProxyNode? node))
            {
                node.LookupCount++;
                if (node.Parent != null && (!ReferenceEquals(node.Parent, parent) || node.Name != name))
                {
                    // A hard link or a rename we did not see (host changes): follow the newest name.
                    node.MoveTo(parent, name);
                    _renameEpoch++;
                    _journal?.Moved(node);
                }

                return node;
            }

            if (!isMountRoot && !_backends[mount].Retain(ino) && !keepIfGone)
            {
                return null;
            }

            if (_memo != null && _nextId >= _ceiling)
            {
                _ceiling = _nextId + SessionMemo.Block;
                _memo.RaiseNodeCeiling(_ceiling); // before the id is used: a successor starts above it
            }

            node = new ProxyNode(_nextId++, mount, ino, parent, name) { LookupCount = 1, IsMountRoot = isMountRoot };
            _byBackendNode[(mount, ino)] = node;
            _byId[node.NodeId] = node;
            _journal?.Entered(node, _identity(node));
            return node;
        }
    }

    /// <summary>Drops <paramref name="count"/> kernel lookups; returns true when the node left the table.</summary>
    public bool Forget(ulong nodeId, ulong count, out ProxyNode? forgotten)
    {
        forgotten = null;
        if (nodeId == RootNodeId)
        {
            return false;
        }

        lock (_gate)
        {
            if (!_byId.TryGetValue(nodeId, out ProxyNode? node))
            {
                return false;
            }

            forgotten = node;
            if (node.Restored)
            {
                // The kernel's count from before the restart is unknown; it forgets an inode with its whole count, so a
                // FORGET of more than the lookups answered since the restart is the last one. (A FORGET of fewer is the
                // kernel undoing a reply it could not use, and the node stays.)
                if (count <= node.LookupCount)
                {
                    node.LookupCount -= count;
                    return false;
                }

                node.LookupCount = 0;
            }
            else
            {
                node.LookupCount = count >= node.LookupCount ? 0 : node.LookupCount - count;
                if (node.LookupCount != 0)
                {
                    return false;
                }
            }

            _byId.TryRemove(nodeId, out _);
            _byBackendNode.Remove((node.Mount, node.Ino));
            if (!node.IsMountRoot)
            {
                _backends[node.Mount].Release(node.Ino);
            }

            _journal?.Left(nodeId);
            return true;
        }
    }

    /// <summary>A rename moved <paramref name="node"/>: every cached descendant path is now stale.</summary>
    public void Moved(ProxyNode node, ProxyNode newParent, string newName)
    {
        lock (_gate)
        {
            node.MoveTo(newParent, newName);
            _renameEpoch++;
            _journal?.Moved(node);
        }
    }

    /// <summary>
    /// Puts back a node a previous server handed to the kernel (a restart): same node id, found again in its backend as
    /// (mount, ino), which is retained as for a new node. The kernel's lookup count is not known (see <see cref="Forget"/>).
    /// False when the backend node is in the table already under another id (two journaled ids for one object).
    /// </summary>
    public bool Restore(ulong nodeId, int mount, ulong ino, ProxyNode parent, string name, bool isMountRoot, out ProxyNode node)
    {
        lock (_gate)
        {
            if (_byBackendNode.ContainsKey((mount, ino)) || _byId.ContainsKey(nodeId) || (!isMountRoot && !_backends[mount].Retain(ino)))
            {
                node = null!;
                return false;
            }

            node = new ProxyNode(nodeId, mount, ino, parent, name) { LookupCount = 0, IsMountRoot = isMountRoot, Restored = true };
            _byBackendNode[(mount, ino)] = node;
            _byId[nodeId] = node;
            _nextId = Math.Max(_nextId, nodeId + 1);
            return true;
        }
    }

    /// <summary>Node ids up to <paramref name="highest"/> were handed out by an earlier server: new ones start above.</summary>
    /// <summary>From now on new ids are reserved in <paramref name="memo"/> before they are used (set once, before serving).</summary>
    public void ReserveIn(SessionMemo memo)
    {
        lock (_gate)
        {
            _memo = memo;
            _ceiling = 0;
        }
    }

    public void ReserveIdsThrough(ulong highest)
    {
        lock (_gate)
        {
            _nextId = Math.Max(_nextId, highest + 1);
        }
    }

    public bool TryFind(int mount, ulong ino, out ProxyNode node)
    {
        lock (_gate)
        {
            return _byBackendNode.TryGetValue((mount, ino), out node!);
        }
    }

    /// <summary>
    /// Backend node (mount, ino) was copied up (an overlay): if the kernel holds it, its node is the copy from now on, in
    /// the journal too, so a server that takes over finds it by the identity its name now has.
    /// </summary>
    public void CopiedUp(int mount, ulong ino, in Interop.InodeIdentity copy)
    {
        lock (_gate)
        {
            if (_byBackendNode.TryGetValue((mount, ino), out ProxyNode? node))
            {
                node.CopiedTo(copy);
                _journal?.Entered(node, copy);
            }
        }
    }
}
