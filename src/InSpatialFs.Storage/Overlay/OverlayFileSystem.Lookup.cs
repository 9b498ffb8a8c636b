using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Host;
using static InSpatialFs.Interop.LibC;

namespace InSpatialFs.Storage.Overlay;

// Name resolution in the merged tree, and the node table.
public sealed partial class OverlayFileSystem
{
    /// <summary>What a name resolves to: the answering object, and for a directory the lower ones merged with it. The caller owns one layer reference on each.</summary>
    private readonly record struct Resolved(LayerObject Top, FuseAttr Attr, LayerObject[] Below);

    public Errno Lookup(ulong parent, ReadOnlySpan<byte> name, out FuseAttr attr)
    {
        attr = default;
        if (!TryNode(parent, out OverlayNode? dir)) return Errno.ENOENT;
        if (!dir.IsDirectory) return Errno.ENOTDIR;
        Errno e = Resolve(dir, name, out Resolved found);
        if (e != Errno.OK) return e;
        OverlayNode node = Adopt(dir, name, found);
        attr = found.Attr;
        attr.Ino = node.Id;
        return Errno.OK;
    }

    /// <summary>The layer directories a directory node merges, top first.</summary>
    private static IEnumerable<LayerObject> DirectoriesOf(OverlayNode dir)
    {
        yield return dir.Top;
        foreach (LayerObject b in dir.Below) yield return b;
    }

    /// <summary>
    /// Resolves <paramref name="name"/> in directory <paramref name="dir"/> through its layers, top first. ENOENT when no
    /// layer has it or a whiteout hides it. Overlay format names (aufs whiteouts) are never resolved.
    /// </summary>
    private Errno Resolve(OverlayNode dir, ReadOnlySpan<byte> name, out Resolved found)
    {
        found = default;
        if (OverlayFormat.IsAufsName(name)) return Errno.ENOENT;
        LayerObject top = default;
        FuseAttr topAttr = default;
        bool haveTop = false;
        var below = new List<LayerObject>();
        foreach (LayerObject d in DirectoriesOf(dir))
        {
            Errno e = LayerOf(d).Lookup(d.Ino, name, out FuseAttr a);
            if (e == Errno.ENOENT)
            {
                if (d.Layer > 0 || !HasUpper)
                {
                    if (HasAufsWhiteout(d, name)) break; // hides this name in every layer below
                }

                continue;
            }

            if (e != Errno.OK)
            {
                Release(haveTop ? top : null, below);
                return e;
            }

            var here = new LayerObject(d.Layer, a.Ino);
            if (IsWhiteout(d, a))
            {
                ReleaseLayer(d.Layer, a.Ino);
                break;
            }

            bool isDir = (a.Mode & S_IFMT) == S_IFDIR;
            if (!haveTop)
            {
                (top, topAttr, haveTop) = (here, a, true);
                if (!isDir || IsOpaque(here)) break;
                continue;
            }

            if (!isDir)
            {
                ReleaseLayer(d.Layer, a.Ino); // a file under a directory of the same name: hidden
                break;
            }

            below.Add(here);
            if (IsOpaque(here)) break;
        }

        if (!haveTop) return Errno.ENOENT;
        if (top.Layer != 0 && HasUpper) TryUseIndexedCopy(dir, name, ref top, ref topAttr);
        found = new Resolved(top, topAttr, [.. below]);
        return Errno.OK;
    }

    private bool IsWhiteout(LayerObject dir, in FuseAttr attr)
    {
        if (OverlayFormat.IsDeviceWhiteout(attr)) return true;
        // Kernel 6.7 xattr whiteouts: a zero-size file with the whiteout xattr, in a directory marked as holding some.
        return (attr.Mode & S_IFMT) == S_IFREG && attr.Size == 0
            && OverlayFormat.HasXattr(LayerOf(dir), attr.Ino, OverlayFormat.WhiteoutXattrs, valueMustBeY: false)
            && OverlayFormat.HasXattr(LayerOf(dir), dir.Ino, OverlayFormat.WhiteoutsMarkerXattrs, valueMustBeY: false);
    }

    private bool HasAufsWhiteout(LayerObject dir, ReadOnlySpan<byte> name)
    {
        if (name.Length + OverlayFormat.AufsPrefix.Length > 255) return false;
        return LayerOf(dir).Lookup(dir.Ino, OverlayFormat.AufsWhiteoutName(name), out FuseAttr a) == Errno.OK && ReleaseLayer(dir.Layer, a.Ino);
    }

