using System.Diagnostics;
using InSpatialFs.Fuse;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Proxy.Nodes;
using InSpatialFs.Security;
using InSpatialFs.Security.Events;
using InSpatialFs.Storage;
using InSpatialFs.Storage.Direct;
using InSpatialFs.Storage.Memory;
using InSpatialFs.Storage.Mounts;
using InSpatialFs.Storage.Posix;

namespace InSpatialFs.Proxy;

// Attributes, opening and releasing files (their data: SecureProxy.Data.cs).
public sealed partial class SecureProxy
{
    public Errno GetAttr(FuseRequest request, ulong nodeId, ulong? fh, out FuseAttrOut attr)
    {
        attr = default;
        Interlocked.Increment(ref _getAttrRequests);
        if (!_nodes.TryGet(nodeId, out ProxyNode node))
        {
            return UnknownNode;
        }

        Errno err = BackendOf(node).GetAttr(node.Ino, out FuseAttr a);
        if (err == Errno.OK)
        {
            FillAttr(node, ref a, out attr);
        }

        return err;
    }

    public Errno SetAttr(FuseRequest request, ulong nodeId, in FuseSetattrIn change, out FuseAttrOut attr)
    {
        attr = default;
        if (!_nodes.TryGet(nodeId, out ProxyNode node))
        {
            return UnknownNode;
        }

        string path = _nodes.PathOf(node);
        var valid = (FattrFlags)change.Valid;
        FsOp op = (valid & FattrFlags.Mode) != 0 ? FsOp.Chmod
            : (valid & (FattrFlags.Uid | FattrFlags.Gid)) != 0 ? FsOp.Chown
            : (valid & FattrFlags.Size) != 0 ? FsOp.Truncate
            : FsOp.Utimens;
        FsEvent e = NewEvent(request, op, node);
        e.Mode = change.Mode;
        e.Size = (long)change.Size;
        e.Flags = (int)change.Valid;
        Errno err = Admit(request, e, _mounts[node.Mount], out Verdict verdict);
        if (err != Errno.OK)
        {
            return err;
        }

        // chown and truncate in the same call (rare) are decided too: each part is a write-class op.
        if (op == FsOp.Chmod && (valid & (FattrFlags.Uid | FattrFlags.Gid | FattrFlags.Size)) != 0)
        {
            FsEvent extra = NewEvent(request, (valid & (FattrFlags.Uid | FattrFlags.Gid)) != 0 ? FsOp.Chown : FsOp.Truncate, path);
            if ((err = Admit(request, extra, _mounts[node.Mount], out _)) != Errno.OK)
            {
                return err;
            }
        }

        // A size change allocates no blocks (a longer file is sparse), but a shorter one frees some: settled after.
        QuotaHold quota = default;
        if ((valid & FattrFlags.Size) != 0 && (err = BeginGrowth(node, -1, 0, out quota)) != Errno.OK)
        {
            return Complete(e, err, Stopwatch.GetTimestamp());
        }

        long started = Stopwatch.GetTimestamp();
        AttrChange backendChange = ToAttrChange(change, (valid & FattrFlags.Fh) != 0 && _handles.TryGet(change.Fh, out ProxyHandle handle) ? handle.File : null);
        if (verdict.DropSetId && op == FsOp.Truncate)
        {
            backendChange = backendChange with { KillSetId = true }; // see Verdict.DropSetId
        }

        FuseAttr a = default;
        if ((valid & FattrFlags.Mode) != 0 && WriteKillsSetId(change.Mode) && OffersPassthrough(_mounts[node.Mount]))
        {
            // Writes through an open passthrough handle would keep the bits: no set-id chmod while one is open.
            lock (_ioModeLock)
            {
                err = node.PassthroughWriters > 0 ? Errno.ETXTBSY : BackendOf(node).SetAttr(node.Ino, backendChange, CallerOf(request), out a);
            }
        }
        else
        {
            err = BackendOf(node).SetAttr(node.Ino, backendChange, CallerOf(request), out a);
        }

        EndGrowth(node, quota);
        if (err == Errno.OK)
        {
            FillAttr(node, ref a, out attr);
        }

        return Complete(e, err, started);
    }

