using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Interop.Diagnostics;
using InSpatialFs.Storage.Host;
using Microsoft.Extensions.Logging;
using static InSpatialFs.Interop.LibC;

namespace InSpatialFs.Storage.Overlay;

/// <summary>The layers of an overlay mount: read-only lower directories (top first) under an optional writable upper one.</summary>
/// <param name="Lower">Lower directories, the topmost first (as overlayfs's lowerdir=L1:L2).</param>
/// <param name="Upper">The writable layer; null for a read-only view (podman's diff and commit mounts).</param>
/// <param name="Work">A directory on the upper layer's filesystem for atomic copy-up; required with an upper layer.</param>
public sealed record OverlayLayers(IReadOnlyList<string> Lower, string? Upper, string? Work);

/// <summary>
/// An overlay mount: the kernel overlayfs semantics and on-disk format over host directories, composed of one
/// <see cref="HostFileSystem"/> per layer, so every host access keeps the host backend's guarantees (descriptor-only,
/// openat2 RESOLVE_BENEATH, file handles; lowers read-only, and DirectFS per layer: read-only opens of lower files
/// can be kernel passthrough on the lower file).
///
/// A name resolves in the upper layer first, then each lower layer in order; the first non-directory wins, a whiteout
/// hides everything below it, directories merge down to the first opaque one (<see cref="OverlayFormat"/>). Any
/// change to a lower object first copies it up: directories as directories (owner, mode, times, xattrs), regular files
/// atomically through the work directory (<see cref="CopyUp"/>), links and special files as themselves. Removing a
/// name that a lower layer has leaves a 0/0 whiteout; a directory made where one was removed is opaque.
/// Renaming a directory that has lower parts copies up its whole tree (no redirect xattrs: every other reader of the
/// layers, the kernel without redirect_dir and containers/storage's diff, sees the result as plain upper content);
/// past <see cref="MaxTreeCopyUp"/> entries it answers EXDEV, and mv falls back to copying, as with the kernel.
/// Inode numbers: the overlay node (and so the proxy's nodeid) stays the same across a copy-up while the kernel
/// holds it.
///
/// Lock order: _tree > layer backends' locks. Copy-ups run under _copyUp (one at a time), which is taken before _tree.
/// </summary>
public sealed partial class OverlayFileSystem : IFileSystemBackend
{
    /// <summary>Most entries a directory rename copies up before it answers EXDEV.</summary>
    public const int MaxTreeCopyUp = 10_000;

    /// <summary>Most entries a merged listing holds.</summary>
    public const int MaxMergedEntries = 1 << 20;

    private readonly HostFileSystem[] _layers; // [0] = upper when HasUpper, then the lowers top first
    private readonly SafeFd? _work;
    private readonly SafeFd? _index;
    private readonly ILogger _logger;
    private readonly LogThrottle _copyUpFailureLines = new(20, TimeSpan.FromMinutes(1));
    private readonly Lock _tree = new();
    private readonly Lock _copyUp = new();
    private readonly Dictionary<ulong, OverlayNode> _nodes = [];
    private readonly Dictionary<LayerObject, OverlayNode> _byTop = [];
    private readonly Queue<OverlayNode> _aging = new(); // unheld closed nodes, oldest first (under _tree)
    private readonly OverlayNode _root;
    // Whiteouts belong to whoever serves the overlay, as the kernel makes them with the mounter's credentials: an
    // unprivileged server (rootless) may not give a node to uid 0, and the whiteout would be made but answered EPERM.
    private static readonly Caller Server = new(geteuid(), getegid(), 0);
    private ulong _nextId = 1;

