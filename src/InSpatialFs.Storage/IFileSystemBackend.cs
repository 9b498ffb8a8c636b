using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;

namespace InSpatialFs.Storage;

/// <summary>The credentials of the process that made the request (from the FUSE in-header).</summary>
public readonly record struct Caller(uint Uid, uint Gid, uint Pid);

/// <summary>Receives directory entries; returns false when the reply buffer is full (stop, nothing lost).</summary>
public interface IDirectoryEntrySink
{
    /// <param name="name">Entry name bytes (no NUL).</param>
    /// <param name="ino">The backend's node id of the entry (0 when not known without a lookup).</param>
    /// <param name="mode">At least the S_IFMT type bits of the entry.</param>
    /// <param name="nextOffset">Opaque cookie meaning "the position after this entry"; never 0.</param>
    bool TryAdd(ReadOnlySpan<byte> name, ulong ino, uint mode, long nextOffset);
}

/// <summary>
/// One storage backend (memory, host, direct) as the proxy sees it. Nodes are named by the backend's own
/// 64-bit ids; <see cref="RootIno"/> is the backend's root. Names are raw bytes without NUL and are never
/// "", "." or ".." or contain '/' (the proxy checks). Every method returns an <see cref="Errno"/>; none throws
/// for an expected failure.
///
/// Node lifetime: the backend counts no kernel references. Calls that return an entry (Lookup, Create, TmpFile,
/// MkNod, MkDir, Symlink, Link) have no reference side effect; whoever keeps a node id past the call (the proxy's node
/// table, once per node it hands to the kernel) says so with <see cref="Retain"/> and gives it back with
/// <see cref="Release"/> when the node is really gone. A node must stay readable (GetAttr, and Read and Write through
/// its open files) while it is retained or has open files, even after unlink; a node neither retained nor open may be
/// dropped at any time (an unlinked one at once, one still named when the backend chooses), and its id is never reused.
///
/// Ownership: new nodes belong to <see cref="Caller"/> (uid, and gid unless the parent is setgid).
/// Permission bits are checked by the kernel (default_permissions); backends do not re-check them.
/// </summary>
public interface IFileSystemBackend : IDisposable
{
    /// <summary>"memory", "host" or "direct": shown in status and mount listings.</summary>
    string Kind { get; }

    ulong RootIno { get; }

    /// <summary>What node <paramref name="ino"/> is, independent of its names (<see cref="InodeIdentity.IsNone"/> when unknown).</summary>
    InodeIdentity IdentityOf(ulong ino);

    /// <summary>
    /// <see cref="IdentityOf"/> for the restart journal, with no system call: a host node a lookup made from a name has a
    /// file handle not proven yet to name its inode (see HostFileSystem.Lookup), and proving it for the journal would
    /// cost two system calls per new node. The successor compares a journaled identity with a proven one before it
    /// trusts the record, so an unproven one can only make it drop a node whose handle was wrong (stale here too).
    /// </summary>
    InodeIdentity JournaledIdentityOf(ulong ino) => IdentityOf(ino);

    Errno Lookup(ulong parent, ReadOnlySpan<byte> name, out FuseAttr attr);

    /// <summary>
    /// One more holder keeps node <paramref name="ino"/> alive. False when the backend has dropped it since the call
    /// that returned it (unlinked, or aged out while nobody held it): a lookup asks again.
    /// </summary>
    bool Retain(ulong ino);

    /// <summary>A holder gives its <see cref="Retain"/> back; with no holder and no open file the node may go.</summary>
    void Release(ulong ino);

    Errno GetAttr(ulong ino, out FuseAttr attr);

    /// <summary>Applies the changes set in <paramref name="change"/> (a truncate through change.File when given).</summary>
    Errno SetAttr(ulong ino, in AttrChange change, in Caller caller, out FuseAttr attr);

    Errno ReadLink(ulong ino, Span<byte> buffer, out int length);

    Errno Symlink(ulong parent, ReadOnlySpan<byte> name, ReadOnlySpan<byte> target, in Caller caller, out FuseAttr attr);

    /// <summary>Regular files, fifos, sockets and device nodes; <paramref name="mode"/> includes the S_IFMT type.</summary>
    Errno MkNod(ulong parent, ReadOnlySpan<byte> name, uint mode, uint rdev, in Caller caller, out FuseAttr attr);

    Errno MkDir(ulong parent, ReadOnlySpan<byte> name, uint mode, in Caller caller, out FuseAttr attr);

    Errno Unlink(ulong parent, ReadOnlySpan<byte> name);

    Errno RmDir(ulong parent, ReadOnlySpan<byte> name);

    /// <summary>flags: 0, RENAME_NOREPLACE or RENAME_EXCHANGE (RENAME_WHITEOUT gets EINVAL).</summary>
    Errno Rename(ulong parent, ReadOnlySpan<byte> name, ulong newParent, ReadOnlySpan<byte> newName, uint flags);

    Errno Link(ulong ino, ulong newParent, ReadOnlySpan<byte> newName, out FuseAttr attr);

    /// <summary>flags are open(2) flags; O_TRUNC must truncate (ATOMIC_O_TRUNC is negotiated).</summary>
    Errno Open(ulong ino, int flags, in Caller caller, out IOpenFile file);

    /// <summary>
    /// <paramref name="created"/>: this call made the file. False when the name already existed and, without O_EXCL,
    /// was opened as open(2) would (a creator the kernel did not see came first); rules then see a truncation, not a
    /// new file.
    /// </summary>
    Errno Create(ulong parent, ReadOnlySpan<byte> name, int flags, uint mode, in Caller caller, out FuseAttr attr, out IOpenFile file, out bool created);

    /// <summary>O_TMPFILE: an unnamed file in <paramref name="parent"/> (nlink 0 until linked).</summary>
    Errno TmpFile(ulong parent, int flags, uint mode, in Caller caller, out FuseAttr attr, out IOpenFile file);

    /// <summary>Both files are this backend's open files (EXDEV otherwise: the kernel then copies through READ and WRITE).</summary>
    Errno CopyFileRange(IOpenFile input, long offsetIn, IOpenFile output, long offsetOut, long length, out long copied);

    Errno StatFs(out FuseKstatfs stat);

    /// <summary>flags: 0, XATTR_CREATE (EEXIST) or XATTR_REPLACE (ENODATA).</summary>
    Errno SetXattr(ulong ino, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, int flags);

    /// <summary>An empty buffer asks for the size only; too small a buffer gives ERANGE; missing gives ENODATA.</summary>
    Errno GetXattr(ulong ino, ReadOnlySpan<byte> name, Span<byte> buffer, out int size);

    /// <summary>NUL-separated names; empty buffer asks for the size; too small gives ERANGE.</summary>
    Errno ListXattr(ulong ino, Span<byte> buffer, out int size);

    Errno RemoveXattr(ulong ino, ReadOnlySpan<byte> name);

    Errno OpenDir(ulong ino, out IOpenDirectory directory);
}
