using System.Diagnostics;
using InSpatialFs.Fuse;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Proxy.Nodes;
using InSpatialFs.Security;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Policy;
using InSpatialFs.Security.Resources;
using InSpatialFs.Storage;
using InSpatialFs.Proxy.Direct;
using InSpatialFs.Storage.Mounts;
using InSpatialFs.Storage.Posix;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.Proxy;

/// <summary>
/// The secure proxy: the filesystem the FUSE server serves. For every request it maps nodeid → node →
/// namespace path, asks the security gate for a verdict BEFORE the operation, runs it on the backend of the
/// node's mount, and records the finished operation AFTER it. Node ids are the proxy's own (the attr.ino the
/// kernel sees is the nodeid), so nodes of different mounts never collide.
///
/// Which operations become events: every decided operation except the high-volume, read-only metadata ones
/// (getattr, statfs, flush, fsync, successful lookups) and per-call data transfer: READ and WRITE are accounted
/// per handle — the first WRITE on a handle is an event, and RELEASE reports the bytes moved.
/// </summary>
public sealed partial class SecureProxy : IFuseFileSystem, IFuseSplicedRead, IDisposable
{
    /// <summary>
    /// The answer for a node id the table does not hold. The kernel sends no id after its FORGET, so such an id is one a
    /// previous server handed out and this one could not find again (a restart without the journal): ESTALE, on which
    /// the VFS walks the path again with revalidation and finds the file by name.
    /// </summary>
    private const Errno UnknownNode = Errno.ESTALE;

    private readonly MountTable _table;
    private readonly MountEntry[] _mounts;
    private readonly QuotaAccount?[] _quotas;
    private readonly ISecurityGate _gate;
    private readonly ProxyOptions _options;
    private readonly ILogger _logger;
    private readonly NodeTable _nodes;
    private readonly HandleTable _handles = new();
    private readonly ulong _entryValidSec, _attrValidSec;
    private readonly uint _entryValidNsec, _attrValidNsec;
    private FuseConnectionInfo? _connection;
    private IPassthroughFiles? _passthrough;
    private readonly bool _spliceDirectReads;

    // Guards ProxyNode.CachedOpens/PassthroughOpens with the backing-id acquire and release of DirectFS opens, so
    // an inode's io mode and its backing id change together. Taken only at OPEN/RELEASE of direct-mount files.
    // Lock order: _ioModeLock > BackingFileTable's lock (the backend is never called with it held, except a set-id chmod
    // (checked against open passthrough writers), the attribute read that decides a writable open, and
    // Release of the handle just opened, which takes only the backend's own locks).
    private readonly Lock _ioModeLock = new();

