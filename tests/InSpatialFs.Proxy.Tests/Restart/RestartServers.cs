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