    /// <summary>The wire SETATTR as the typed change set backends take (FATTR_LOCKOWNER only says who asked: dropped).</summary>
    private static AttrChange ToAttrChange(in FuseSetattrIn change, IOpenFile? file)
    {
        var valid = (FattrFlags)change.Valid;
        return new AttrChange
        {
            Mode = (valid & FattrFlags.Mode) != 0 ? change.Mode : null,
            Uid = (valid & FattrFlags.Uid) != 0 ? change.Uid : null,
            Gid = (valid & FattrFlags.Gid) != 0 ? change.Gid : null,
            Size = (valid & FattrFlags.Size) != 0 ? change.Size : null,
            Atime = (valid & FattrFlags.AtimeNow) != 0 ? TimeChange.AtNow
                : (valid & FattrFlags.Atime) != 0 ? new TimeChange((long)change.Atime, change.AtimeNsec) : null,
            Mtime = (valid & FattrFlags.MtimeNow) != 0 ? TimeChange.AtNow
                : (valid & FattrFlags.Mtime) != 0 ? new TimeChange((long)change.Mtime, change.MtimeNsec) : null,
            Ctime = (valid & FattrFlags.Ctime) != 0 ? new TimeChange((long)change.Ctime, change.CtimeNsec) : null,
            KillSetId = (valid & FattrFlags.KillSuidGid) != 0,
            File = file,
        };
    }

    public Errno ReadLink(FuseRequest request, ulong nodeId, Span<byte> buffer, out int length)
    {
        length = 0;
        if (!_nodes.TryGet(nodeId, out ProxyNode node))
        {
            return UnknownNode;
        }

        // Read first: the decision needs where the link leads (its chain, followed inside the namespace).
        long started = Stopwatch.GetTimestamp();
        Errno err = BackendOf(node).ReadLink(node.Ino, buffer, out length);
        FsEvent e = NewEvent(request, FsOp.ReadLink, node);
        if (err == Errno.OK)
        {
            e.LinkTarget = Decode(buffer[..length]);
            string path = e.Path;
            e.LinkResolved = ResolveSymlinkTarget(path[..Math.Max(1, path.LastIndexOf('/'))], e.LinkTarget) ?? "/..";
        }

        Errno denied = Admit(request, e, _mounts[node.Mount], out _);
        if (denied != Errno.OK)
        {
            length = 0;
            return denied;
        }

        return Complete(e, err, started);
    }

    public Errno Open(FuseRequest request, ulong nodeId, int flags, uint openFlags, out FuseOpenOut open)
    {
        open = default;
        if (!_nodes.TryGet(nodeId, out ProxyNode node))
        {
            return UnknownNode;
        }

        long generation = CacheGeneration; // before the decision: a reload meanwhile makes the first READ decide again
        FsEvent e = NewEvent(request, FsOp.Open, node);
        e.Flags = flags;
        e.IsWrite = (flags & LibC.O_ACCMODE) != LibC.O_RDONLY || (flags & LibC.O_TRUNC) != 0;
        e.IsExec = (flags & LibC.FMODE_EXEC) != 0;
        Errno err = Admit(request, e, _mounts[node.Mount], out Verdict verdict);
        if (err != Errno.OK)
        {
            return err;
        }

        if (!TryCountOpen(request, out bool counted))
        {
            return Complete(e, Errno.EMFILE, Stopwatch.GetTimestamp());
        }

        long started = Stopwatch.GetTimestamp();
        err = BackendOf(node).Open(node.Ino, flags & ~LibC.FMODE_EXEC, CallerOf(request), out IOpenFile file);
        if (err == Errno.OK && (((openFlags & FuseConstants.OpenKillSuidgid) != 0 && (flags & LibC.O_TRUNC) != 0) || verdict.DropSetId))
        {
            // The backend truncated as the daemon, which keeps the bits; and a container member's open for writing drops
            // them at once under refuse_setuid (Verdict.DropSetId), before any write could land, whatever its capabilities.
            KillSetIdBits(node, CallerOf(request));
        }

        if (err == Errno.OK)
        {
            err = Opened(node, file, KeepCacheIfFixed(node, flags, file.OpenFlags), flags, DirectForWrite(node, e), counted, generation, out open);
        }

        if (err != Errno.OK)
        {
            UncountOpen(counted);
        }

        return Complete(e, err, started);
    }

