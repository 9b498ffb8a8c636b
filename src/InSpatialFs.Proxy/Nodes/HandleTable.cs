using System.Collections.Concurrent;

namespace InSpatialFs.Proxy.Nodes;

/// <summary>An open file or directory as the proxy tracks it between OPEN and RELEASE.</summary>
internal sealed class ProxyHandle
{
    public ProxyHandle(ProxyNode node, ulong backendFh, int flags, bool isDirectory)
    {
        Node = node;
        BackendFh = backendFh;
        Flags = flags;
        IsDirectory = isDirectory;
    }

    public ProxyNode Node { get; }

    public ulong BackendFh { get; }

    public int Flags { get; }

    public bool IsDirectory { get; }

    /// <summary>Kernel passthrough backing id (0 = proxied I/O).</summary>
    public int BackingId;

    /// <summary>A passthrough open for writing: counted in <see cref="ProxyNode.PassthroughWriters"/>.</summary>
    public bool CountedPassthroughWriter;

    /// <summary>A DirectFS file opened through the daemon: counted in <see cref="ProxyNode.CachedOpens"/>.</summary>
    public bool CountedCached;

    /// <summary>Bytes moved through the daemon on this handle (reported in the RELEASE event).</summary>
    public long BytesRead;

    public long BytesWritten;

    /// <summary>0 until the first WRITE was recorded as an event (later writes are only counted).</summary>
    public int WriteRecorded;

    /// <summary>The open counted against the open-files cap.</summary>
    public bool CountedOpen;
}

/// <summary>fh → handle. The kernel echoes our fh on every READ/WRITE/RELEASE, so lookups are lock-free.</summary>
internal sealed class HandleTable
{
    private readonly ConcurrentDictionary<ulong, ProxyHandle> _handles = new();
    private long _next;

    public int Count => _handles.Count;

    public ulong Add(ProxyHandle handle)
    {
        ulong fh = (ulong)Interlocked.Increment(ref _next);
        _handles[fh] = handle;
        return fh;
    }

    public bool TryGet(ulong fh, out ProxyHandle handle) => _handles.TryGetValue(fh, out handle!);

    public bool TryRemove(ulong fh, out ProxyHandle handle) => _handles.TryRemove(fh, out handle!);
}
