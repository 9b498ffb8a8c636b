using System.Buffers.Binary;
using System.Diagnostics;
using InSpatialFs.Daemon.Hosting;
using InSpatialFs.Fuse;
using InSpatialFs.Fuse.Transport;
using InSpatialFs.Interop;
using InSpatialFs.Daemon.Config;
using InSpatialFs.Proxy;
using InSpatialFs.Proxy.Nodes;
using InSpatialFs.Storage.Mounts;
using InSpatialFs.Storage.Memory;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.Daemon.Runtime;

/// <summary>
/// The container mount outlives its server. With a descriptor store (systemd's, or inspatialfs-keeper's), this server
/// stores the connection's /dev/fuse descriptors as it opens them and journals its node and handle tables before each
/// reply; a server started after it died (or handed over) adopts the connection without a new INIT, rebuilds the tables,
/// asks the kernel to resend what was read but not answered (NOTIFY_RESEND) and serves on. The control mount is kept the
/// same way; its tree is fixed (the same node ids in every server), so only its INIT parameters are journaled, and its
/// open files are not carried over (their reads answer EBADF: open them again).
/// </summary>
internal sealed partial class Instance
{
    /// <summary>The exit code that asks the keeper (or the unit's RestartForceExitStatus=) to start the next server.</summary>
    public const int HandOverExitCode = 75;

    private const ushort SessionRecord = SecureProxy.FirstOwnerRecord; // the container connection's INIT outcome
    private const ushort ControlSessionRecord = SecureProxy.FirstOwnerRecord + 1; // the control connection's

    /// <summary>The control connection's session descriptor and its clones in the store.</summary>
    private const string ControlSessionName = "control", ControlClonePrefix = "control-clone.";

    /// <summary>The session memo (INIT parameters and id ceilings, see <see cref="SessionMemo"/>) in the store.</summary>
    private const string MemoName = "session-memo";

    /// <summary>The metrics_listen socket, kept for the next server (see the metrics block of StartCore).</summary>
    private const string MetricsSocketName = "metrics";
    private const int SessionRecordSize = 4 * 3 + 8 * 2 + 4 * 2;

    private DescriptorStore? _store;
    private SessionMemo? _memo;
    private SafeFd? _inheritedSession;
    private SafeFd? _inheritedControl;
    private FuseSessionParameters? _adoptControl;
    private volatile bool _storingClones;
    private int _handingOver;

    /// <summary>Servers before this one on the same mount (restarts after a crash and handovers).</summary>
    public int Restarts => _store?.Restarts ?? 0;

    /// <summary>From the previous server's end to this one serving (null for a fresh mount).</summary>
    public TimeSpan? LastHandover { get; private set; }

    /// <summary>Requests the previous server read and did not answer, resent to this one.</summary>
    public long ResentRequests => _server?.ResentRequests ?? 0;

    /// <summary>What the state of the last start was: "fresh", or what was found again of the previous server's.</summary>
    public RestartReport? Restored { get; private set; }

    /// <summary>How this instance survives its server: "keeper", "systemd", or "off (why)".</summary>
    public string RestartMode { get; private set; } = "off";

    /// <summary>Bytes of the restart journals: the proxy's node and handle tables plus each kept memory mount's tree.</summary>
    public long JournalBytes => (Proxy?.JournalBytes ?? 0) + (Mounts?.Entries.Sum(m => (m.Backend as MemoryFileSystem)?.JournalBytes ?? 0) ?? 0);

    /// <summary>Why an io_uring instance is not kept: the kernel resends what a dead server held on /dev/fuse, not on its rings.</summary>
    private const string IoUringRefusal = "--io-uring: requests a dead server held on its io_uring cannot be handed to a new server";

    /// <summary>The store, and whether a previous server's live connection is handed to this one (its session descriptor).</summary>
    private bool TakeStore()
    {
        _store = DescriptorStore.FromEnvironment();
        if (_store == null)
        {
            return false;
        }

        _owned.Add(_store);
        _inheritedSession = _store.Take(DescriptorStore.SessionName);
        _inheritedControl = _inheritedSession != null && _options.Control ? _store.Take(ControlSessionName) : null;
        return _inheritedSession != null;
    }

