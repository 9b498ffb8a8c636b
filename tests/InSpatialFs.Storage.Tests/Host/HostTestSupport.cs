using System.Text;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Host;
using Microsoft.Extensions.Logging.Abstractions;

namespace InSpatialFs.Storage.Tests.Host;

/// <summary>A temp directory holding "outside" (never to be reached) and "src" (the served tree).</summary>
internal sealed class HostSandbox : IDisposable
{
    public HostSandbox(bool readOnly = false, int cache = 64, int maxHandles = 64, bool direct = false, Microsoft.Extensions.Logging.ILogger? logger = null)
    {
        Root = Path.Combine(Path.GetTempPath(), "isfs-host-" + Guid.NewGuid().ToString("N"));
        Outside = Path.Combine(Root, "outside");
        Source = Path.Combine(Root, "src");
        Directory.CreateDirectory(Outside);
        Directory.CreateDirectory(Source);
        File.WriteAllText(Path.Combine(Outside, "secret"), "OUTSIDE-SECRET");
        Fs = new HostFileSystem(Source, readOnly, logger ?? NullLogger.Instance, cache, maxHandles, direct);
    }

    public string Root { get; }
    public string Outside { get; }
    public string Source { get; }
    public HostFileSystem Fs { get; private set; }

    public static readonly Caller User = new(1000, 1000, 4242);

    public string Src(string rel) => Path.Combine(Source, rel);

    public static byte[] B(string s) => Encoding.UTF8.GetBytes(s);

    /// <summary>A lookup whose node the test then holds, as the proxy's node table would (given back with Release).</summary>
    public ulong Lookup(ulong parent, string name)
    {
        Errno e = Fs.Lookup(parent, B(name), out FuseAttr a);
        Assert.That(e, Is.EqualTo(Errno.OK), $"lookup {name}");
        Assert.That(Fs.Retain(a.Ino), Is.True, $"retain {name}");
        return a.Ino;
    }

    /// <summary>Resolves a relative path one component at a time, as the proxy would.</summary>
    public ulong Walk(string rel)
    {
        ulong ino = Fs.RootIno;
        foreach (string part in rel.Split('/', StringSplitOptions.RemoveEmptyEntries)) ino = Lookup(ino, part);
        return ino;
    }

    public string ReadAll(ulong ino)
    {
        Assert.That(Fs.Open(ino, LibC.O_RDONLY, User, out IOpenFile r), Is.EqualTo(Errno.OK));
        var buf = new byte[4096];
        Assert.That(r.Read(0, buf, out int n), Is.EqualTo(Errno.OK));
        r.Release();
        return Encoding.UTF8.GetString(buf, 0, n);
    }

    public void Dispose()
    {
        Fs.Dispose();
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
            // a racer may still be finishing a swap; the temp dir is harmless
        }
    }

    public static int OpenDescriptorCount() => Directory.GetFileSystemEntries("/proc/self/fd").Length;
}

internal sealed class ListingSink(int capacity = int.MaxValue) : IDirectoryEntrySink
{
    public List<(string Name, ulong Ino, uint Mode, long Next)> Entries { get; } = [];

    public bool TryAdd(ReadOnlySpan<byte> name, ulong ino, uint mode, long nextOffset)
    {
        if (Entries.Count >= capacity) return false;
        Entries.Add((Encoding.UTF8.GetString(name), ino, mode, nextOffset));
        return true;
    }
}
