using InSpatialFs.Fuse;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;

namespace InSpatialFs.TestKit;

/// <summary>
/// A test file system to derive from: every operation answers ENOSYS (so tests override only what they serve),
/// FORGET and Initialized do nothing. Product code must not do this: the kernel caches ENOSYS.
/// </summary>
public abstract class FuseFileSystemBase : IFuseFileSystem
{
    public virtual void Initialized(FuseConnectionInfo connection)
    {
    }

    public virtual Errno Lookup(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, out FuseEntryOut entry)
    {
        entry = default;
        return Errno.ENOSYS;
    }

    public virtual void Forget(ulong nodeId, ulong lookupCount)
    {
    }

    public virtual Errno GetAttr(FuseRequest request, ulong nodeId, ulong? fh, out FuseAttrOut attr)
    {
        attr = default;
        return Errno.ENOSYS;
    }

    public virtual Errno SetAttr(FuseRequest request, ulong nodeId, in FuseSetattrIn change, out FuseAttrOut attr)
    {
        attr = default;
        return Errno.ENOSYS;
    }

    public virtual Errno ReadLink(FuseRequest request, ulong nodeId, Span<byte> buffer, out int length)
    {
        length = default;
        return Errno.ENOSYS;
    }

    public virtual Errno Symlink(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, ReadOnlySpan<byte> target, out FuseEntryOut entry)
    {
        entry = default;
        return Errno.ENOSYS;
    }

    public virtual Errno MkNod(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, uint mode, uint rdev, uint umask, out FuseEntryOut entry)
    {
        entry = default;
        return Errno.ENOSYS;
    }

    public virtual Errno MkDir(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, uint mode, uint umask, out FuseEntryOut entry)
    {
        entry = default;
        return Errno.ENOSYS;
    }

    public virtual Errno Unlink(FuseRequest request, ulong parent, ReadOnlySpan<byte> name)
    {
        return Errno.ENOSYS;
    }

    public virtual Errno RmDir(FuseRequest request, ulong parent, ReadOnlySpan<byte> name)
    {
        return Errno.ENOSYS;
    }

    public virtual Errno Rename(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, ulong newParent, ReadOnlySpan<byte> newName, uint flags)
    {
        return Errno.ENOSYS;
    }

    public virtual Errno Link(FuseRequest request, ulong nodeId, ulong newParent, ReadOnlySpan<byte> newName, out FuseEntryOut entry)
    {
        entry = default;
        return Errno.ENOSYS;
    }

    public virtual Errno Open(FuseRequest request, ulong nodeId, int flags, uint openFlags, out FuseOpenOut open)
    {
        open = default;
        return Errno.ENOSYS;
    }

    public virtual Errno Read(FuseRequest request, ulong nodeId, ulong fh, long offset, Span<byte> buffer, out int bytesRead)
    {
        bytesRead = default;
        return Errno.ENOSYS;
    }

    public virtual Errno Write(FuseRequest request, ulong nodeId, ulong fh, long offset, ReadOnlySpan<byte> data, uint writeFlags, out int bytesWritten)
    {
        bytesWritten = default;
        return Errno.ENOSYS;
    }

    public virtual Errno StatFs(FuseRequest request, ulong nodeId, out FuseKstatfs stat)
    {
        stat = default;
        return Errno.ENOSYS;
    }

    public virtual Errno Release(FuseRequest request, ulong nodeId, ulong fh, int flags)
    {
        return Errno.ENOSYS;
    }

    public virtual Errno Fsync(FuseRequest request, ulong nodeId, ulong fh, bool dataOnly)
    {
        return Errno.ENOSYS;
    }

    public virtual Errno Flush(FuseRequest request, ulong nodeId, ulong fh)
    {
        return Errno.ENOSYS;
    }

    public virtual Errno SetXattr(FuseRequest request, ulong nodeId, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, int flags)
    {
        return Errno.ENOSYS;
    }

    public virtual Errno GetXattr(FuseRequest request, ulong nodeId, ReadOnlySpan<byte> name, Span<byte> buffer, out int size)
    {
        size = default;
        return Errno.ENOSYS;
    }

    public virtual Errno ListXattr(FuseRequest request, ulong nodeId, Span<byte> buffer, out int size)
    {
        size = default;
        return Errno.ENOSYS;
    }

    public virtual Errno RemoveXattr(FuseRequest request, ulong nodeId, ReadOnlySpan<byte> name)
    {
        return Errno.ENOSYS;
    }

    public virtual Errno OpenDir(FuseRequest request, ulong nodeId, int flags, out FuseOpenOut open)
    {
        open = default;
        return Errno.ENOSYS;
    }

    public virtual Errno ReadDir(FuseRequest request, ulong nodeId, ulong fh, long offset, bool plus, ref DirentWriter writer)
    {
        return Errno.ENOSYS;
    }

    public virtual Errno ReleaseDir(FuseRequest request, ulong nodeId, ulong fh)
    {
        return Errno.ENOSYS;
    }

    public virtual Errno FsyncDir(FuseRequest request, ulong nodeId, ulong fh, bool dataOnly)
    {
        return Errno.ENOSYS;
    }

    public virtual Errno Access(FuseRequest request, ulong nodeId, int mask)
    {
        return Errno.ENOSYS;
    }

    public virtual Errno Create(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, int flags, uint mode, uint umask, out FuseEntryOut entry, out FuseOpenOut open)
    {
        entry = default;
        open = default;
        return Errno.ENOSYS;
    }

    public virtual Errno TmpFile(FuseRequest request, ulong parent, int flags, uint mode, uint umask, out FuseEntryOut entry, out FuseOpenOut open)
    {
        entry = default;
        open = default;
        return Errno.ENOSYS;
    }

    public virtual Errno Fallocate(FuseRequest request, ulong nodeId, ulong fh, int mode, long offset, long length)
    {
        return Errno.ENOSYS;
    }

    public virtual Errno Lseek(FuseRequest request, ulong nodeId, ulong fh, long offset, int whence, out long result)
    {
        result = default;
        return Errno.ENOSYS;
    }

    public virtual Errno CopyFileRange(FuseRequest request, ulong nodeIn, ulong fhIn, long offsetIn, ulong nodeOut, ulong fhOut, long offsetOut, long length, ulong flags, out long copied)
    {
        copied = default;
        return Errno.ENOSYS;
    }
}