    /// <summary>Once the proxy exists: the journal (restored from when adopting), or why this instance cannot restart.</summary>
    private FuseSessionParameters? OpenJournal(bool adopting)
    {
        if (_store == null)
        {
            RestartMode = (_options.IoUring ? IoUringRefusal : Proxy.RestartRefusal()) is string why ? $"off ({why})" : "off (no keeper and no descriptor store: the mount ends with this server)";
            return null;
        }

        if ((_options.IoUring ? IoUringRefusal : Proxy.RestartRefusal()) is string refusal)
        {
            if (adopting)
            {
                throw new InstanceStartException($"cannot take over the live mount {_config.Mountpoint}: {refusal}");
            }

            RestartMode = $"off ({refusal})";
            _log.LogWarning("restarts under the live mount are off: {Reason}", refusal);
            _store.Dispose();
            _owned.Remove(_store);
            _store = null;
            return null;
        }

        RestartMode = Environment.GetEnvironmentVariable("INSPATIALFS_KEEPER_PID") != null ? "keeper" : "systemd";
        if (!adopting)
        {
            KeepMemoryMounts(_store);
        }

        // The memo rides in the store, not on the state disk: a predecessor's (adopting), else a new one kept from now on
        // (a fresh mount, or a predecessor from before memos: ids are then reserved past its journal's floor).
        _memo = adopting ? SessionMemo.Adopt(_store.Take(MemoName)) : null;
        if (_memo == null)
        {
            _memo = SessionMemo.Create();
            if (!_store.Store(MemoName, _memo.Descriptor))
            {
                _log.LogError("the descriptor store refused the session memo: a restart then depends on the journal in {StateDir} alone", _config.StateDir);
            }
        }

        _owned.Add(_memo);
        RestartReport report = Proxy.OpenJournal(_config.StateDir, restore: adopting, _memo);
        if (!adopting)
        {
            return null;
        }

        Restored = report;
        byte[]? payload = report.OwnerRecords.LastOrDefault(r => r.Type == SessionRecord).Item2;
        if (payload is not { Length: >= SessionRecordSize } && _memo.Parameters(0) is { Length: >= SessionRecordSize } kept)
        {
            // The journal lost them (its state directory was removed, or a disk failed): the memo kept them.
            _log.LogWarning("the journal in {StateDir} has no connection parameters; taking over with the ones the descriptor store kept ({Nodes} nodes found again: the kernel's others answer ESTALE until looked up anew)",
                _config.StateDir, report.Nodes);
            payload = kept;
        }

        if (payload is not { Length: >= SessionRecordSize })
        {
            throw new InstanceStartException($"cannot take over the live mount {_config.Mountpoint}: the journal in {_config.StateDir} has no connection parameters");
        }

        byte[]? control = report.OwnerRecords.LastOrDefault(r => r.Type == ControlSessionRecord).Item2 ?? _memo.Parameters(1);
        if (_inheritedControl != null && control is { Length: >= SessionRecordSize })
        {
            _adoptControl = Decode(control);
        }

        _storingClones = true; // the connection is live: every descriptor a request may be read from is stored at once
        return Decode(payload);
    }

    /// <summary>
    /// A fresh start with a store: each memory mount's metadata is journaled from now on and its private tmpfs is stored,
    /// so that the next server finds the contents (a container's /tmp is data, not cache).
    /// </summary>
    private void KeepMemoryMounts(DescriptorStore store)
    {
        foreach (MountEntry mount in Mounts.Entries)
        {
            if (mount.Backend is not MemoryFileSystem memory)
            {
                continue;
            }

            (string volume, string journal) = MemoryKeepNames.For(mount.Path);
            memory.StartJournal(_config.StateDir, journal, MemoryJournalFailed(mount.Path), MemoryJournalRecovered(mount.Path));
            using SafeFd? data = memory.DuplicateDataVolume();
            if (data == null || !store.Store(volume, data))
            {
                throw new InstanceStartException($"the descriptor store refused the data of the memory mount {mount.Path}");
            }
        }
    }