    /// <summary>
    /// A write through kernel passthrough runs with the daemon's credentials, so the kernel would not drop the
    /// set-id bits of a setuid/setgid file that a caller without CAP_FSETID modifies, container root included. Such
    /// writes stay mediated, whoever the caller, where the kernel flags them (FUSE_WRITE_KILL_SUIDGID) and
    /// <see cref="KillSetIdBits"/> drops the bits as a local filesystem would.
    /// </summary>
    private Decision DirectForWrite(ProxyNode node, FsEvent e)
    {
        if (e.Decision != Decision.AllowDirect || !e.IsWrite)
        {
            return e.Decision;
        }

        if (QuotaNeedsMediatedWrites(node))
        {
            return Decision.Allow;
        }

        return e.Decision; // set-id files: checked in Opened, under the io-mode lock
    }

    private bool HasSetIdBits(ProxyNode node) => BackendOf(node).GetAttr(node.Ino, out FuseAttr attr) != Errno.OK || WriteKillsSetId(attr.Mode);

    /// <summary>Whether a write by a caller without CAP_FSETID would drop bits of <paramref name="mode"/> (<see cref="SetIdBits.ToClear"/>).</summary>
    private static bool WriteKillsSetId(uint mode) => SetIdBits.ToClear(mode) != 0;

    /// <summary>
    /// Turns a backend open into the kernel's open_out: our own fh, and — when the mount is direct, the
    /// policy said AllowDirect and the backend offered a host descriptor — a passthrough backing id, after
    /// which the kernel reads and writes the host file without asking us.
    /// The kernel keeps one io mode per inode and fails the user's open() with EIO when an answer breaks it
    /// (protocol reference §5): while a file is open in passthrough every further open must be passthrough too,
    /// and while it is open through the daemon (an exec open, an O_TMPFILE, a write the level keeps mediated)
    /// no open may be passthrough. So a node open through the daemon keeps later opens proxied, and a node in
    /// passthrough takes later read-only opens into passthrough (their policy check is the OPEN itself); a write
    /// that the level wants mediated cannot join and gets ETXTBSY, as writing a running executable does.
    /// </summary>
    /// <param name="decidedAt">The cache generation sampled before the open was decided (see <see cref="ProxyHandle.ReadsDecidedAt"/>).</param>
    private Errno Opened(ProxyNode node, IOpenFile file, FopenFlags openFlags, int flags, Decision decision, bool counted, long decidedAt, out FuseOpenOut open)
    {
        open = default;
        var handle = new ProxyHandle(node, file, flags) { CountedOpen = counted, ReadsDecidedAt = decidedAt };
        // The kernel keeps its own reference to a registered file, so our descriptor is closed either way.
        bool mayPassthrough = OffersPassthrough(_mounts[node.Mount]) && _passthrough != null;
        using (SafeFd? passthroughFd = mayPassthrough ? file.DuplicatePassthroughFd() : null)
        {
            if (passthroughFd != null)
            {
                lock (_ioModeLock)
                {
                    bool readOnly = (flags & LibC.O_ACCMODE) == LibC.O_RDONLY && (flags & LibC.O_TRUNC) == 0;
                    if (!readOnly && decision == Decision.AllowDirect && HasSetIdBits(node))
                    {
                        decision = Decision.Allow; // checked under the lock a set-id chmod also takes (SetAttr)
                    }

                    bool wantPassthrough = node.CachedOpens == 0
                        && (decision == Decision.AllowDirect || (node.PassthroughOpens > 0 && readOnly));
                    if (!wantPassthrough && node.PassthroughOpens > 0)
                    {
                        file.Release();
                        return Errno.ETXTBSY;
                    }

                    if (wantPassthrough && _passthrough!.Acquire(PassthroughKey(node), passthroughFd, out int backingId) == Errno.OK)
                    {
                        handle.BackingId = backingId;
                        node.PassthroughOpens++;
                        if (!readOnly)
                        {
                            handle.CountedPassthroughWriter = true;
                            node.PassthroughWriters++;
                        }

                        openFlags |= FopenFlags.Passthrough;
                        openFlags &= ~(FopenFlags.DirectIo | FopenFlags.KeepCache);
                    }
                    else
                    {
                        handle.CountedCached = true;
                        node.CachedOpens++;
                    }
                }
            }
        }

        Interlocked.Increment(ref node.OpenFiles);
        ulong fh = _handles.Add(handle);
        open = new FuseOpenOut { Fh = fh, OpenFlags = openFlags, BackingId = handle.BackingId };
        return Errno.OK;
    }

