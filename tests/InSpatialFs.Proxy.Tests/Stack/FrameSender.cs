using System.Text;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.TestKit;

namespace InSpatialFs.Proxy.Tests.Stack;

/// <summary>One READDIR(PLUS) record: name, d_ino, and for PLUS the entry_out (nodeid 0 when listed by name only).</summary>
internal readonly record struct ListedEntry(string Name, ulong Ino, FuseEntryOut Entry);

/// <summary>
/// FUSE requests as the kernel frames them, all from one caller (uid, gid and the in-header pid), sent through the
/// fake kernel and answered by the protocol server. Methods return the raw reply; callers assert on its errno.
/// </summary>
internal sealed class FrameSender(FakeKernel kernel, uint uid, uint gid, uint pid)
{
    public uint Pid => pid;

    public FuseReply Call(FuseOpcode opcode, ulong node, FuseArgs? args = null) => kernel.Call(opcode, node, args, uid, gid, pid);

    public FuseReply Lookup(ulong parent, string name) => Call(FuseOpcode.Lookup, parent, FuseArgs.Empty.Name(name));

    public FuseReply GetAttr(ulong node) => Call(FuseOpcode.GetAttr, node, FuseArgs.Of(new FuseGetattrIn()));

    public FuseReply SetAttr(ulong node, FuseSetattrIn change) => Call(FuseOpcode.SetAttr, node, FuseArgs.Of(change));

    public FuseReply MkDir(ulong parent, string name, uint mode = 0x1ED) =>
        Call(FuseOpcode.MkDir, parent, FuseArgs.Of(new FuseMkdirIn { Mode = mode }).Name(name));

    public FuseReply MkNod(ulong parent, string name, uint mode) =>
        Call(FuseOpcode.MkNod, parent, FuseArgs.Of(new FuseMknodIn { Mode = mode }).Name(name));

    public FuseReply Symlink(ulong parent, string name, string target) =>
        Call(FuseOpcode.Symlink, parent, FuseArgs.Empty.Name(name).Name(target));

    public FuseReply Link(ulong node, ulong newParent, string newName) =>
        Call(FuseOpcode.Link, newParent, FuseArgs.Of(new FuseLinkIn { OldNodeId = node }).Name(newName));

    public FuseReply Unlink(ulong parent, string name) => Call(FuseOpcode.Unlink, parent, FuseArgs.Empty.Name(name));

    public FuseReply RmDir(ulong parent, string name) => Call(FuseOpcode.RmDir, parent, FuseArgs.Empty.Name(name));

    public FuseReply Rename(ulong parent, string name, ulong newParent, string newName) =>
        Call(FuseOpcode.Rename, parent, FuseArgs.Of(new FuseRenameIn { NewDir = newParent }).Name(name).Name(newName));

    /// <summary>CREATE: the reply body is entry_out (128 bytes) then open_out.</summary>
    public FuseReply Create(ulong parent, string name, int flags = LibC.O_RDWR, uint mode = 0x1A4) =>
        Call(FuseOpcode.Create, parent, FuseArgs.Of(new FuseCreateIn { Flags = (uint)flags, Mode = LibC.S_IFREG | mode }).Name(name));

    public FuseReply TmpFile(ulong parent, int flags = LibC.O_RDWR, uint mode = 0x180) =>
        Call(FuseOpcode.TmpFile, parent, FuseArgs.Of(new FuseCreateIn { Flags = (uint)flags, Mode = LibC.S_IFREG | mode }));

    public FuseReply Open(ulong node, int flags) => Call(FuseOpcode.Open, node, FuseArgs.Of(new FuseOpenIn { Flags = (uint)flags }));

    public FuseReply Read(ulong node, ulong fh, long offset, uint size) =>
        Call(FuseOpcode.Read, node, FuseArgs.Of(new FuseReadIn { Fh = fh, Offset = (ulong)offset, Size = size }));

    public FuseReply Write(ulong node, ulong fh, long offset, byte[] data) =>
        Call(FuseOpcode.Write, node, FuseArgs.Of(new FuseWriteIn { Fh = fh, Offset = (ulong)offset, Size = (uint)data.Length }).Raw(data));

    public FuseReply Fallocate(ulong node, ulong fh, long offset, long length, int mode = 0) =>
        Call(FuseOpcode.Fallocate, node, FuseArgs.Of(new FuseFallocateIn { Fh = fh, Offset = (ulong)offset, Length = (ulong)length, Mode = (uint)mode }));

    public FuseReply Release(ulong node, ulong fh) => Call(FuseOpcode.Release, node, FuseArgs.Of(new FuseReleaseIn { Fh = fh }));

    /// <summary>SETXATTR with FUSE_SETXATTR_EXT (the fake kernel offers it, the server accepts it): the 16-byte struct.</summary>
    public FuseReply SetXattr(ulong node, string name, byte[] value) =>
        Call(FuseOpcode.SetXattr, node, FuseArgs.Of(new FuseSetxattrIn { Size = (uint)value.Length }).Name(name).Raw(value));

    public FuseReply RemoveXattr(ulong node, string name) => Call(FuseOpcode.RemoveXattr, node, FuseArgs.Empty.Name(name));

    /// <summary>FORGET is never answered; the next call is served after it (the fake kernel runs one reader).</summary>
    public void Forget(ulong node, ulong count) => kernel.Send(FuseOpcode.Forget, node, FuseArgs.Of(new FuseForgetIn { Nlookup = count }), uid, gid, pid);