    private Action<Exception> MemoryJournalFailed(string path) =>
        e => _log.LogError("the journal of the memory mount {Path} failed ({Error}): new names, removals, renames, links, modes, owners and xattrs there get ENOSPC until it can be written again (retried each second)",
            path, e.Message);

    private Action MemoryJournalRecovered(string path) =>
        () => _log.LogWarning("the journal of the memory mount {Path} is written again: changes there go through", path);

    /// <summary>The memory mount <paramref name="mount"/> as the previous server left it: its tmpfs from the store, its tree from the journal.</summary>
    private MemoryFileSystem AdoptMemory(MountConfig mount, long size)
    {
        (string volume, string journal) = MemoryKeepNames.For(mount.Path);
        SafeFd? data = _store!.Take(volume);
        if (data == null)
        {
            // A predecessor from before the names changed (an upgrade under the live mount) kept it under the old ones.
            (volume, journal) = MemoryKeepNames.Legacy(mount.Path);
            data = _store.Take(volume)
                ?? throw new InstanceStartException($"cannot take over the live mount {_config.Mountpoint}: the data of the memory mount {mount.Path} was not handed over");
        }

        try
        {
            MemoryFileSystem memory = MemoryFileSystem.Adopt(data, _config.StateDir, journal, size, _config.Resources.Inodes ?? 0, out MemoryRestoreReport report,
                MemoryJournalFailed(mount.Path), MemoryJournalRecovered(mount.Path), orphansIfNoTree: true);
            if (report.DamagedJournalSetAside is { } aside)
            {
                _log.LogError("the journal of the memory mount {Path} in {StateDir} is damaged: kept as {SetAside}", mount.Path, _config.StateDir, aside);
            }

            if (report.TreeLost)
            {
                _log.LogError("the journal of the memory mount {Path} in {StateDir} holds no tree (the directory was removed or the file emptied): its names are lost; its {Files} data files are kept in its lost+found, named by id (root, 0600)",
                    mount.Path, _config.StateDir, report.LostAndFound);
            }

            _log.LogInformation("memory mount {Path} taken over: {Nodes} nodes; {Dropped} without a name dropped, {Removed} data files no node claimed removed, {Recreated} missing data files recreated empty",
                mount.Path, report.Nodes, report.DroppedNodes, report.RemovedDataFiles, report.RecreatedDataFiles);
            return memory;
        }
        catch (InvalidDataException e)
        {
            throw new InstanceStartException($"cannot take over the live mount {_config.Mountpoint}: memory mount {mount.Path}: {e.Message}", e);
        }
    }

    /// <summary>
    /// The control mount: the predecessor's live connection when it handed one over (with its parameters), else a new
    /// mount (a stale one at the path detached first).
    /// </summary>
    private FuseMount MountControl()
    {
        string fsName = "inspatialfs-control:" + _config.Name;
        if (_adoptControl != null)
        {
            return FuseMount.Adopt(_config.Control, _inheritedControl!, new FuseMountOptions { FsName = fsName, AllowOther = false }, Logs.CreateLogger("InSpatialFs.Fuse"));
        }

        if (_inheritedControl != null)
        {
            // Handed over without its parameters (a predecessor that did not keep it): mounted anew over the dead one.
            _inheritedControl.Dispose();
            _inheritedControl = null;
            StaleMounts.Clear(_config.Control, fsName, _log);
            OwnPaths.PrepareControlDirectory(_config.Control, _log);
        }

        return Mount(_config.Control, fsName, allowOther: false);
    }

    /// <summary>Clones are stored as they are opened, before they read (a crash may come between any two requests).</summary>
    private void StoreClonesOf(FuseDevice device, string prefix = DescriptorStore.ClonePrefix)
    {
        if (_store is not { } store)
        {
            return;
        }

        string name = prefix + Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        device.CloneOpened = clone =>
        {
            if (_storingClones && !store.Store(name, clone))
            {
                _log.LogError("the descriptor store refused a FUSE clone: requests read from it are lost if this server dies");
            }
        };
    }

