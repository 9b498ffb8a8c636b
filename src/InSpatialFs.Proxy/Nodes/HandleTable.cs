using System.Collections.Concurrent;
using InSpatialFs.Storage;

namespace InSpatialFs.Proxy.Nodes;

/// <summary>An open file or directory as the proxy tracks it between OPEN and RELEASE.</summary>
internal sealed class ProxyHandle
{
    public ProxyHandle(ProxyNode node, IOpenFile file, int flags)
    {
        Node = node;
        File = file;
        Flags = flags;
    }

    public ProxyHandle(ProxyNode node, IOpenDirectory directory, int flags)
    {
        Node = node;
        Directory = directory;
        Flags = flags;
    }

    public ProxyNode Node { get; }

    /// <summary>The backend's open file (null for a directory): every file call goes straight to it.</summary>
    public IOpenFile? File { get; }

    /// <summary>The backend's open directory (null for a file).</summary>
    public IOpenDirectory? Directory { get; }

    public int Flags { get; }

    public bool IsDirectory => Directory != null;

    /// <summary>Kernel passthrough backing id (0 = proxied I/O).</summary>
    public int BackingId;

    /// <summary>A passthrough open for writing: counted in <see cref="ProxyNode.PassthroughWriters"/>.</summary>
    public bool CountedPassthroughWriter;

    /// <summary>A DirectFS file opened through the daemon: counted in <see cref="ProxyNode.CachedOpens"/>.</summary>
    public bool CountedCached;

    /// <summary>Bytes moved through the daemon on this handle (reported in the RELEASE event).</summary>
    public long BytesRead;

    public long BytesWritten;

    /// <summary>
    /// The proxy's cache generation when this handle's writes were last decided (a WRITE event), -1 before its first
    /// WRITE: writes are decided again once it moves (a policy reload, a blocked process), and only counted meanwhile.
    /// </summary>
    public long WritesDecidedAt = -1;

    /// <summary>The last decision refused a write: every later write on the handle is decided too (and refused while
    /// the policy stands), never waved through as counted.</summary>
    public int WriteRefused;

    /// <summary>
    /// The proxy's cache generation when this handle's reads were decided (at OPEN, then again at the first READ after
    /// it moved): a policy reload or a blocked process decides the reads of handles opened before it anew.
    /// </summary>
    public long ReadsDecidedAt;

    /// <summary>The last decision refused reading: every later read on the handle is decided too.</summary>
    public int ReadRefused;

    /// <summary>The open counted against the open-files cap.</summary>
    public bool CountedOpen;
}

/// <summary>fh → handle: the proxy's own file handles (the kernel echoes them on every READ/WRITE/RELEASE), looked up lock-free.</summary>
internal sealed class HandleTable
{
    private readonly ConcurrentDictionary<ulong, ProxyHandle> _handles = new();
    private long _next;
    private SessionJournal? _journal;
    private SessionMemo? _memo;
    private long _ceiling; // handles below it are reserved in the memo
    private readonly Lock _ceilingGate = new();

    public int Count => _handles.Count;

    /// <summary>The handles now (a moment's copy).</summary>
    public (ulong Fh, ProxyHandle Handle)[] Snapshot() => [.. _handles.Select(p => (p.Key, p.Value))];

    /// <summary>From now on opens and releases are logged before the reply (set once, before serving).</summary>
    public void Journal(SessionJournal journal) => _journal = journal;

    /// <summary>From now on new handles are reserved in <paramref name="memo"/> before they are used (set once, before serving).</summary>
    public void ReserveIn(SessionMemo memo) => _memo = memo;

    public ulong Add(ProxyHandle handle)
    {
        ulong fh = (ulong)Interlocked.Increment(ref _next);
        if (_memo != null && (long)fh >= Volatile.Read(ref _ceiling))
        {
            RaiseCeiling((long)fh);
        }

        _handles[fh] = handle;
        _journal?.Opened(fh, handle);
        return fh;
    }

    /// <summary>A handle an earlier server gave the kernel (a restart): same fh; new ones are numbered above it.</summary>
    public void Restore(ulong fh, ProxyHandle handle)
    {
        _handles[fh] = handle;
        ReserveThrough(fh);
    }

    private void RaiseCeiling(long fh)
    {
        lock (_ceilingGate)
        {
            if (fh >= _ceiling)
            {
                long ceiling = fh + (long)SessionMemo.Block;
                _memo!.RaiseFhCeiling((ulong)ceiling); // before the handle is used: a successor starts above it
                Volatile.Write(ref _ceiling, ceiling);
            }
        }
    }

    public void ReserveThrough(ulong fh)
    {
        long floor = (long)fh;
        long seen;
        while ((seen = Volatile.Read(ref _next)) < floor && Interlocked.CompareExchange(ref _next, floor, seen) != seen)
        {
        }
    }

    public bool TryGet(ulong fh, out ProxyHandle handle) => _handles.TryGetValue(fh, out handle!);

    public bool TryRemove(ulong fh, out ProxyHandle handle)
    {
        if (!_handles.TryRemove(fh, out handle!))
        {
            return false;
        }

        _journal?.Released(fh);
        return true;
    }
}