    public SecureProxy(MountTable mounts, ISecurityGate gate, ProxyOptions options, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(mounts);
        _table = mounts;
        _mounts = [.. mounts.Entries];
        int root = mounts.Root.Index;
        _gate = gate;
        if (options.DirectFallback is not (DirectMode.Spliced or DirectMode.Proxied))
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.DirectFallback, "DirectFallback is Spliced or Proxied");
        }

        _options = options;
        _spliceDirectReads = options.DirectFallback == DirectMode.Spliced && _mounts.Any(m => m.Direct);
        _logger = logger;
        _nodes = new NodeTable([.. _mounts.Select(m => m.Backend)], root, _mounts[root].Backend.RootIno);
        foreach ((string path, Errno error) in MountPointDirectories.Ensure(mounts))
        {
            Log.MountPointUnlisted(logger, path, error);
        }

        // Memory mounts enforce their own size and inode limits (ENOSPC); host mounts are charged here (EDQUOT).
        _quotas = [.. _mounts.Select(m => m.Kind == MountKind.Memory ? null : gate.QuotaFor(m.Path))];
        (_entryValidSec, _entryValidNsec) = Split(options.EntryTimeout);
        (_attrValidSec, _attrValidNsec) = Split(options.AttrTimeout);
        InitCaching(options);
        FollowCopyUps();
        AliasScan = MarkProtectedAliases();
    }

    /// <summary>Nodes the kernel holds (root included).</summary>
    public int LiveNodes => _nodes.Count;

    /// <summary>Open files and directories.</summary>
    public int OpenHandles => _handles.Count;

    public MountTable Mounts => _table;

    /// <summary>What INIT negotiated (null before the kernel connected).</summary>
    public FuseConnectionInfo? Connection => Volatile.Read(ref _connection);

    /// <summary>How DirectFS mounts move data: kernel passthrough, or the configured daemon fallback when it is unavailable.</summary>
    public DirectMode DirectMode => _passthrough is BackingFileTable table ? table.Mode : _options.DirectFallback;

    public void Initialized(FuseConnectionInfo connection)
    {
        Log.Connected(_logger, connection.KernelMajor, connection.KernelMinor, connection.PassthroughEnabled);
        if (_mounts.Any(OffersPassthrough))
        {
            if (connection.PassthroughEnabled && connection.Backing != null)
            {
                var table = new BackingFileTable(connection.Backing, fallback: _options.DirectFallback);
                table.PassthroughUnavailable += error => Log.PassthroughRefused(_logger, error, _options.DirectFallback.DisplayName());
                AdoptRestoredBacking(table);
                _passthrough = table;
                foreach (MountEntry m in _mounts)
                {
                    if (m.Backend is Storage.Memory.MemoryFileSystem memory)
                    {
                        memory.OfferPassthrough = true; // its opens now come with a descriptor for the kernel
                    }
                }
            }
            else
            {
                Log.PassthroughNotOffered(_logger, _options.DirectFallback.DisplayName());
            }
        }

        // Published last: whoever sees the connection (the daemon's start line, status) also sees the DirectFS mode.
        Volatile.Write(ref _connection, connection);
    }

    public void Forget(ulong nodeId, ulong lookupCount) => _nodes.Forget(nodeId, lookupCount, out _); // the backend hears of the last one

    // ---- shared plumbing -------------------------------------------------------------------------------

    private static (ulong Seconds, uint Nanos) Split(TimeSpan t) => ((ulong)t.Ticks / TimeSpan.TicksPerSecond, (uint)(t.Ticks % TimeSpan.TicksPerSecond * 100));

    private IFileSystemBackend BackendOf(ProxyNode node) => _mounts[node.Mount].Backend;

    private static Caller CallerOf(FuseRequest r) => new(r.Uid, r.Gid, r.Pid);

    /// <summary>Checks a name from the kernel with the backends' rule (<see cref="EntryName.Check"/>): never empty, ".",
    /// "..", or holding '/' or NUL (EACCES), at most 255 bytes (ENAMETOOLONG).</summary>
    private static Errno CheckName(ReadOnlySpan<byte> name) => EntryName.Check(name);

    /// <summary>Name bytes to the proxy's string form, losslessly (invalid UTF-8 is escaped, never folded).</summary>
    private static string Decode(ReadOnlySpan<byte> bytes) => ExactNames.Decode(bytes);

    /// <summary>An event about an existing node: its namespace path and its identity (marks follow the object).</summary>
    private FsEvent NewEvent(FuseRequest r, FsOp op, ProxyNode node)
    {
        FsEvent e = NewEvent(r, op, _nodes.PathOf(node));
        e.Object = IdentityOf(node);
        return e;
    }

    private InodeIdentity IdentityOf(ProxyNode node) => node.IdentityFrom(BackendOf(node));

    private InodeIdentity JournaledIdentityOf(ProxyNode node) => node.JournaledIdentityFrom(BackendOf(node));

    /// <summary>The identity of the node an entry reply just registered.</summary>
    private InodeIdentity IdentityOfEntry(in FuseEntryOut entry) => _nodes.TryGet(entry.NodeId, out ProxyNode node) ? IdentityOf(node) : default;

    private FsEvent NewEvent(FuseRequest r, FsOp op, string path) => new()
    {
        TimeUnixNanos = FsEvent.NowUnixNanos(),
        Op = op,
        Path = path,
        Pid = (int)r.Pid,
        Uid = r.Uid,
        Gid = r.Gid,
        IsWrite = op.IsWriteClass(),
    };

    /// <summary>
    /// The before-step: mount read-only check, then the security verdict. A throttle delay waits here
    /// (interruptible). Returns OK to go ahead; a denial has already been recorded.
    /// </summary>
    private Errno Admit(FuseRequest r, FsEvent e, MountEntry mount, out Verdict verdict)
    {
        if (mount.ReadOnly && e.IsWrite)
        {
            verdict = Verdict.Deny(Errno.EROFS, VerdictReason.ReadOnlyMount(mount.Path));
            return Deny(e, verdict);
        }

        verdict = _gate.Decide(e);
        if (verdict.IsDenied)
        {
            return Deny(e, verdict);
        }

        if (verdict.Delay > TimeSpan.Zero && r.WaitForInterrupt(verdict.Delay))
        {
            return Errno.EINTR;
        }

        e.Decision = verdict.Decision;
        e.Why = verdict.Why;
        return Errno.OK;
    }

    private Errno Deny(FsEvent e, in Verdict verdict)
    {
        Errno error = verdict.Error is Errno.EACCES or Errno.EPERM or Errno.EROFS or Errno.ENOSPC or Errno.EDQUOT or Errno.EMFILE or Errno.EXDEV
            ? verdict.Error
            : Errno.EACCES; // never let a denial turn into ENOSYS or another errno the kernel would cache
        e.Decision = Decision.Deny;
        e.Why = verdict.Why;
        e.Result = (int)error;
        _gate.Record(e);
        return error;
    }

    /// <summary>The after-step: result and latency into the event, then the event to the queue.</summary>
    private Errno Complete(FsEvent e, Errno result, long started)
    {
        if (result == BackendResult.EscapeRefused)
        {
            result = RecordEscape(e);
        }

        e.Result = (int)result;
        e.LatencyNanos = (long)Stopwatch.GetElapsedTime(started).TotalNanoseconds;
        TakeCopiedObject(e);
        _gate.Record(e);
        return result;
    }

    /// <summary>
    /// A backend refused a host name as leaving its tree (<see cref="BackendResult.EscapeRefused"/>): one escape event for
    /// the operation's caller and full path (what rules and incidents see as evt.op = escape), and EACCES for the kernel.
    /// </summary>
    private Errno RecordEscape(FsEvent op)
    {
        _gate.Record(new FsEvent
        {
            TimeUnixNanos = FsEvent.NowUnixNanos(),
            Op = FsOp.Escape,
            Path = op.Path,
            Pid = op.Pid,
            Uid = op.Uid,
            Gid = op.Gid,
            Result = (int)Errno.EACCES,
            Decision = Decision.Deny,
            Why = VerdictReason.HostEscape,
        });
        return Errno.EACCES;
    }

    private void FillEntry(ProxyNode node, ref FuseAttr attr, out FuseEntryOut entry)
    {
        attr.Ino = node.NodeId;
        (ulong entrySec, uint entryNsec) = EntryTimeoutFor(node);
        (ulong attrSec, uint attrNsec) = AttrTimeoutFor(node);
        entry = new FuseEntryOut
        {
            NodeId = node.NodeId,
            Generation = 0,
            EntryValid = entrySec,
            EntryValidNsec = entryNsec,
            AttrValid = attrSec,
            AttrValidNsec = attrNsec,
            Attr = attr,
        };
    }

    private void FillAttr(ProxyNode node, ref FuseAttr attr, out FuseAttrOut output)
    {
        attr.Ino = node.NodeId;
        (ulong attrSec, uint attrNsec) = AttrTimeoutFor(node);
        output = new FuseAttrOut { AttrValid = attrSec, AttrValidNsec = attrNsec, Attr = attr };
    }

    /// <summary>Registers the entry a creating backend call returned (one kernel reference) and fills entry_out.</summary>
    private void Register(ProxyNode parent, int mount, string name, ref FuseAttr attr, out FuseEntryOut entry)
    {
        ProxyNode node = _nodes.AddEntry(mount, attr.Ino, parent, name);
        FillEntry(node, ref attr, out entry);
    }

    /// <summary>The mount whose root sits exactly at <paramref name="path"/>, or -1.</summary>
    private int MountAt(string path) => _mounts.Length > 1 && path != "/" && _table.MountAt(path) is { } m && m.Path == path ? m.Index : -1;
}