    /// <summary>
    /// After INIT (or the adoption): a fresh connection's parameters are journaled, then its descriptors stored; an adopted
    /// one's old clones are dropped once the kernel has moved their unanswered requests back to the queue.
    /// </summary>
    private void AfterConnected(bool adopting)
    {
        if (_store is not { } store || _mount is null || _server?.Connection is not { } connection)
        {
            return;
        }

        if (!adopting)
        {
            Proxy.JournalOwnerRecord(SessionRecord, Encode(connection.Parameters));
            _memo?.SetParameters(0, Encode(connection.Parameters));
            _storingClones = true;
            StoreDescriptors(store, _mount, DescriptorStore.SessionName, DescriptorStore.ClonePrefix);
        }

        if (_controlMount != null && _controlServer?.Connection is { } control)
        {
            if (_adoptControl == null)
            {
                // A control mount made by this server (a fresh start, or a predecessor that did not keep one): kept from now on.
                Proxy.JournalOwnerRecord(ControlSessionRecord, Encode(control.Parameters));
                _memo?.SetParameters(1, Encode(control.Parameters));
                store.Remove(ControlSessionName); // a dead predecessor's, if any
                StoreDescriptors(store, _controlMount, ControlSessionName, ControlClonePrefix);
            }
        }

        if (!adopting)
        {
            return;
        }

        DateTime deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (((_server.ResendResult is null && !_server.Completion.IsCompleted) || (_adoptControl != null && _controlServer?.ResendResult is null))
               && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(1);
        }

        string ownControlClones = ControlClonePrefix + Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        foreach (string old in store.Inherited.Select(d => d.Name)
                     .Where(n => n.StartsWith(DescriptorStore.ClonePrefix, StringComparison.Ordinal) || (n.StartsWith(ControlClonePrefix, StringComparison.Ordinal) && n != ownControlClones))
                     .Distinct())
        {
            store.Remove(old);
        }

        store.CloseInherited();
        LastHandover = store.Handover;
        RestartReport r = Restored!;
        _log.LogInformation(
            "took over the live mount {Mountpoint} (server {Restart}): {Nodes} nodes and {Handles} open files found again, {StaleNodes} nodes and {StaleHandles} files not; {Begun} tree changes begun (last {LastBegun}); resend {Resend}; {Handover} ms since the previous server ended",
            _config.Mountpoint, store.Restarts + 1, r.Nodes, r.Handles, r.StaleNodes, r.StaleHandles, r.BegunChanges, r.LastBegun, _server.ResendResult, (long)(LastHandover?.TotalMilliseconds ?? -1));
    }

    /// <summary>Stores the session descriptor of <paramref name="mount"/> and its clones (this server's, under one name).</summary>
    private void StoreDescriptors(DescriptorStore store, FuseMount mount, string session, string clonePrefix)
    {
        IReadOnlyList<SafeFd> copies = mount.Device.DuplicateDescriptors();
        string clones = clonePrefix + Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        for (int i = 0; i < copies.Count; i++)
        {
            using SafeFd copy = copies[i];
            if (!store.Store(i == 0 ? session : clones, copy))
            {
                _log.LogError("the descriptor store refused the FUSE descriptors of {Mountpoint}: that mount ends with this server", mount.Mountpoint);
            }
        }
    }

    /// <summary>
    /// `upgrade [BINARY]`: the next server (this binary, or <paramref name="binary"/>) takes over the live mount. This one
    /// finishes the requests in hand and leaves without unmounting; requests arriving meanwhile wait in the kernel's queue
    /// (or are resent) for the next one.
    /// </summary>
    public Errno HandOver(string? binary, out string message)
    {
        if (_store is not { } store)
        {
            message = $"upgrade needs the mount to be kept (restart mode: {RestartMode})";
            return Errno.EPERM;
        }

        if (binary != null && !IsTrustedExecutable(binary, out string why))
        {
            message = $"upgrade refused: {binary} {why}";
            return Errno.EINVAL;
        }

        if (Interlocked.Exchange(ref _handingOver, 1) != 0)
        {
            message = "an upgrade is already under way";
            return Errno.EINVAL;
        }

        if (binary != null)
        {
            store.ExecNext(binary);
        }

        message = $"handing over to {binary ?? "the same binary"}";
        var thread = new Thread(HandOverNow) { IsBackground = true, Name = "handover" };
        thread.Start();
        return Errno.OK;
    }

