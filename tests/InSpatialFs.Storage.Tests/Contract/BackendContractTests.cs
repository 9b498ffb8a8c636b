using System.Text;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;

namespace InSpatialFs.Storage.Tests.Contract;

/// <summary>
/// The backend contract (issue 12): every <see cref="IFileSystemBackend"/> gives the errno a kernel filesystem (ext4,
/// tmpfs) gives for each bad input, and does the thing for the good one next to it. One abstract fixture, one
/// subclass per backend (no mount, no FUSE); the rules come from Storage/Posix, and the cases where the backends
/// used to disagree are marked "drift".
/// </summary>
public abstract partial class BackendContractTests
{
    protected static readonly Caller Root = new(0, 0, 1);
    protected static readonly Caller User = new(1000, 1000, 2);
    protected const ulong MissingIno = 0x7FFF_FFFF_0000;

    protected IFileSystemBackend Fs { get; private set; } = null!;

    protected ulong RootIno => Fs.RootIno;

    protected abstract IFileSystemBackend CreateBackend();

    protected virtual void DestroyBackend()
    {
    }

    [SetUp]
    public void SetUpBackend() => Fs = CreateBackend();

    [TearDown]
    public void TearDownBackend()
    {
        Fs.Dispose();
        DestroyBackend();
    }

    protected static byte[] N(string name) => Encoding.UTF8.GetBytes(name);

    /// <summary>Holds a node the test keeps using, as the proxy's node table holds every node the kernel gets.</summary>
    protected ulong Held(ulong ino)
    {
        Assert.That(Fs.Retain(ino), Is.True, $"retain {ino}");
        return ino;
    }

    [Test]
    public void A_held_node_outlives_its_last_name_until_released_and_a_dropped_one_is_not_retained()
    {
        ulong ino = Touch(RootIno, "f"); // held
        Assert.That(Fs.Unlink(RootIno, N("f")), Is.EqualTo(Errno.OK));
        Assert.That(Attr(ino).Nlink, Is.Zero, "held: still readable with no name left");
        Fs.Release(ino);
        Assert.That(Fs.GetAttr(ino, out _), Is.Not.EqualTo(Errno.OK), "released, closed and nameless: gone");
        Assert.That(Fs.Retain(ino), Is.False, "a dropped node cannot be retained");
        Assert.That(Fs.Retain(MissingIno), Is.False);
        Fs.Release(MissingIno); // unknown ids are ignored
        Fs.Release(ino);
    }

    [Test]
    public void Two_holders_keep_an_unlinked_node_until_both_release()
    {
        ulong ino = Touch(RootIno, "f");
        Held(ino);
        Assert.That(Fs.Unlink(RootIno, N("f")), Is.EqualTo(Errno.OK));
        Fs.Release(ino);
        Assert.That(Attr(ino).Nlink, Is.Zero, "one holder left");
        Fs.Release(ino);
        Assert.That(Fs.GetAttr(ino, out _), Is.Not.EqualTo(Errno.OK));
    }

    protected ulong MkDir(ulong parent, string name, uint mode = 0x1ED, Caller? caller = null)
    {
        Assert.That(Fs.MkDir(parent, N(name), mode, caller ?? Root, out FuseAttr a), Is.EqualTo(Errno.OK), $"mkdir {name}");
        return Held(a.Ino);
    }

    protected (ulong Ino, IOpenFile Fh) Create(ulong parent, string name, uint mode = 0x1A4, Caller? caller = null, int flags = LibC.O_RDWR)
    {
        Assert.That(Fs.Create(parent, N(name), flags | LibC.O_CREAT | LibC.O_EXCL, mode, caller ?? Root, out FuseAttr a, out IOpenFile r, out bool created),
            Is.EqualTo(Errno.OK), $"create {name}");
        Assert.That(created, Is.True, $"create {name} made the file");
        return (Held(a.Ino), r);
    }

    protected ulong Touch(ulong parent, string name, uint mode = 0x1A4, Caller? caller = null)
    {
        (ulong ino, IOpenFile fh) = Create(parent, name, mode, caller);
        Assert.That(fh.Release(), Is.EqualTo(Errno.OK));
        return ino;
    }

    protected ulong Fifo(ulong parent, string name, uint perm = 0x1A4)
    {
        Assert.That(Fs.MkNod(parent, N(name), LibC.S_IFIFO | perm, 0, Root, out FuseAttr a), Is.EqualTo(Errno.OK), $"mkfifo {name}");
        return Held(a.Ino);
    }

    protected ulong Symlink(ulong parent, string name, string target = "target")
    {
        Assert.That(Fs.Symlink(parent, N(name), N(target), Root, out FuseAttr a), Is.EqualTo(Errno.OK), $"symlink {name}");
        return Held(a.Ino);
    }

    protected FuseAttr Attr(ulong ino)
    {
        Assert.That(Fs.GetAttr(ino, out FuseAttr a), Is.EqualTo(Errno.OK));
        return a;
    }

    protected Errno Lookup(ulong parent, string name) => Fs.Lookup(parent, N(name), out _);

    protected FuseAttr Chmod(ulong ino, uint perm)
    {
        var change = new AttrChange { Mode = (Attr(ino).Mode & LibC.S_IFMT) | perm };
        Assert.That(Fs.SetAttr(ino, change, Root, out FuseAttr a), Is.EqualTo(Errno.OK), "chmod");
        return a;
    }

    protected FuseAttr SetAttr(ulong ino, AttrChange change)
    {
        Assert.That(Fs.SetAttr(ino, change, User, out FuseAttr a), Is.EqualTo(Errno.OK), $"setattr {change}");
        return a;
    }

    protected byte[] ReadAt(ulong ino, IOpenFile fh, long offset, int count)
    {
        var buffer = new byte[count];
        Assert.That(fh.Read(offset, buffer, out int n), Is.EqualTo(Errno.OK));
        return buffer[..n];
    }

    protected void WriteAt(ulong ino, IOpenFile fh, long offset, byte[] data)
    {
        Assert.That(fh.Write(offset, data, out int n), Is.EqualTo(Errno.OK));
        Assert.That(n, Is.EqualTo(data.Length));
    }
}
