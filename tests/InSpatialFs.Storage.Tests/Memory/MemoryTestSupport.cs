using System.Text;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Memory;

namespace InSpatialFs.Storage.Tests.Memory;

/// <summary>Collects readdir entries, optionally stopping after a fixed number (a "full reply buffer").</summary>
internal sealed class CollectingSink(int capacity = int.MaxValue) : IDirectoryEntrySink
{
    public List<(string Name, ulong Ino, uint Mode, long Next)> Entries { get; } = [];

    public bool TryAdd(ReadOnlySpan<byte> name, ulong ino, uint mode, long nextOffset)
    {
        if (Entries.Count >= capacity)
        {
            return false;
        }
        Entries.Add((Encoding.UTF8.GetString(name), ino, mode, nextOffset));
        return true;
    }
}

/// <summary>Short, string-based calls onto a backend so the tests read as specifications.</summary>
internal static class Fs
{
    public static readonly Caller Root = new(0, 0, 1);
    public static readonly Caller User = new(1000, 1000, 2);

    public static byte[] N(string name) => Encoding.UTF8.GetBytes(name);

    public static ulong MkDir(this MemoryFileSystem fs, ulong parent, string name, uint mode = 0x1ED, Caller? caller = null)
    {
        Assert.That(fs.MkDir(parent, N(name), mode, caller ?? Root, out var attr), Is.EqualTo(Errno.OK), $"mkdir {name}");
        return attr.Ino;
    }

    public static (ulong Ino, IOpenFile Fh) Create(this MemoryFileSystem fs, ulong parent, string name, uint mode = 0x1A4, Caller? caller = null, int flags = LibC.O_RDWR)
    {
        Assert.That(fs.Create(parent, N(name), flags | LibC.O_CREAT, mode, caller ?? Root, out var attr, out var open, out _), Is.EqualTo(Errno.OK), $"create {name}");
        return (attr.Ino, open);
    }

    public static ulong Touch(this MemoryFileSystem fs, ulong parent, string name)
    {
        var (ino, fh) = fs.Create(parent, name);
        Assert.That(fh.Release(), Is.EqualTo(Errno.OK));
        return ino;
    }

    public static FuseAttr Attr(this MemoryFileSystem fs, ulong ino)
    {
        Assert.That(fs.GetAttr(ino, out var attr), Is.EqualTo(Errno.OK));
        return attr;
    }

    public static Errno Lookup(this MemoryFileSystem fs, ulong parent, string name, out FuseAttr attr) => fs.Lookup(parent, N(name), out attr);

    public static Errno Lookup(this MemoryFileSystem fs, ulong parent, string name) => fs.Lookup(parent, N(name), out _);

    public static void WriteAt(this MemoryFileSystem fs, ulong ino, IOpenFile fh, long offset, byte[] data)
    {
        Assert.That(fh.Write(offset, data, out int written), Is.EqualTo(Errno.OK));
        Assert.That(written, Is.EqualTo(data.Length));
    }

    public static byte[] ReadAt(this MemoryFileSystem fs, ulong ino, IOpenFile fh, long offset, int count)
    {
        var buffer = new byte[count];
        Assert.That(fh.Read(offset, buffer, out int read), Is.EqualTo(Errno.OK));
        return buffer[..read];
    }

    public static List<string> List(this MemoryFileSystem fs, ulong dir)
    {
        Assert.That(fs.OpenDir(dir, out IOpenDirectory fh), Is.EqualTo(Errno.OK));
        var sink = new CollectingSink();
        Assert.That(fh.ReadDir(0, sink), Is.EqualTo(Errno.OK));
        Assert.That(fh.Release(), Is.EqualTo(Errno.OK));
        return sink.Entries.ConvertAll(e => e.Name);
    }

}
