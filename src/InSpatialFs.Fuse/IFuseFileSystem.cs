using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;

namespace InSpatialFs.Fuse;

/// <summary>
/// What the protocol server calls for each decoded request: one method per opcode, keyed by nodeid and
/// file handle, with no paths and no tree (go-fuse's RawFileSystem). The proxy implements it.
/// Every method returns an <see cref="Errno"/>; the server turns OK into the reply body and anything else
/// into an error reply. A method that throws becomes EIO plus one log line.
/// Never return ENOSYS for an operation that is implemented but refused: the kernel caches ENOSYS.
/// </summary>
public interface IFuseFileSystem
{
    /// <summary>Called once INIT has been answered, with what was negotiated, before any other request.</summary>
    void Initialized(FuseConnectionInfo connection);

    /// <summary>
    /// Called before each reply is written to the kernel, after the method that produced it: state the kernel will rely
    /// on once it has the reply (node ids, handles) is made durable here, in one write for the whole request.
    /// </summary>
    void BeforeReply()
    {
    }

    Errno Lookup(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, out FuseEntryOut entry);

    /// <summary>FORGET and each item of BATCH_FORGET. No reply is sent.</summary>
    void Forget(ulong nodeId, ulong lookupCount);

    /// <summary><paramref name="fh"/> is set when the kernel passed FUSE_GETATTR_FH, otherwise null.</summary>
    Errno GetAttr(FuseRequest request, ulong nodeId, ulong? fh, out FuseAttrOut attr);

    Errno SetAttr(FuseRequest request, ulong nodeId, in FuseSetattrIn change, out FuseAttrOut attr);

    Errno ReadLink(FuseRequest request, ulong nodeId, Span<byte> buffer, out int length);

    Errno Symlink(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, ReadOnlySpan<byte> target, out FuseEntryOut entry);

    Errno MkNod(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, uint mode, uint rdev, uint umask, out FuseEntryOut entry);

    Errno MkDir(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, uint mode, uint umask, out FuseEntryOut entry);

    Errno Unlink(FuseRequest request, ulong parent, ReadOnlySpan<byte> name);

    Errno RmDir(FuseRequest request, ulong parent, ReadOnlySpan<byte> name);

    /// <summary>RENAME has flags 0; RENAME2 passes its flags (NOREPLACE, EXCHANGE, WHITEOUT).</summary>
    Errno Rename(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, ulong newParent, ReadOnlySpan<byte> newName, uint flags);

    Errno Link(FuseRequest request, ulong nodeId, ulong newParent, ReadOnlySpan<byte> newName, out FuseEntryOut entry);

    /// <summary>flags are the open(2) flags as the kernel sends them (FMODE_EXEC 0x20 marks an exec); openFlags are
    /// fuse_open_in.open_flags (FUSE_OPEN_KILL_SUIDGID: an O_TRUNC by a caller without CAP_FSETID).</summary>
    Errno Open(FuseRequest request, ulong nodeId, int flags, uint openFlags, out FuseOpenOut open);

    /// <summary>Fill <paramref name="buffer"/> (sized to the requested length) from offset.</summary>
    Errno Read(FuseRequest request, ulong nodeId, ulong fh, long offset, Span<byte> buffer, out int bytesRead);

    Errno Write(FuseRequest request, ulong nodeId, ulong fh, long offset, ReadOnlySpan<byte> data, uint writeFlags, out int bytesWritten);

    Errno StatFs(FuseRequest request, ulong nodeId, out FuseKstatfs stat);

    Errno Release(FuseRequest request, ulong nodeId, ulong fh, int flags);

    Errno Fsync(FuseRequest request, ulong nodeId, ulong fh, bool dataOnly);

    Errno Flush(FuseRequest request, ulong nodeId, ulong fh);

    Errno SetXattr(FuseRequest request, ulong nodeId, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, int flags);

    /// <summary>An empty buffer asks for the size only (GETXATTR with size 0).</summary>
    Errno GetXattr(FuseRequest request, ulong nodeId, ReadOnlySpan<byte> name, Span<byte> buffer, out int size);

    Errno ListXattr(FuseRequest request, ulong nodeId, Span<byte> buffer, out int size);

    Errno RemoveXattr(FuseRequest request, ulong nodeId, ReadOnlySpan<byte> name);

    Errno OpenDir(FuseRequest request, ulong nodeId, int flags, out FuseOpenOut open);

    /// <summary>
    /// READDIR and READDIRPLUS. Add entries after cookie <paramref name="offset"/> until the writer is full.
    /// With <paramref name="plus"/>, each entry carries a full entry_out and counts as a LOOKUP (add a reference),
    /// except "." and "..", which must be added with <see cref="DirentWriter.TryAddPlus"/> and a zero entry.
    /// </summary>
    Errno ReadDir(FuseRequest request, ulong nodeId, ulong fh, long offset, bool plus, ref DirentWriter writer);