    public FuseReply OpenDir(ulong node) => Call(FuseOpcode.OpenDir, node, FuseArgs.Of(new FuseOpenIn()));

    public FuseReply ReleaseDir(ulong node, ulong fh) => Call(FuseOpcode.ReleaseDir, node, FuseArgs.Of(new FuseReleaseIn { Fh = fh }));

    /// <summary>OPENDIR, READDIR or READDIRPLUS from offset 0 until an empty reply, RELEASEDIR.</summary>
    public List<ListedEntry> List(ulong dir, bool plus)
    {
        FuseReply opened = OpenDir(dir);
        Assert.That(opened.Error, Is.EqualTo(Errno.OK), "OPENDIR " + opened);
        ulong fh = opened.As<FuseOpenOut>().Fh;
        var entries = new List<ListedEntry>();
        ulong offset = 0;
        while (true)
        {
            FuseReply page = Call(plus ? FuseOpcode.ReadDirPlus : FuseOpcode.ReadDir, dir, FuseArgs.Of(new FuseReadIn { Fh = fh, Offset = offset, Size = 64 * 1024 }));
            Assert.That(page.Error, Is.EqualTo(Errno.OK), "READDIR " + page);
            if (page.Body.Length == 0)
            {
                break;
            }

            offset = Parse(page.Body, plus, entries);
        }

        Assert.That(ReleaseDir(dir, fh).Error, Is.EqualTo(Errno.OK));
        return entries;
    }

    public List<string> ListNames(ulong dir, bool plus) => [.. List(dir, plus).Select(e => e.Name)];

    /// <summary>Decodes fuse_direntplus / fuse_dirent records; returns the last record's offset cookie.</summary>
    private static ulong Parse(byte[] body, bool plus, List<ListedEntry> into)
    {
        ulong last = 0;
        int entrySize = plus ? 128 : 0;
        for (int at = 0; at < body.Length;)
        {
            FuseEntryOut entry = plus ? System.Runtime.InteropServices.MemoryMarshal.Read<FuseEntryOut>(body.AsSpan(at)) : default;
            int dirent = at + entrySize;
            ulong ino = BitConverter.ToUInt64(body, dirent);
            last = BitConverter.ToUInt64(body, dirent + 8);
            int nameLen = BitConverter.ToInt32(body, dirent + 16);
            into.Add(new ListedEntry(Encoding.UTF8.GetString(body, dirent + 24, nameLen), ino, entry));
            at = dirent + ((24 + nameLen + 7) & ~7);
        }

        return last;
    }

    // ---- typed shortcuts: assert success and take what the tests use ---------------------------------------

    /// <summary>The nodeid of an existing name (one kernel reference taken).</summary>
    public ulong NodeOf(ulong parent, string name)
    {
        FuseReply reply = Lookup(parent, name);
        Assert.That(reply.Error, Is.EqualTo(Errno.OK), $"LOOKUP {name}: {reply}");
        ulong node = reply.As<FuseEntryOut>().NodeId;
        Assert.That(node, Is.Not.Zero, $"LOOKUP {name} found a name");
        return node;
    }

    public ulong NewDir(ulong parent, string name)
    {
        FuseReply reply = MkDir(parent, name);
        Assert.That(reply.Error, Is.EqualTo(Errno.OK), $"MKDIR {name}: {reply}");
        return reply.As<FuseEntryOut>().NodeId;
    }

    /// <summary>CREATE + WRITE of <paramref name="data"/>; the file stays open (node, fh, open_out).</summary>
    public (ulong Node, ulong Fh, FuseOpenOut Open) NewFile(ulong parent, string name, byte[]? data = null, int flags = LibC.O_RDWR)
    {
        FuseReply reply = Create(parent, name, flags);
        Assert.That(reply.Error, Is.EqualTo(Errno.OK), $"CREATE {name}: {reply}");
        ulong node = reply.At<FuseEntryOut>(0).NodeId;
        FuseOpenOut open = reply.At<FuseOpenOut>(128);
        if (data is { Length: > 0 })
        {
            FuseReply written = Write(node, open.Fh, 0, data);
            Assert.That(written.Error, Is.EqualTo(Errno.OK), $"WRITE {name}: {written}");
            Assert.That(written.As<FuseWriteOut>().Size, Is.EqualTo((uint)data.Length));
        }

        return (node, open.Fh, open);
    }

    /// <summary>A closed file holding <paramref name="data"/>; returns its nodeid (one kernel reference).</summary>
    public ulong ClosedFile(ulong parent, string name, byte[] data)
    {
        (ulong node, ulong fh, _) = NewFile(parent, name, data);
        Assert.That(Release(node, fh).Error, Is.EqualTo(Errno.OK));
        return node;
    }

    public ulong OpenFh(ulong node, int flags)
    {
        FuseReply reply = Open(node, flags);
        Assert.That(reply.Error, Is.EqualTo(Errno.OK), "OPEN " + reply);
        return reply.As<FuseOpenOut>().Fh;
    }

    public byte[] ReadBytes(ulong node, ulong fh, long offset, uint size)
    {
        FuseReply reply = Read(node, fh, offset, size);
        Assert.That(reply.Error, Is.EqualTo(Errno.OK), "READ " + reply);
        return reply.Body;
    }

    public FuseAttr Attr(ulong node)
    {
        FuseReply reply = GetAttr(node);
        Assert.That(reply.Error, Is.EqualTo(Errno.OK), "GETATTR " + reply);
        return reply.As<FuseAttrOut>().Attr;
    }
}
