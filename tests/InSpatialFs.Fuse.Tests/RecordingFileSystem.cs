using System.Collections.Concurrent;
using System.Text;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;

namespace InSpatialFs.Fuse.Tests;

/// <summary>
/// Records every call as one readable line and answers with fixed, recognisable values, so a test can check both
/// what the server decoded and what it encoded.
/// </summary>
internal class RecordingFileSystem : IFuseFileSystem
{
    public const ulong LookupNode = 100;
    public const ulong OpenFh = 77;
    public static readonly byte[] FileData = "hello, fuse"u8.ToArray();

    public ConcurrentQueue<string> Calls { get; } = new();

    public FuseConnectionInfo? Connection { get; private set; }

    /// <summary>Throws from every handler whose call line starts with this (to test the EIO path).</summary>
    public string? ThrowOn { get; set; }

    public static FuseEntryOut Entry(ulong node, uint mode = 0x81A4) => new()
    {
        NodeId = node,
        Generation = 3,
        EntryValid = 1,
        AttrValid = 2,
        Attr = new FuseAttr { Ino = node + 1000, Mode = mode, Nlink = 1, Size = 11 },
    };

    public static FuseAttrOut Attr(ulong node) => new() { AttrValid = 5, Attr = new FuseAttr { Ino = node + 1000, Mode = 0x81A4, Nlink = 1, Size = 11 } };

    protected void Record(string line)
    {
        Calls.Enqueue(line);
        if (ThrowOn is not null && line.StartsWith(ThrowOn, StringComparison.Ordinal))
        {
            throw new InvalidOperationException("handler failure for a test: " + line);
        }
    }

    protected static string S(ReadOnlySpan<byte> bytes) => Encoding.UTF8.GetString(bytes);

    public virtual void Initialized(FuseConnectionInfo connection)
    {
        Connection = connection;
        Record("Initialized");
    }

    public virtual Errno Lookup(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, out FuseEntryOut entry)
    {
        Record($"Lookup {parent} {S(name)} uid={request.Uid} gid={request.Gid} pid={request.Pid}");
        entry = Entry(LookupNode);
        return name.SequenceEqual("missing"u8) ? Errno.ENOENT : Errno.OK;
    }

    public void Forget(ulong nodeId, ulong lookupCount) => Record($"Forget {nodeId} {lookupCount}");

    public Errno GetAttr(FuseRequest request, ulong nodeId, ulong? fh, out FuseAttrOut attr)
    {
        Record($"GetAttr {nodeId} fh={(fh.HasValue ? fh.Value.ToString(System.Globalization.CultureInfo.InvariantCulture) : "none")}");
        attr = Attr(nodeId);
        return Errno.OK;
    }

    public Errno SetAttr(FuseRequest request, ulong nodeId, in FuseSetattrIn change, out FuseAttrOut attr)
    {
        Record($"SetAttr {nodeId} valid={change.Valid} size={change.Size} mode={change.Mode:x}");
        attr = Attr(nodeId);
        attr.Attr.Size = change.Size;
        return Errno.OK;
    }

    public Errno ReadLink(FuseRequest request, ulong nodeId, Span<byte> buffer, out int length)
    {
        Record($"ReadLink {nodeId} room={buffer.Length}");
        "../target"u8.CopyTo(buffer);
        length = 9;
        return Errno.OK;
    }

    public Errno Symlink(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, ReadOnlySpan<byte> target, out FuseEntryOut entry)
    {
        Record($"Symlink {parent} {S(name)} -> {S(target)}");
        entry = Entry(LookupNode, 0xA1FF);
        return Errno.OK;
    }

    public Errno MkNod(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, uint mode, uint rdev, uint umask, out FuseEntryOut entry)
    {
        Record($"MkNod {parent} {S(name)} mode={mode:x} rdev={rdev} umask={umask:x}");
        entry = Entry(LookupNode, mode);
        return Errno.OK;
    }