    private void Release(LayerObject? top, IEnumerable<LayerObject> below)
    {
        if (top is LayerObject t) ReleaseLayer(t.Layer, t.Ino);
        foreach (LayerObject b in below) ReleaseLayer(b.Layer, b.Ino);
    }

    /// <summary>
    /// Turns a resolution into a node (an existing node keeps its own layer references). <paramref name="hold"/>: the
    /// overlay itself keeps the node through a multi-step operation and gives it back with <see cref="Release"/>; an
    /// entry returned to the proxy is not held (the proxy retains it), and an unheld node joins the aging queue.
    /// </summary>
    private OverlayNode Adopt(OverlayNode parent, ReadOnlySpan<byte> name, in Resolved found, bool hold = false)
    {
        lock (_tree)
        {
            if (_byTop.TryGetValue(found.Top, out OverlayNode? node))
            {
                node.Parent = parent;
                node.Name = name.ToArray();
                node.Removed = false;
                Release(found.Top, found.Below);
            }
            else
            {
                node = new OverlayNode(_nextId++, found.Attr.Mode & S_IFMT, found.Top, found.Below, parent, name.ToArray());
                _nodes[node.Id] = node;
                _byTop[node.Top] = node;
            }

            if (hold) node.Holds++;
            else AgeLocked(node);
            return node;
        }
    }

    public bool Retain(ulong ino)
    {
        lock (_tree)
        {
            if (!_nodes.TryGetValue(ino, out OverlayNode? node)) return false;
            node.Holds++;
            return true;
        }
    }

    public void Release(ulong ino)
    {
        lock (_tree)
        {
            if (!_nodes.TryGetValue(ino, out OverlayNode? node) || node == _root || node.Holds == 0) return;
            node.Holds--;
            DropIfUnusedLocked(node);
        }
    }

    /// <summary>Precondition: _tree held. An unheld closed node waits here until <see cref="HostFileSystem.UnheldNodeLimit"/>
    /// newer ones are queued, then goes if still unheld and closed (its layer objects with it).</summary>
    private void AgeLocked(OverlayNode node)
    {
        if (node.Holds > 0 || node.OpenHandles > 0 || node.Aging || node == _root) return;
        node.Aging = true;
        _aging.Enqueue(node);
        while (_aging.Count > HostFileSystem.UnheldNodeLimit)
        {
            OverlayNode oldest = _aging.Dequeue();
            oldest.Aging = false;
            DropIfUnusedLocked(oldest);
        }
    }

    /// <summary>Precondition: _tree held.</summary>
    private void DropIfUnusedLocked(OverlayNode node)
    {
        if (node == _root || node.Holds > 0 || node.OpenHandles > 0 || !_nodes.Remove(node.Id)) return;
        if (_byTop.TryGetValue(node.Top, out OverlayNode? current) && current == node) _byTop.Remove(node.Top);
        Release(node.Top, node.Below);
    }

    /// <summary>After a copy-up: the node now answers from <paramref name="upper"/> (the lower reference is given back).</summary>
    private void Retarget(OverlayNode node, LayerObject upper, LayerObject[] below)
    {
        lock (_tree)
        {
            if (_byTop.TryGetValue(node.Top, out OverlayNode? current) && current == node) _byTop.Remove(node.Top);
            LayerObject old = node.Top;
            LayerObject[] oldBelow = node.Below;
            node.Top = upper;
            node.Below = below;
            _byTop[upper] = node;
            if (!below.Contains(old)) ReleaseLayer(old.Layer, old.Ino);
            foreach (LayerObject b in oldBelow)
            {
                if (!below.Contains(b)) ReleaseLayer(b.Layer, b.Ino);
            }
        }
    }

    /// <summary>True when some lower layer below <paramref name="fromLayer"/> still has <paramref name="name"/> in <paramref name="dir"/> (a whiteout is needed to remove it).</summary>
    private bool LowerHas(OverlayNode dir, ReadOnlySpan<byte> name)
    {
        foreach (LayerObject d in DirectoriesOf(dir))
        {
            if (d.Layer == 0 && HasUpper) continue;
            if (LayerOf(d).Lookup(d.Ino, name, out FuseAttr a) == Errno.OK)
            {
                bool whiteout = IsWhiteout(d, a);
                ReleaseLayer(d.Layer, a.Ino);
                return !whiteout;
            }

            if (HasAufsWhiteout(d, name)) return false;
        }

        return false;
    }
}