    private static ulong PassthroughKey(ProxyNode node) => node.NodeId;

    /// <summary>
    /// Mounts whose files may be served by kernel passthrough: DirectFS mounts, and memory mounts whose file data is a
    /// file in the backend's private tmpfs (the kernel then enforces the size as ENOSPC, so nothing is lost by not
    /// seeing the writes; a mount with a byte quota still keeps writes mediated, see DirectForWrite).
    /// </summary>
    private static bool OffersPassthrough(MountEntry mount)
        => mount.Direct || (mount.Kind == MountKind.Memory && mount.Backend is MemoryFileSystem { KernelData: true });

    public Errno Release(FuseRequest request, ulong nodeId, ulong fh, int flags)
    {
        if (!_handles.TryGet(fh, out ProxyHandle handle) || handle.File is not { } file || !_handles.TryRemove(fh, out _))
        {
            return Errno.EBADF;
        }

        Errno err = file.Release();
        if (handle.BackingId != 0 || handle.CountedCached)
        {
            lock (_ioModeLock)
            {
                if (handle.BackingId != 0)
                {
                    handle.Node.PassthroughOpens--;
                    if (handle.CountedPassthroughWriter)
                    {
                        handle.Node.PassthroughWriters--;
                    }

                    _passthrough?.Release(PassthroughKey(handle.Node));
                }
                else
                {
                    handle.Node.CachedOpens--;
                }
            }
        }

        UncountOpen(handle.CountedOpen);

        int stillOpen = handle.IsDirectory ? 1 : Interlocked.Decrement(ref handle.Node.OpenFiles);
        if (_quotas[handle.Node.Mount] is not null && stillOpen == 0
            && BackendOf(handle.Node).GetAttr(handle.Node.Ino, out FuseAttr left) == Errno.OK && left.Nlink == 0)
        {
            // The last open file of an O_TMPFILE never linked, or of a file unlinked while open: its blocks go now.
            FreedObject(handle.Node.Mount, IdentityOf(handle.Node));
        }

        FsEvent e = NewEvent(request, FsOp.Release, handle.Node);
        e.Flags = handle.Flags;
        e.IsWrite = handle.BytesWritten > 0;
        e.Size = handle.BytesRead + handle.BytesWritten;
        e.Result = (int)err;
        _gate.Record(e);
        return err;
    }

    public Errno StatFs(FuseRequest request, ulong nodeId, out FuseKstatfs stat)
    {
        stat = default;
        ProxyNode node = _nodes.TryGet(nodeId, out ProxyNode found) ? found : _nodes.Root;
        return BackendOf(node).StatFs(out stat);
    }

    public Errno Access(FuseRequest request, ulong nodeId, int mask)
    {
        if (!_nodes.TryGet(nodeId, out ProxyNode node))
        {
            return UnknownNode;
        }

        FsEvent e = NewEvent(request, FsOp.Access, node);
        e.Flags = mask;
        e.IsWrite = (mask & 2) != 0; // W_OK: answer as a write would be answered (EROFS on read-only paths)
        Errno err = Admit(request, e, _mounts[node.Mount], out _);
        if (err != Errno.OK)
        {
            return err;
        }

        // Mode bits are the kernel's business (default_permissions); existence is ours.
        return BackendOf(node).GetAttr(node.Ino, out _);
    }

    /// <summary>resources.open_files: false means EMFILE; <paramref name="counted"/> says whether RELEASE must give it back.</summary>
    private bool TryCountOpen(FuseRequest request, out bool counted)
    {
        OpenFileCharge charge = _gate.TryOpenFile(request.Pid);
        counted = charge == OpenFileCharge.Counted;
        return charge != OpenFileCharge.Refused;
    }

    private void UncountOpen(bool counted)
    {
        if (counted)
        {
            _gate.FileClosed();
        }
    }
}
