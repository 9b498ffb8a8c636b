using InSpatialFs.Fuse;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Proxy.Nodes;
using InSpatialFs.Storage.Host;
using InSpatialFs.Storage.Overlay;
using InSpatialFs.Storage.Mounts;
using Microsoft.Extensions.Logging.Abstractions;

namespace InSpatialFs.Proxy.Tests.Restart;

/// <summary>
/// Servers of one host directory in turn, as the keeper starts them: each a proxy over a host mount with its journal in
/// a state directory, the next one restoring from what the last one left. Disposes them all.
/// </summary>
internal sealed class RestartServers(string source) : IDisposable
{
    private readonly List<IDisposable> _owned = [];

    /// <summary>A server with its journal in <paramref name="state"/> (made 0700 if missing); <paramref name="restore"/>: take over from it.</summary>
    public SecureProxy Start(string state, bool restore, out RestartReport report, SessionMemo? memo = null)
    {
        var host = new HostFileSystem(source, readOnly: false, NullLogger.Instance);
        var proxy = new SecureProxy(MountTable.Create([new MountEntry("/", host, ReadOnly: false, Direct: false, MountKind.Host)]),
            new RecordingGate(), new ProxyOptions(), NullLogger.Instance);
        _owned.Add(host);
        _owned.Add(proxy);
        Directory.CreateDirectory(state, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        report = proxy.OpenJournal(state, restore, memo);
        return proxy;
    }

    /// <summary>As <see cref="Start"/> over an overlay whose one lower layer is the source directory.</summary>
    public SecureProxy StartOverlay(string upper, string work, string state, bool restore, out RestartReport report)
    {
        var overlay = new OverlayFileSystem(new OverlayLayers([source], upper, work), NullLogger.Instance);
        var proxy = new SecureProxy(MountTable.Create([new MountEntry("/", overlay, ReadOnly: false, Direct: false, MountKind.Overlay)]),
            new RecordingGate(), new ProxyOptions(), NullLogger.Instance);
        _owned.Add(overlay);
        _owned.Add(proxy);
        Directory.CreateDirectory(state, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        report = proxy.OpenJournal(state, restore);
        return proxy;
    }

    /// <summary>A request from root (pid 4242), as the servers' callers in these tests make them.</summary>
    public static FuseRequest Request()
    {
        var r = new FuseRequest();
        r.Reset(9, opcode: 0, nodeId: 1, uid: 0, gid: 0, pid: 4242);
        return r;
    }

    /// <summary>LOOKUP of <paramref name="name"/> in <paramref name="parent"/>, answered (its records journaled): the node id.</summary>
    public static ulong Looked(SecureProxy proxy, ulong parent, string name)
    {
        Assert.That(proxy.Lookup(Request(), parent, ProxyHarness.N(name), out FuseEntryOut entry), Is.EqualTo(Errno.OK), name);
        proxy.BeforeReply();
        return entry.NodeId;
    }

    /// <summary>The journal as a server killed now leaves it, copied to <paramref name="to"/> (the running one goes on writing to its own).</summary>
    public static void KillSnapshot(string state, string to)
    {
        Directory.CreateDirectory(to, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.Copy(Path.Combine(state, SecureProxy.JournalFile), Path.Combine(to, SecureProxy.JournalFile));
        File.SetUnixFileMode(Path.Combine(to, SecureProxy.JournalFile), UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    public void Dispose()
    {
        foreach (IDisposable d in Enumerable.Reverse(_owned))
        {
            d.Dispose();
        }
    }
}
