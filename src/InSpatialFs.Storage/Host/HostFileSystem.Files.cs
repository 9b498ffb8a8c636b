using System.Buffers;
using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Text;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Posix;
using Microsoft.Extensions.Logging;
using static InSpatialFs.Interop.LibC;

namespace InSpatialFs.Storage.Host;

// Open files: each holds a real descriptor reopened from the node's O_PATH one (never by name), counted against
// MaxOpenHandles.
public sealed unsafe partial class HostFileSystem
{
    public Errno Open(ulong ino, int flags, in Caller caller, out IOpenFile file)
    {
        file = null!;
        if (ReadOnly && ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC) != 0)) return Errno.EROFS;
        if (!TryGetNode(ino, out HostNode? node)) return Errno.ENOENT;
        // FUSE never sends OPEN for fifos and devices; refusing them here means a confused or hostile request
        // cannot make the daemon block on a fifo or poke a device.
        if (node.Type == S_IFDIR) return Errno.EISDIR;
        if (node.Type != S_IFREG) return Errno.EACCES;
        if (!ReserveHandle()) return Errno.EMFILE;
        Errno e;
        int fd = -1;
        if (TryBorrowHeld(node, out FdLease l, out e))
        {
            if (e == Errno.OK)
            {
                using (l) e = ReopenNode(l.Fd, flags & ~OpenFlagsStripped, out fd);
            }
        }
        else
        {
            // No descriptor of the node is held (a file not opened for a while, its O_PATH one evicted): open the file
            // straight from its handle, one open_by_handle_at, instead of an O_PATH one (taking a cache slot, so closing
            // the oldest) and a reopen through /proc/self/fd. The handle names exactly this inode, as the O_PATH one did.
            e = OpenByHandle(node, flags & ~OpenFlagsStripped, out fd);
        }

        if (e != Errno.OK)
        {
            ReleaseHandleSlot();
            return e;
        }
#pragma warning disable CA2000 // the open file owns the descriptor from here
        return RegisterOpenFile(node, new SafeFd(fd), out file);