    public Errno MkDir(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, uint mode, uint umask, out FuseEntryOut entry)
    {
        Record($"MkDir {parent} {S(name)} mode={mode:x} umask={umask:x}");
        entry = Entry(LookupNode, 0x41ED);
        return Errno.OK;
    }

    public Errno Unlink(FuseRequest request, ulong parent, ReadOnlySpan<byte> name)
    {
        Record($"Unlink {parent} {S(name)}");
        return Errno.OK;
    }

    public Errno RmDir(FuseRequest request, ulong parent, ReadOnlySpan<byte> name)
    {
        Record($"RmDir {parent} {S(name)}");
        return Errno.ENOTEMPTY;
    }

    public Errno Rename(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, ulong newParent, ReadOnlySpan<byte> newName, uint flags)
    {
        Record($"Rename {parent} {S(name)} -> {newParent} {S(newName)} flags={flags}");
        return Errno.OK;
    }

    public Errno Link(FuseRequest request, ulong nodeId, ulong newParent, ReadOnlySpan<byte> newName, out FuseEntryOut entry)
    {
        Record($"Link {nodeId} -> {newParent} {S(newName)}");
        entry = Entry(nodeId);
        return Errno.OK;
    }

    public Errno Open(FuseRequest request, ulong nodeId, int flags, uint openFlags, out FuseOpenOut open)
    {
        Record($"Open {nodeId} flags={flags:x}");
        open = new FuseOpenOut { Fh = OpenFh, OpenFlags = FopenFlags.KeepCache };
        return Errno.OK;
    }

    public virtual Errno Read(FuseRequest request, ulong nodeId, ulong fh, long offset, Span<byte> buffer, out int bytesRead)
    {
        Record($"Read {nodeId} fh={fh} off={offset} room={buffer.Length}");
        ReadOnlySpan<byte> rest = offset < FileData.Length ? FileData.AsSpan((int)offset) : default;
        bytesRead = Math.Min(rest.Length, buffer.Length);
        rest[..bytesRead].CopyTo(buffer);
        return Errno.OK;
    }

    public Errno Write(FuseRequest request, ulong nodeId, ulong fh, long offset, ReadOnlySpan<byte> data, uint writeFlags, out int bytesWritten)
    {
        Record($"Write {nodeId} fh={fh} off={offset} flags={writeFlags} data={S(data)}");
        bytesWritten = data.Length;
        return Errno.OK;
    }

    public Errno StatFs(FuseRequest request, ulong nodeId, out FuseKstatfs stat)
    {
        Record($"StatFs {nodeId}");
        stat = new FuseKstatfs { Blocks = 1000, Bfree = 400, Bavail = 300, Files = 50, Ffree = 20, Bsize = 4096, NameLen = 255, Frsize = 4096 };
        return Errno.OK;
    }

    public Errno Release(FuseRequest request, ulong nodeId, ulong fh, int flags)
    {
        Record($"Release {nodeId} fh={fh} flags={flags:x}");
        return Errno.OK;
    }

    public Errno Fsync(FuseRequest request, ulong nodeId, ulong fh, bool dataOnly)
    {
        Record($"Fsync {nodeId} fh={fh} dataOnly={dataOnly}");
        return Errno.OK;
    }

    public Errno Flush(FuseRequest request, ulong nodeId, ulong fh)
    {
        Record($"Flush {nodeId} fh={fh}");
        return Errno.OK;
    }

    public Errno SetXattr(FuseRequest request, ulong nodeId, ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, int flags)
    {
        Record($"SetXattr {nodeId} {S(name)}={S(value)} flags={flags}");
        return Errno.OK;
    }

    public Errno GetXattr(FuseRequest request, ulong nodeId, ReadOnlySpan<byte> name, Span<byte> buffer, out int size)
    {
        Record($"GetXattr {nodeId} {S(name)} room={buffer.Length}");
        ReadOnlySpan<byte> value = "value"u8;
        size = value.Length;
        if (buffer.Length >= value.Length)
        {
            value.CopyTo(buffer);
        }

        return Errno.OK;
    }

