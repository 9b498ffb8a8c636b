using InSpatialFs.Fuse;
using InSpatialFs.Interop;
using InSpatialFs.Security.Policy;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.Proxy.Nodes;

/// <summary>What the last invalidation pass did, for the status file and the tests.</summary>
public readonly record struct InvalidationStats(long Passes, long EntriesDropped, long NodesDropped, bool EpochSupported);

/// <summary>
/// Drops what the kernel may have cached of the nodes the proxy knows: NOTIFY_INC_EPOCH (every dentry, and lookups
/// still in flight, revalidate on next use; kernel 6.16+), then INVAL_ENTRY for each known (parent, name) and
/// INVAL_INODE for each known node (attributes, page cache, cached listings and symlink targets).
///
/// Runs on its own thread, never on a FUSE reader: INVAL_ENTRY takes the parent directory's inode lock, and a reader
/// sending it while the kernel holds that lock waiting for the reader's own reply would deadlock. Requests coalesce:
/// a pass started after a request covers it, however many came in meanwhile.
/// </summary>
internal sealed class KernelCacheInvalidator : IDisposable
{
    private readonly Func<IFuseNotifier?> _notifier;
    private readonly NodeTable _nodes;
    private readonly ILogger _logger;
    private readonly object _gate = new();
    private Thread? _thread;
    private long _requested, _completed;
    private string _why = "";
    private bool _stopped;
    private InvalidationStats _stats;

    public KernelCacheInvalidator(Func<IFuseNotifier?> notifier, NodeTable nodes, ILogger logger)
    {
        _notifier = notifier;
        _nodes = nodes;
        _logger = logger;
    }

    public InvalidationStats Stats
    {
        get
        {
            lock (_gate)
            {
                return _stats;
            }
        }
    }

    /// <summary>Asks for a pass; returns its ticket for <see cref="WaitFor"/>. Never blocks (callable from a reader thread).</summary>
    public long Request(string why)
    {
        lock (_gate)
        {
            if (_stopped)
            {
                return _completed;
            }

            _why = why;
            long ticket = ++_requested;
            if (_thread == null)
            {
                _thread = new Thread(Run) { IsBackground = true, Name = "inspatialfs-cache-inval" };
                _thread.Start();
            }

            Monitor.PulseAll(_gate);
            return ticket;
        }
    }

    /// <summary>Waits until a pass that started after <paramref name="ticket"/> was requested has finished.</summary>
    public bool WaitFor(long ticket, TimeSpan timeout)
    {
        DateTime deadline = DateTime.UtcNow + timeout;
        lock (_gate)
        {
            while (_completed < ticket && !_stopped)
            {
                TimeSpan left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero || !Monitor.Wait(_gate, left))
                {
                    return _completed >= ticket;
                }
            }

            return _completed >= ticket;
        }
    }

    private void Run()
    {
        LibC.RunOnProcessCpus(); // started by whichever thread asks first: perhaps a CPU-pinned ring reader
        while (true)
        {
            long target;
            string why;
            lock (_gate)
            {
                while (_completed == _requested && !_stopped)
                {
                    Monitor.Wait(_gate);
                }

                if (_stopped)
                {
                    return;
                }

                target = _requested;
                why = _why;
            }

            InvalidationStats pass = default;
            try
            {
                pass = Pass(why);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                Log.InvalidationFailed(_logger, e);
            }

            lock (_gate)
            {
                _stats = new InvalidationStats(_stats.Passes + 1, pass.EntriesDropped, pass.NodesDropped, pass.EpochSupported);
                _completed = target;
                Monitor.PulseAll(_gate);
            }
        }
    }

    private InvalidationStats Pass(string why)
    {
        IFuseNotifier? notifier = _notifier();
        if (notifier == null)
        {
            return default; // not connected yet: the kernel holds nothing
        }

        // The epoch first: a LOOKUP answered under the old policy and still on its way to the kernel sampled the old
        // epoch when it was sent, so its dentry is stale on arrival. INVAL_ENTRY below covers kernels before 6.16.
        Errno epoch = notifier.IncrementEpoch();
        ProxyNode[] known = _nodes.Snapshot();
        long entries = 0, nodes = 0;
        foreach (ProxyNode node in known)
        {
            if (node.Parent is { } parent && notifier.InvalidateEntry(parent.NodeId, ExactNames.Encode(node.Name)) == Errno.OK)
            {
                entries++; // ENOENT: the kernel had no dentry for that name (dropped already, or a hard link's other name)
            }

            // Offset 0: the page cache goes too (file data kept with KEEP_CACHE, a CACHE_DIR listing, a symlink target).
            if (notifier.InvalidateInode(node.NodeId, 0, 0) == Errno.OK)
            {
                nodes++;
            }
        }

        Log.CachesInvalidated(_logger, why, entries, nodes, known.Length, epoch == Errno.OK ? "incremented" : "not supported (" + epoch + ")");
        return new InvalidationStats(0, entries, nodes, epoch == Errno.OK);
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _stopped = true;
            Monitor.PulseAll(_gate);
        }
    }
}
