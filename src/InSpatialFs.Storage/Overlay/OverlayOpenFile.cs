using System.Buffers.Binary;
using System.IO.Hashing;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Direct;

namespace InSpatialFs.Storage.Overlay;

/// <summary>
/// An open file of the merged tree: the open file of the layer that answered at OPEN (a copy-up later does not move
/// it, as on the kernel's overlayfs), and the node it keeps alive until <see cref="Release"/>.
/// </summary>
internal sealed class OverlayOpenFile : IOpenFile, ISplicedReads
{
    private readonly OverlayFileSystem _fs;
    private int _released;

    public OverlayOpenFile(OverlayFileSystem fs, OverlayNode node, int layer, IOpenFile inner)
    {
        _fs = fs;
        Node = node;
        Layer = layer;
        Inner = inner;
        fs.Opened(node);
    }

    public OverlayNode Node { get; }

    public int Layer { get; }

    public IOpenFile Inner { get; }

    public FopenFlags OpenFlags => Inner.OpenFlags;

    public Errno Read(long offset, Span<byte> buffer, out int bytesRead) => Inner.Read(offset, buffer, out bytesRead);

    /// <summary>The layer file's descriptor; a layer file without one (never the case for host layers) is closed.</summary>
    public SafeFd SpliceDescriptor => Inner is ISplicedReads spliced ? spliced.SpliceDescriptor : Closed;

    private static readonly SafeFd Closed = new();

    public Errno Write(long offset, ReadOnlySpan<byte> data, out int bytesWritten) => Inner.Write(offset, data, out bytesWritten);

    public Errno Flush() => Inner.Flush();

    public Errno Fsync(bool dataOnly) => Inner.Fsync(dataOnly);

    public Errno Fallocate(int mode, long offset, long length) => Inner.Fallocate(mode, offset, length);

    public Errno Lseek(long offset, int whence, out long result) => Inner.Lseek(offset, whence, out result);

    public SafeFd? DuplicatePassthroughFd() => Inner.DuplicatePassthroughFd();

    public Errno Release()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0) return Errno.EBADF;
        Errno e = Inner.Release();
        _fs.Closed(Node);
        return e;
    }
}

/// <summary>An open directory of the merged tree: its merged listing, taken at OPENDIR (cookies are index + 3).</summary>
internal sealed class OverlayOpenDirectory : IOpenDirectory
{
    private readonly OverlayFileSystem _fs;
    private int _released;

    public OverlayOpenDirectory(OverlayFileSystem fs, OverlayNode node, List<MergedEntry> listing)
    {
        _fs = fs;
        Node = node;
        Listing = listing;
        ChangeStamp = StampOf(node, listing);
        fs.Opened(node);
    }

    /// <summary>
    /// A hash of the merged listing taken at open, which the first READDIR from offset 0 serves as it is: the stamp
    /// describes exactly what the kernel may cache from this open.
    /// </summary>
    public ulong ChangeStamp { get; }

    /// <summary>No READDIR has used <see cref="Listing"/> yet (guarded by <see cref="Gate"/>).</summary>
    public bool Fresh = true;

    private static ulong StampOf(OverlayNode node, List<MergedEntry> listing)
    {
        var hash = new XxHash3();
        Span<byte> word = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(word, node.Id);
        hash.Append(word);
        foreach ((byte[] name, uint type, _) in listing)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(word, type);
            BinaryPrimitives.WriteUInt32LittleEndian(word[4..], (uint)name.Length);
            hash.Append(word);
            hash.Append(name);
        }

        return DirectoryStamp.Known(hash.GetCurrentHashAsUInt64());
    }

    public OverlayNode Node { get; }

    /// <summary>Replaced under <see cref="Gate"/> when a READDIR starts over.</summary>
    public List<MergedEntry> Listing;

    public readonly Lock Gate = new();

    public bool Released => Volatile.Read(ref _released) != 0;

    public Errno ReadDir(long offset, IDirectoryEntrySink sink) => _fs.ReadDir(this, offset, sink);

    public Errno FsyncDir(bool dataOnly) => Released ? Errno.EBADF : Errno.OK;

    public Errno Release()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0) return Errno.EBADF;
        _fs.Closed(Node);
        return Errno.OK;
    }
}
