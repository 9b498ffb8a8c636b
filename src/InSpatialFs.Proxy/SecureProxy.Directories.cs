using System.Diagnostics;
using InSpatialFs.Fuse;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Proxy.Nodes;
using InSpatialFs.Security.Events;
using InSpatialFs.Storage;

namespace InSpatialFs.Proxy;

// Directories: open, list (with forbidden entries left out and mount points shown), release.
public sealed partial class SecureProxy
{
    /// <summary>Smallest READDIRPLUS record (entry_out + dirent header + an 8-byte name).</summary>
    private const int MinPlusRecord = 128 + 24 + 8;

    public Errno OpenDir(FuseRequest request, ulong nodeId, int flags, out FuseOpenOut open)
    {
        open = default;
        if (!_nodes.TryGet(nodeId, out ProxyNode node))
        {
            return UnknownNode;
        }

        long generation = CacheGeneration; // before the decision (see ProxyHandle.ReadsDecidedAt)
        FsEvent e = NewEvent(request, FsOp.OpenDir, node);
        e.Flags = flags;
        Errno err = Admit(request, e, _mounts[node.Mount], out _);
        if (err != Errno.OK)
        {
            return err;
        }

        long started = Stopwatch.GetTimestamp();
        err = BackendOf(node).OpenDir(node.Ino, out IOpenDirectory directory);
        if (err == Errno.OK)
        {
            var handle = new ProxyHandle(node, directory, flags) { ReadsDecidedAt = generation };
            open = new FuseOpenOut { Fh = _handles.Add(handle), OpenFlags = DirectoryCacheFlags(node, directory) };
        }

        return Complete(e, err, started);
    }

    /// <summary>The d_ino of a plain READDIR entry whose node the kernel does not hold (libfuse's FUSE_UNKNOWN_INO).</summary>
    internal const ulong UnknownIno = 0xFFFF_FFFF;

    public Errno ReadDir(FuseRequest request, ulong nodeId, ulong fh, long offset, bool plus, ref DirentWriter writer)
    {
        Interlocked.Increment(ref _readDirRequests);
        if (!_handles.TryGet(fh, out ProxyHandle handle) || handle.Directory is not { } directory)
        {
            return Errno.EBADF;
        }

        Errno refused = ReadsAdmitted(request, handle, FsOp.ReadDir);
        if (refused != Errno.OK)
        {
            return refused;
        }

        ProxyNode dir = handle.Node;
        IFileSystemBackend backend = BackendOf(dir);
        string dirPath = _nodes.PathOf(dir);
        var scope = new ListingScope(dirPath, _gate.MayForbidChildrenOf(dirPath), _mounts.Length > 1 && _table.HasChildMountPoints(dirPath));
        if (offset == 0)
        {
            RecordListing(request, scope.DirPath);
        }

        // Batches: list into the per-thread batch, then emit; loop while the reply has room and the backend
        // has more, so entries filtered out by policy do not end the listing early.
        while (true)
        {
            DirectoryBatch batch = DirectoryBatch.Rent(plus ? 64 : 256);
            Errno err = directory.ReadDir(offset, batch);
            if (err != Errno.OK)
            {
                return writer.IsEmpty ? err : Errno.OK;
            }

            if (batch.Count == 0)
            {
                break;
            }

            for (int i = 0; i < batch.Count; i++)
            {
                ref readonly DirectoryBatch.Entry item = ref batch.At(i);
                ReadOnlySpan<byte> name = batch.NameAt(i);
                if (!Emit(dir, scope, name, item, plus, ref writer))
                {
                    return Errno.OK; // reply full: the kernel asks again from the last cookie written
                }

                offset = item.NextOffset;
            }
        }

        return Errno.OK;
    }

    /// <summary>
    /// What a listing needs to know once per READDIR rather than per entry: whether any child may be forbidden
    /// (else entries are not classified) and whether a mount point sits directly inside (else no entry is one).
    /// </summary>
    private readonly record struct ListingScope(string DirPath, bool ClassifyChildren, bool HasMountChildren);