    public OverlayFileSystem(OverlayLayers layers, ILogger logger, bool directLower = false, bool directUpper = false)
    {
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentNullException.ThrowIfNull(logger);
        if (layers.Lower.Count == 0) throw new IOException("an overlay needs at least one lower directory");
        if (layers.Upper != null && layers.Work == null) throw new IOException("an overlay with an upper directory needs a work directory");
        Layers = layers;
        _logger = logger;
        var backends = new List<HostFileSystem>();
        try
        {
            if (layers.Upper != null) backends.Add(new HostFileSystem(layers.Upper, readOnly: false, logger, direct: directUpper, holdEntries: true));
            foreach (string lower in layers.Lower) backends.Add(new HostFileSystem(lower, readOnly: true, logger, direct: directLower, holdEntries: true));
            if (layers.Work != null)
            {
                _work = OpenWorkSubdirectory(layers.Work, "work");
                _index = OpenWorkSubdirectory(layers.Work, "index");
            }
        }
        catch
        {
            foreach (HostFileSystem b in backends) b.Dispose();
            throw;
        }

        _layers = [.. backends];
        if (_work != null)
        {
            int removed = CopyUp.CleanWorkDirectory(_work);
            if (removed > 0) OverlayLog.WorkCleaned(_logger, removed);
        }

        // The root merges every layer's root (an opaque upper root still hides the lowers, as in the kernel).
        var below = new List<LayerObject>();
        for (int i = 1; i < _layers.Length && (i > 1 || !IsOpaque(new LayerObject(0, _layers[0].RootIno))); i++)
        {
            below.Add(new LayerObject(i, _layers[i].RootIno));
        }

        _root = new OverlayNode(_nextId++, S_IFDIR, new LayerObject(0, _layers[0].RootIno), [.. below], parent: null, name: []) { Holds = 1 };
        _nodes[_root.Id] = _root;
        _byTop[_root.Top] = _root;
    }

    public OverlayLayers Layers { get; }

    public bool HasUpper => Layers.Upper != null;

    public string Kind => HasUpper ? "overlay" : "overlay-ro";

    public ulong RootIno => _root.Id;

    /// <summary>Nodes of the merged tree currently known (held, open, or waiting in the aging queue).</summary>
    public int NodeCount
    {
        get
        {
            lock (_tree) return _nodes.Count;
        }
    }

    public InodeIdentity IdentityOf(ulong ino) => TryNode(ino, out OverlayNode? n) ? _layers[n.Top.Layer].IdentityOf(n.Top.Ino) : default;

    public InodeIdentity JournaledIdentityOf(ulong ino) => TryNode(ino, out OverlayNode? n) ? _layers[n.Top.Layer].JournaledIdentityOf(n.Top.Ino) : default;

    private static SafeFd OpenWorkSubdirectory(string work, string subdirectory)
    {
        // The work directory is the engine's (containers/storage makes it next to the upper one); copies are built in
        // its "work" subdirectory and hard-linked copies are indexed in "index", as the kernel does, created 0700.
        int dir = open(work, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
        if (dir < 0) throw new IOException($"cannot open the overlay work directory {work}: {ErrnoExtensions.LastPInvoke()}");
        using var workRoot = new SafeFd(dir);
        unsafe
        {
            Span<byte> nameZ = [.. System.Text.Encoding.ASCII.GetBytes(subdirectory), 0];
            fixed (byte* n = nameZ)
            {
                if (mkdirat(dir, n, 0x1C0) != 0 && ErrnoExtensions.LastPInvoke() != Errno.EEXIST)
                {
                    throw new IOException($"cannot create {work}/{subdirectory}: {ErrnoExtensions.LastPInvoke()}");
                }

                var how = new OpenHow { Flags = (ulong)(uint)(O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), Resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
                int fd = openat2(dir, n, &how);
                if (fd < 0) throw new IOException($"cannot open {work}/{subdirectory}: {ErrnoExtensions.LastPInvoke()}");
                return new SafeFd(fd);
            }
        }
    }

    private bool TryNode(ulong id, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out OverlayNode? node)
    {
        lock (_tree) return _nodes.TryGetValue(id, out node);
    }

    private HostFileSystem LayerOf(LayerObject o) => _layers[o.Layer];

    private bool IsOpaque(LayerObject dir) =>
        OverlayFormat.HasXattr(LayerOf(dir), dir.Ino, OverlayFormat.OpaqueXattrs, valueMustBeY: true)
        || (LayerOf(dir).Lookup(dir.Ino, OverlayFormat.AufsOpaque, out FuseAttr a) == Errno.OK && ReleaseLayer(dir.Layer, a.Ino));

    /// <summary>Gives back the hold a layer entry came with (the layers are built with holdEntries); true, for use in conditions.</summary>
    private bool ReleaseLayer(int layer, ulong ino)
    {
        _layers[layer].Release(ino);
        return true;
    }

    public void Dispose()
    {
        foreach (HostFileSystem layer in _layers) layer.Dispose();
        _work?.Dispose();
        _index?.Dispose();
    }
}