    private void HandOverNow()
    {
        // Let the control write that asked for this be answered first, then the container's requests in hand.
        WaitUntil(() => _controlServer?.HandlersIdle != false, TimeSpan.FromMilliseconds(100));
        _log.LogInformation("handing {Mountpoint} over to the next server", _config.Mountpoint);
        Security.WaitIdle(TimeSpan.FromSeconds(2)); // events, incidents and alerts of this server are out
        WaitUntil(() => _server?.HandlersIdle != false, TimeSpan.FromSeconds(2));
        Security.Resources.SaveQuotas(); // the next server starts from this ledger exactly (after a crash: its last save, ≤ 2 s old)
        Proxy.FlushJournal(); // forgotten nodes too: an upgrade leaks nothing
        LibC.ExitImmediately(HandOverExitCode); // no unmount, no flush of what the next server owns now
    }

    private static void WaitUntil(Func<bool> done, TimeSpan limit)
    {
        long end = Stopwatch.GetTimestamp() + (long)(limit.TotalSeconds * Stopwatch.Frequency);
        while (!done() && Stopwatch.GetTimestamp() < end)
        {
            Thread.Sleep(1);
        }
    }

    /// <summary>
    /// The binary an upgrade runs as root, now and at every later restart of the keeper: absolute, a regular file,
    /// executable, root's or ours, writable by nobody else, and so is every directory above it (no symlink, none another
    /// user's or writable by others, as the daemon's own paths; a sticky /tmp may be crossed). Otherwise whoever can
    /// rename in one of them could put another file at that path after the check.
    /// </summary>
    private static bool IsTrustedExecutable(string path, out string why)
    {
        why = "";
        if (!Path.IsPathFullyQualified(path))
        {
            why = "is not an absolute path";
            return false;
        }

        try
        {
            using SafeFd directory = TrustedPath.OpenDirectory(Path.GetDirectoryName(path) ?? "/", create: false);
        }
        catch (Exception e) when (e is UnsafePathException or IOException or ArgumentException)
        {
            why = $"lies where others could replace it ({e.Message})";
            return false;
        }

        if (!StatNoFollow(path, out StatX st) || (st.Mode & LibC.S_IFMT) != LibC.S_IFREG)
        {
            why = "is not a regular file";
            return false;
        }

        if (st.Uid != 0 && st.Uid != LibC.geteuid())
        {
            why = "belongs to another user";
            return false;
        }

        if ((st.Mode & 0x12) != 0 || (st.Mode & 0x40) == 0)
        {
            why = (st.Mode & 0x12) != 0 ? "is writable by group or others" : "is not executable";
            return false;
        }

        return true;
    }

    private static unsafe bool StatNoFollow(string path, out StatX st)
    {
        st = default;
        byte[] bytes = System.Text.Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = bytes)
        fixed (StatX* s = &st)
        {
            return LibC.statx(-100 /* AT_FDCWD */, p, LibC.AT_SYMLINK_NOFOLLOW, LibC.STATX_BASIC_STATS, s) == 0;
        }
    }

    private static byte[] Encode(FuseSessionParameters p)
    {
        byte[] b = new byte[SessionRecordSize];
        BinaryPrimitives.WriteUInt32LittleEndian(b, p.KernelMajor);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), p.KernelMinor);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(8), p.NegotiatedMinor);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(12), p.KernelFlags);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(20), p.ReplyFlags);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(28), p.MaxWrite);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(32), p.MaxReadahead);
        return b;
    }

    private static FuseSessionParameters Decode(ReadOnlySpan<byte> b) => new(
        BinaryPrimitives.ReadUInt32LittleEndian(b), BinaryPrimitives.ReadUInt32LittleEndian(b[4..]), BinaryPrimitives.ReadUInt32LittleEndian(b[8..]),
        BinaryPrimitives.ReadUInt64LittleEndian(b[12..]), BinaryPrimitives.ReadUInt64LittleEndian(b[20..]),
        BinaryPrimitives.ReadUInt32LittleEndian(b[28..]), BinaryPrimitives.ReadUInt32LittleEndian(b[32..]));
}