    /// <summary>Writes one entry; false when the reply is full. Forbidden entries are skipped (true).</summary>
    private bool Emit(ProxyNode dir, in ListingScope scope, ReadOnlySpan<byte> name, in DirectoryBatch.Entry item, bool plus, ref DirentWriter writer)
    {
        bool dots = name.SequenceEqual("."u8) || name.SequenceEqual(".."u8);
        string? childName = null, childPath = null;
        int mount = -1;
        if (!dots && (scope.ClassifyChildren || scope.HasMountChildren))
        {
            childName = Decode(name);
            childPath = ProxyNode.Join(scope.DirPath, childName);
            if (scope.ClassifyChildren && _gate.Classify(childPath) == PathClass.Forbidden)
            {
                return true;
            }

            mount = MountAt(childPath);
        }

        // d_ino must be what stat reports, our nodeid. "." and ".." are the directory and its parent (the root is its
        // own parent). An entry the kernel already holds (a node for it is live) is known by its nodeid; the backend's
        // own id would clash with some nodeid. One the kernel has not looked up has none yet, and a 0 would make
        // glibc's readdir drop the entry (ls and find missed every not-yet-seen host file), so it gets
        // FUSE_UNKNOWN_INO as libfuse gives.
        ProxyNode? known = null;
        bool isKnown = !dots && mount < 0 && item.Ino != 0 && _nodes.TryFind(dir.Mount, item.Ino, out known);
        ulong ino = dots ? (name.Length == 1 ? dir.NodeId : (dir.Parent ?? dir).NodeId) : isKnown ? known!.NodeId : UnknownIno;
        if (!plus)
        {
            return writer.TryAdd(name, ino, item.Mode, item.NextOffset);
        }

        if (!writer.HasRoomForPlus(name.Length))
        {
            return false;
        }

        if (dots)
        {
            var dotEntry = new FuseEntryOut { Attr = new FuseAttr { Mode = LibC.S_IFDIR, Ino = ino } };
            return writer.TryAddPlus(dotEntry, name, item.NextOffset);
        }

        if (isKnown)
        {
            // Listed by name only (nodeid 0): the kernel keeps its dentry and revalidates it on its own entry timeout,
            // so re-listing a directory costs no backend lookup per entry. READDIRPLUS pays a lookup only for entries
            // the kernel has not seen, where it saves the LOOKUP round trip a following stat would make.
            var nameOnly = new FuseEntryOut { Attr = new FuseAttr { Mode = item.Mode, Ino = ino } };
            return writer.TryAddPlus(nameOnly, name, item.NextOffset);
        }

        // READDIRPLUS counts as a LOOKUP of each entry: take the reference only once it is sure to be sent.
        childName ??= Decode(name);
        FuseEntryOut entry;
        if (mount >= 0)
        {
            IFileSystemBackend mounted = _mounts[mount].Backend;
            if (mounted.GetAttr(mounted.RootIno, out FuseAttr rootAttr) != Errno.OK)
            {
                return true;
            }

            ProxyNode root = _nodes.AddLookup(mount, mounted.RootIno, dir, childName, isMountRoot: true)!;
            FillEntry(root, ref rootAttr, out entry);
        }
        else
        {
            IFileSystemBackend backend = BackendOf(dir);
            Errno looked = backend.Lookup(dir.Ino, name, out FuseAttr attr);
            if (looked != Errno.OK
                || _nodes.AddLookup(dir.Mount, attr.Ino, dir, childName) is not { } node)
            {
                return true; // removed since it was listed
            }

            FillEntry(node, ref attr, out entry);
        }

        return writer.TryAddPlus(entry, name, item.NextOffset);
    }

    private void RecordListing(FuseRequest request, string dirPath)
    {
        FsEvent e = NewEvent(request, FsOp.ReadDir, dirPath);
        e.Decision = Security.Events.Decision.Allow;
        _gate.Record(e);
    }

    public Errno ReleaseDir(FuseRequest request, ulong nodeId, ulong fh)
    {
        if (!_handles.TryGet(fh, out ProxyHandle handle) || handle.Directory is not { } directory || !_handles.TryRemove(fh, out _))
        {
            return Errno.EBADF;
        }

        return directory.Release();
    }

    public Errno FsyncDir(FuseRequest request, ulong nodeId, ulong fh, bool dataOnly) =>
        _handles.TryGet(fh, out ProxyHandle handle) && handle.Directory is { } directory ? directory.FsyncDir(dataOnly) : Errno.EBADF;
}
