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
    private long _renameEpoch;

    public NodeTable(IFileSystemBackend[] backends, int rootMount, ulong rootIno)
    {
        _backends = backends;
        Root = new ProxyNode(RootNodeId, rootMount, rootIno, parent: null, name: "") { IsMountRoot = true, LookupCount = 1 };
        _byId[RootNodeId] = Root;
        _byBackendNode[(rootMount, rootIno)] = Root;
    }

    public ProxyNode Root { get; }

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
                }

                return node;
            }

            if (!isMountRoot && !_backends[mount].Retain(ino) && !keepIfGone)
            {
                return null;
            }

            node = new ProxyNode(_nextId++, mount, ino, parent, name) { LookupCount = 1, IsMountRoot = isMountRoot };
            _byBackendNode[(mount, ino)] = node;
            _byId[node.NodeId] = node;
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
            node.LookupCount = count >= node.LookupCount ? 0 : node.LookupCount - count;
            if (node.LookupCount != 0)
            {
                return false;
            }

            _byId.TryRemove(nodeId, out _);
            _byBackendNode.Remove((node.Mount, node.Ino));
            if (!node.IsMountRoot)
            {
                _backends[node.Mount].Release(node.Ino);
            }

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
        }
    }

    public bool TryFind(int mount, ulong ino, out ProxyNode node)
    {
        lock (_gate)
        {
            return _byBackendNode.TryGetValue((mount, ino), out node!);
        }
    }
}