    public Errno ListXattr(FuseRequest request, ulong nodeId, Span<byte> buffer, out int size)
    {
        Record($"ListXattr {nodeId} room={buffer.Length}");
        ReadOnlySpan<byte> names = "user.a\0user.b\0"u8;
        size = names.Length;
        if (buffer.Length >= names.Length)
        {
            names.CopyTo(buffer);
        }

        return Errno.OK;
    }

    public Errno RemoveXattr(FuseRequest request, ulong nodeId, ReadOnlySpan<byte> name)
    {
        Record($"RemoveXattr {nodeId} {S(name)}");
        return Errno.ENODATA;
    }

    public Errno OpenDir(FuseRequest request, ulong nodeId, int flags, out FuseOpenOut open)
    {
        Record($"OpenDir {nodeId} flags={flags:x}");
        open = new FuseOpenOut { Fh = OpenFh + 1, OpenFlags = FopenFlags.CacheDir };
        return Errno.OK;
    }

    public Errno ReadDir(FuseRequest request, ulong nodeId, ulong fh, long offset, bool plus, ref DirentWriter writer)
    {
        Record($"ReadDir {nodeId} fh={fh} off={offset} plus={plus}");
        string[] names = ["alpha", "beta", "gamma"];
        for (long i = offset; i < names.Length; i++)
        {
            byte[] name = Encoding.UTF8.GetBytes(names[i]);
            bool added = plus ? writer.TryAddPlus(Entry(200 + (ulong)i), name, i + 1) : writer.TryAdd(name, 200 + (ulong)i, 0x8000, i + 1);
            if (!added)
            {
                break;
            }
        }

        return Errno.OK;
    }

    public Errno ReleaseDir(FuseRequest request, ulong nodeId, ulong fh)
    {
        Record($"ReleaseDir {nodeId} fh={fh}");
        return Errno.OK;
    }

    public Errno FsyncDir(FuseRequest request, ulong nodeId, ulong fh, bool dataOnly)
    {
        Record($"FsyncDir {nodeId} fh={fh} dataOnly={dataOnly}");
        return Errno.OK;
    }

    public Errno Access(FuseRequest request, ulong nodeId, int mask)
    {
        Record($"Access {nodeId} mask={mask}");
        return Errno.EACCES;
    }

    public Errno Create(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, int flags, uint mode, uint umask, out FuseEntryOut entry, out FuseOpenOut open)
    {
        Record($"Create {parent} {S(name)} flags={flags:x} mode={mode:x} umask={umask:x}");
        entry = Entry(LookupNode);
        open = new FuseOpenOut { Fh = OpenFh, OpenFlags = FopenFlags.Passthrough, BackingId = 9 };
        return Errno.OK;
    }

    public Errno TmpFile(FuseRequest request, ulong parent, int flags, uint mode, uint umask, out FuseEntryOut entry, out FuseOpenOut open)
    {
        Record($"TmpFile {parent} flags={flags:x} mode={mode:x}");
        entry = Entry(LookupNode + 1);
        open = new FuseOpenOut { Fh = OpenFh + 2 };
        return Errno.OK;
    }

    public Errno Fallocate(FuseRequest request, ulong nodeId, ulong fh, int mode, long offset, long length)
    {
        Record($"Fallocate {nodeId} fh={fh} mode={mode} off={offset} len={length}");
        return Errno.OK;
    }

    public Errno Lseek(FuseRequest request, ulong nodeId, ulong fh, long offset, int whence, out long result)
    {
        Record($"Lseek {nodeId} fh={fh} off={offset} whence={whence}");
        result = offset + 4096;
        return Errno.OK;
    }

    public Errno CopyFileRange(FuseRequest request, ulong nodeIn, ulong fhIn, long offsetIn, ulong nodeOut, ulong fhOut, long offsetOut, long length, ulong flags, out long copied)
    {
        Record($"CopyFileRange {nodeIn}/{fhIn}@{offsetIn} -> {nodeOut}/{fhOut}@{offsetOut} len={length}");
        copied = length / 2;
        return Errno.OK;
    }
}