#pragma warning restore CA2000
    }

    public Errno Create(ulong parent, ReadOnlySpan<byte> name, int flags, uint mode, in Caller caller, out FuseAttr attr, out IOpenFile file, out bool created)
    {
        attr = default;
        file = null!;
        created = false;
        if (ReadOnly) return Errno.EROFS;
        Span<byte> nameZ = stackalloc byte[NameMax + 1];
        Errno e = CheckName(name, nameZ);
        if (e != Errno.OK) return e;
        if (!TryGetNode(parent, out HostNode? p)) return Errno.ENOENT;
        if (!ReserveHandle()) return Errno.EMFILE;
        LibC.EnsureThreadUmaskZero();
        e = Borrow(p, out FdLease pl);
        if (e != Errno.OK)
        {
            ReleaseHandleSlot();
            return e;
        }
        int fd;
        uint parentMode;
        using (pl)
        {
            e = ParentModeFor(pl.Fd, caller, out parentMode);
            // Always O_EXCL: the kernel sends CREATE only for a negative entry, and O_EXCL guarantees the file we
            // chown to the caller is the one we just made, never an existing host file.
            if (e == Errno.OK) e = OpenBeneath(pl.Fd, nameZ, (flags & ~OpenFlagsStripped) | O_CREAT | O_EXCL | O_NOFOLLOW, mode & 0xFFF, out fd);
            else fd = -1;
        }
        if (e != Errno.OK)
        {
            ReleaseHandleSlot();
            // Without O_EXCL a name that exists (a racing creator was first) is opened as open(2) would, and never
            // chowned: it is not ours. Keep in sync with MemoryFileSystem.Create.
            return e == Errno.EEXIST && (flags & O_EXCL) == 0 ? OpenExisting(parent, name, flags, caller, out attr, out file) : e;
        }
#pragma warning disable CA2000 // disposed on each failure below; on success the open file owns it
        var newFile = new SafeFd(fd);
#pragma warning restore CA2000
        e = TakeOwnership(fd, S_IFREG, mode & 0xFFF, caller, parentMode, null, out StatX owned, out bool ownedCurrent);
        if (e != Errno.OK && StatFd(fd, out StatX made) == Errno.OK)
        {
            RemoveUnowned(parent, nameZ[..(name.Length + 1)], made, S_IFREG);
        }
        if (e == Errno.OK) e = AdoptOpenFd(fd, pin: false, ownedCurrent ? &owned : null, out attr, out HostNode? node);
        else attr = default;
        if (e != Errno.OK)
        {
            newFile.Dispose();
            ReleaseHandleSlot();
            return e;
        }
        e = RegisterOpenFile(NodeOf(attr.Ino)!, newFile, out file);
        created = e == Errno.OK;
        return e;
    }

    private Errno OpenExisting(ulong parent, ReadOnlySpan<byte> name, int flags, in Caller caller, out FuseAttr attr, out IOpenFile file)
    {
        file = null!;
        Errno e = Lookup(parent, name, out attr);
        if (e != Errno.OK) return e;
        // Held through the open (an unheld node may age out between the two calls); with holdEntries the lookup's
        // hold does that and stays with the entry.
        if (!_holdEntries && !Retain(attr.Ino))
        {
            attr = default;
            return Errno.ENOENT;
        }
        e = (attr.Mode & S_IFMT) == S_IFDIR ? Errno.EISDIR : Open(attr.Ino, flags & ~(O_CREAT | O_EXCL), caller, out file);
        if (!_holdEntries) Release(attr.Ino); // an open file keeps the node from here; a failed open lets it go
        if (e != Errno.OK)
        {
            GiveBackEntry(attr.Ino);
            attr = default;
        }
        return e;
    }

    public Errno TmpFile(ulong parent, int flags, uint mode, in Caller caller, out FuseAttr attr, out IOpenFile file)
    {
        attr = default;
        file = null!;
        if (ReadOnly) return Errno.EROFS;
        if (!TryGetNode(parent, out HostNode? p)) return Errno.ENOENT;
        if (!ReserveHandle()) return Errno.EMFILE;
        LibC.EnsureThreadUmaskZero();
        Errno e = Borrow(p, out FdLease pl);
        int fd = -1;
        uint parentMode = 0;
        if (e == Errno.OK)
        {
            using (pl)
            {
                e = ParentModeFor(pl.Fd, caller, out parentMode);
                ReadOnlySpan<byte> dot = "."u8;
                Span<byte> dotZ = stackalloc byte[2];
                dot.CopyTo(dotZ);
                dotZ[1] = 0;
                int acc = (flags & O_ACCMODE) == O_RDONLY ? O_RDWR : flags & O_ACCMODE;
                if (e == Errno.OK) e = OpenBeneath(pl.Fd, dotZ, (flags & ~(OpenFlagsStripped | O_ACCMODE)) | acc | O_TMPFILE, mode & 0xFFF, out fd);
            }
        }
        if (e != Errno.OK)
        {
            ReleaseHandleSlot();
            return e;
        }
#pragma warning disable CA2000 // disposed on each failure below; on success the open file owns it
        var unnamed = new SafeFd(fd);
#pragma warning restore CA2000
        e = TakeOwnership(fd, S_IFREG, mode & 0xFFF, caller, parentMode, null, out _, out _);
        // An unnamed file cannot be reopened from a handle, so its node pins a descriptor.
        if (e == Errno.OK) e = AdoptOpenFd(fd, pin: true, null, out attr, out _);
        if (e != Errno.OK)
        {
            unnamed.Dispose();
            ReleaseHandleSlot();
            return e;
        }
        return RegisterOpenFile(NodeOf(attr.Ino)!, unnamed, out file);
    }

    private Errno RegisterOpenFile(HostNode node, SafeFd fd, out IOpenFile file)
    {
        var open = new HostOpenFile(this, node, fd);
        lock (_nodeLock)
        {
            node.OpenHandles++;
            if (node.Type == S_IFREG && node.OpenFd == null) node.OpenFd = fd;
        }
        _files[open] = 0;
        file = open;
        return Errno.OK;
    }

    private bool ReserveHandle()
    {
        if (Interlocked.Increment(ref _openHandleCount) <= MaxOpenHandles) return true;
        Interlocked.Decrement(ref _openHandleCount);
        if (!_handleCapLogged)
        {
            _handleCapLogged = true;
            HostLog.HandleCapReached(_logger, MaxOpenHandles);
        }
        return false;
    }

    private void ReleaseHandleSlot() => Interlocked.Decrement(ref _openHandleCount);

    /// <summary>Closes an open file's descriptor and gives back its slot; the node may go if nothing else holds it.</summary>
    internal bool ReleaseFile(HostOpenFile file)
    {
        if (!_files.TryRemove(file, out _)) return false;
        file.Fd.Dispose();
        ReleaseHandleSlot();
        lock (_nodeLock)
        {
            file.Node.OpenHandles--;
            if (file.Node.OpenFd == file.Fd) file.Node.OpenFd = null;
            DropIfUnusedLocked(file.Node);
        }
        return true;
    }

    public Errno CopyFileRange(IOpenFile input, long offsetIn, IOpenFile output, long offsetOut, long length, out long copied)
    {
        copied = 0;
        if (ReadOnly) return Errno.EROFS;
        if (input is not HostOpenFile fin || output is not HostOpenFile fout) return Errno.EXDEV;
        // Two layers of one overlay are two host backends: copy_file_range(2) between them is still one host call.
        if (!FdLease.TryBorrow(fin.Fd, out FdLease li)) return Errno.EBADF;
        using var inLease = li;
        if (!FdLease.TryBorrow(fout.Fd, out FdLease lo)) return Errno.EBADF;
        using var outLease = lo;
        long oi = offsetIn, oo = offsetOut;
        nint n = copy_file_range(li.Fd, &oi, lo.Fd, &oo, (nint)Math.Min(length, int.MaxValue), 0);
        if (n < 0) return ErrnoExtensions.LastPInvoke();
        copied = n;
        return Errno.OK;
    }

    public Errno StatFs(out FuseKstatfs stat)
    {
        stat = default;
        StatFsBuf buf;
        if (fstatfs(_rootFd.Fd, &buf) != 0) return ErrnoExtensions.LastPInvoke();
        stat.Blocks = buf.Blocks;
        stat.Bfree = buf.Bfree;
        stat.Bavail = buf.Bavail;
        stat.Files = buf.Files;
        stat.Ffree = buf.Ffree;
        stat.Bsize = (uint)buf.Bsize;
        stat.NameLen = (uint)buf.NameLen;
        stat.Frsize = (uint)buf.Frsize;
        return Errno.OK;
    }
}