    Errno ReleaseDir(FuseRequest request, ulong nodeId, ulong fh);

    Errno FsyncDir(FuseRequest request, ulong nodeId, ulong fh, bool dataOnly);

    /// <summary>access(2) and chdir; mask is R_OK/W_OK/X_OK (or F_OK 0).</summary>
    Errno Access(FuseRequest request, ulong nodeId, int mask);

    Errno Create(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, int flags, uint mode, uint umask, out FuseEntryOut entry, out FuseOpenOut open);

    Errno TmpFile(FuseRequest request, ulong parent, int flags, uint mode, uint umask, out FuseEntryOut entry, out FuseOpenOut open);

    Errno Fallocate(FuseRequest request, ulong nodeId, ulong fh, int mode, long offset, long length);

    Errno Lseek(FuseRequest request, ulong nodeId, ulong fh, long offset, int whence, out long result);

    Errno CopyFileRange(FuseRequest request, ulong nodeIn, ulong fhIn, long offsetIn, ulong nodeOut, ulong fhOut, long offsetOut, long length, ulong flags, out long copied);
}

/// <summary>Registers host descriptors with the kernel for FUSE passthrough (FUSE_DEV_IOC_BACKING_OPEN/CLOSE).</summary>
public interface IBackingRegistrar
{
    /// <summary>Returns a backing id (&gt; 0) or an errno (EPERM, EINVAL, ENOTTY mean: passthrough unavailable).</summary>
    Errno Open(SafeFd fd, out int backingId);

    Errno Close(int backingId);
}

/// <summary>What INIT negotiated, handed to the filesystem once.</summary>
public sealed class FuseConnectionInfo
{
    public uint KernelMajor { get; init; }
    public uint KernelMinor { get; init; }
    /// <summary>The minor version we answered with (min of kernel's and ours).</summary>
    public uint NegotiatedMinor { get; init; }
    /// <summary>64-bit flags the kernel offered (flags | flags2 &lt;&lt; 32).</summary>
    public ulong KernelFlags { get; init; }
    /// <summary>64-bit flags we replied with.</summary>
    public ulong ReplyFlags { get; init; }
    public uint MaxWrite { get; init; }
    public uint MaxReadahead { get; init; }
    /// <summary>The kernel offered FUSE_PASSTHROUGH and we accepted it: <see cref="Backing"/> may work.</summary>
    public bool PassthroughEnabled { get; init; }
    /// <summary>Registers backing files on this connection (null when passthrough is not enabled).</summary>
    public IBackingRegistrar? Backing { get; init; }
    /// <summary>Sends invalidation notifications to the kernel for this connection.</summary>
    public IFuseNotifier? Notifier { get; init; }

    /// <summary>True when this server adopted the connection from an earlier server (no INIT was seen).</summary>
    public bool Adopted { get; init; }

    /// <summary>The kernel resends requests a dead server read but did not answer (FUSE_HAS_RESEND, 7.40).</summary>
    public bool CanResend => (KernelFlags & (ulong)FuseInitFlags.HasResend) != 0;

    /// <summary>What a later server needs to adopt this connection (<see cref="ProtocolServerOptions.Adopt"/>).</summary>
    public FuseSessionParameters Parameters => new(KernelMajor, KernelMinor, NegotiatedMinor, KernelFlags, ReplyFlags, MaxWrite, MaxReadahead);
}

/// <summary>
/// The outcome of INIT, which the kernel sends once per connection: kept so that a server started later on the same
/// connection (after a crash or for an upgrade) serves with exactly what was negotiated.
/// </summary>
public readonly record struct FuseSessionParameters(
    uint KernelMajor, uint KernelMinor, uint NegotiatedMinor, ulong KernelFlags, ulong ReplyFlags, uint MaxWrite, uint MaxReadahead);

/// <summary>Daemon-to-kernel notifications (unique = 0). Never call while holding a lock a handler needs.</summary>
public interface IFuseNotifier
{
    Errno InvalidateInode(ulong nodeId, long offset, long length);

    Errno InvalidateEntry(ulong parent, ReadOnlySpan<byte> name);

    Errno Delete(ulong parent, ulong child, ReadOnlySpan<byte> name);

    /// <summary>
    /// NOTIFY_INC_EPOCH (7.44, kernel 6.16): every cached dentry of the connection, and every lookup still in flight,
    /// is revalidated on its next use. Older kernels refuse the code (EINVAL); callers then rely on INVAL_ENTRY alone.
    /// </summary>
    Errno IncrementEpoch();
}
