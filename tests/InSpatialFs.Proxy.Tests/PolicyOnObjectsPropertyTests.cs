using System.Text;
using InSpatialFs.Fuse;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Security;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Policy;
using InSpatialFs.Storage;
using InSpatialFs.Storage.Memory;
using InSpatialFs.Storage.Mounts;
using Microsoft.Extensions.Logging.Abstractions;

namespace InSpatialFs.Proxy.Tests;

/// <summary>
/// Issue 11, "Policy on objects", as a property: random sequences of rename, link, symlink and mkdir, made through the
/// secure proxy with the real security manager over a tree with forbidden and read-only globs, never make a protected
/// object's content readable (forbidden) or writable (read-only, forbidden) through any name it has.
/// The names an object has are found in the backend directly (no policy); access is tried through the proxy.
/// </summary>
public sealed class PolicyOnObjectsPropertyTests
{
    private static readonly string[] NamePool = ["a", "b", "etc", "e2", "keys", "k2", "x", "y", "shadow", "passwd", "secret.key", "data"];

    [TestCase(IsolationLevel.Standard, 1)]
    [TestCase(IsolationLevel.Standard, 2)]
    [TestCase(IsolationLevel.Standard, 3)]
    [TestCase(IsolationLevel.Enhanced, 4)]
    [TestCase(IsolationLevel.Enhanced, 5)]
    [TestCase(IsolationLevel.Maximum, 6)]
    public void Random_renames_links_and_symlinks_never_expose_a_protected_object(IsolationLevel level, int seed)
    {
        using var memory = new MemoryFileSystem();
        MountTable table = MountTable.Create([new MountEntry("/", memory, ReadOnly: false, Direct: false, MountKind.Memory)]);
        using var security = new SecurityManager(new SecurityOptions
        {
            Level = level,
            Forbidden = ["/etc/shadow", "/**/secret.key", "/keys/**"],
            ReadOnly = ["/etc/passwd", "/etc/ro/**"],
            Allowed = ["/**"], // enhanced and maximum: everything writable unless protected, so renames are possible at all
            NeverSuspend = true,
        });
        // The protected objects, made in the backend directly (the image), with their class; the image also gives
        // two of them a second, unprotected name (hard links made before the container ever ran).
        ulong etc = MkDir(memory, memory.RootIno, "etc"), ro = MkDir(memory, etc, "ro"), keys = MkDir(memory, memory.RootIno, "keys");
        ulong a = MkDir(memory, memory.RootIno, "a"), b = MkDir(memory, a, "b");
        ulong shadow = File(memory, etc, "shadow"), passwd = File(memory, etc, "passwd");
        var protectedObjects = new Dictionary<ulong, PathClass>
        {
            [shadow] = PathClass.Forbidden,
            [passwd] = PathClass.ReadOnly,
            [File(memory, ro, "conf")] = PathClass.ReadOnly,
            [File(memory, b, "secret.key")] = PathClass.Forbidden,
            [File(memory, keys, "id")] = PathClass.Forbidden,
        };
        File(memory, a, "data");
        Assert.That(memory.Link(shadow, a, "shadow-alias"u8, out _), Is.EqualTo(Errno.OK));
        Assert.That(memory.Link(passwd, a, "passwd-alias"u8, out _), Is.EqualTo(Errno.OK));

        var proxy = new SecureProxy(table, security, new ProxyOptions(), NullLogger.Instance);
        Assert.That(proxy.AliasScan.Wait(TimeSpan.FromSeconds(30)), Is.True, "the start-up scan of protected roots");
        FuseRequest request = ProxyHarness.NewRequest(uid: 0, gid: 0, pid: 0);

        var random = new Random(seed);
        int refused = 0, done = 0;
        for (int step = 0; step < 600; step++)
        {
            List<string> dirs = Paths(memory, directoriesOnly: true), all = Paths(memory, directoriesOnly: false);
            string from = all[random.Next(all.Count)];
            string toDir = dirs[random.Next(dirs.Count)];
            string to = Join(toDir, NamePool[random.Next(NamePool.Length)]);
            Errno result = random.Next(5) switch
            {
                0 or 1 => Rename(proxy, request, from, to, random.Next(4) == 0 ? LibC.RENAME_EXCHANGE : 0u),
                2 => Link(proxy, request, from, to),
                3 => Symlink(proxy, request, to, from),
                _ => MkDir(proxy, request, to),
            };
            if (result == Errno.OK) done++;
            else refused++;

            foreach ((ulong ino, PathClass cls) in protectedObjects)
            {
                foreach (string name in NamesOf(memory, ino))
                {
                    if (!TryReachThroughProxy(proxy, request, name, out ulong nodeId)) continue; // invisible: fine
                    Errno read = OpenThenRelease(proxy, request, nodeId, LibC.O_RDONLY);
                    Errno write = OpenThenRelease(proxy, request, nodeId, LibC.O_WRONLY);
                    if (cls == PathClass.Forbidden)
                    {
                        Assert.That(read, Is.Not.EqualTo(Errno.OK), $"seed {seed} step {step}: forbidden object readable as {name}");
                    }

                    Assert.That(write, Is.Not.EqualTo(Errno.OK), $"seed {seed} step {step}: {cls} object writable as {name}");
                }
            }
        }

        Assert.That(done, Is.GreaterThan(50), "positive control: the random walk really changed the tree");
        Assert.That(refused, Is.GreaterThan(0));
        TestContext.Out.WriteLine($"{level} seed {seed}: {done} operations done, {refused} refused");
    }

    private static ulong MkDir(MemoryFileSystem fs, ulong parent, string name)
    {
        Assert.That(fs.MkDir(parent, Encoding.UTF8.GetBytes(name), 0x1ED, new Caller(0, 0, 0), out FuseAttr attr), Is.EqualTo(Errno.OK));
        return attr.Ino;
    }

    private static ulong File(MemoryFileSystem fs, ulong parent, string name)
    {
        Assert.That(fs.Create(parent, Encoding.UTF8.GetBytes(name), LibC.O_RDWR, 0x1A4, new Caller(0, 0, 0), out FuseAttr attr, out IOpenFile open, out _), Is.EqualTo(Errno.OK));
        open.Write(0, "secret content"u8, out _);
        open.Release();
        return attr.Ino;
    }

    private static string Join(string dir, string name) => dir == "/" ? "/" + name : dir + "/" + name;

    /// <summary>Every path in the backend's tree (no policy), symlinks not followed.</summary>
    private static List<string> Paths(MemoryFileSystem fs, bool directoriesOnly)
    {
        var result = new List<string>();
        var pending = new Stack<(string Path, ulong Ino)>();
        pending.Push(("/", fs.RootIno));
        while (pending.TryPop(out var dir))
        {
            result.Add(dir.Path);
            foreach ((string name, ulong ino, uint mode) in Children(fs, dir.Ino))
            {
                string path = Join(dir.Path, name);
                if ((mode & LibC.S_IFMT) == LibC.S_IFDIR) pending.Push((path, ino));
                else if (!directoriesOnly) result.Add(path);
            }
        }

        return result;
    }

    private static List<string> NamesOf(MemoryFileSystem fs, ulong target)
    {
        var names = new List<string>();
        var pending = new Stack<(string Path, ulong Ino)>();
        pending.Push(("/", fs.RootIno));
        while (pending.TryPop(out var dir))
        {
            foreach ((string name, ulong ino, uint mode) in Children(fs, dir.Ino))
            {
                string path = Join(dir.Path, name);
                if (ino == target) names.Add(path);
                if ((mode & LibC.S_IFMT) == LibC.S_IFDIR) pending.Push((path, ino));
            }
        }

        return names;
    }

    private static List<(string Name, ulong Ino, uint Mode)> Children(MemoryFileSystem fs, ulong dir)
    {
        var sink = new Collect();
        Assert.That(fs.OpenDir(dir, out IOpenDirectory fh), Is.EqualTo(Errno.OK));
        fh.ReadDir(0, sink);
        fh.Release();
        var children = new List<(string, ulong, uint)>();
        foreach ((string name, uint mode) in sink.Entries)
        {
            if (name is "." or "..") continue;
            Assert.That(fs.Lookup(dir, Encoding.UTF8.GetBytes(name), out FuseAttr attr), Is.EqualTo(Errno.OK));
            children.Add((name, attr.Ino, mode));
        }

        return children;
    }

    private sealed class Collect : IDirectoryEntrySink
    {
        public List<(string Name, uint Mode)> Entries { get; } = [];

        public bool TryAdd(ReadOnlySpan<byte> name, ulong ino, uint mode, long nextOffset)
        {
            Entries.Add((Encoding.UTF8.GetString(name), mode));
            return true;
        }
    }

    /// <summary>Looks a path up component by component through the proxy, as the kernel would; false when any step is refused.</summary>
    private static bool TryReachThroughProxy(SecureProxy proxy, FuseRequest request, string path, out ulong nodeId)
    {
        nodeId = 1;
        foreach (string part in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (proxy.Lookup(request, nodeId, Encoding.UTF8.GetBytes(part), out FuseEntryOut entry) != Errno.OK || entry.NodeId == 0) return false;
            nodeId = entry.NodeId;
        }

        return true;
    }

    private static Errno OpenThenRelease(SecureProxy proxy, FuseRequest request, ulong nodeId, int flags)
    {
        Errno e = proxy.Open(request, nodeId, flags, 0, out FuseOpenOut open);
        if (e == Errno.OK) proxy.Release(request, nodeId, open.Fh, flags);
        return e;
    }

    private static bool Parent(SecureProxy proxy, FuseRequest request, string path, out ulong dir, out byte[] name)
    {
        int slash = path.LastIndexOf('/');
        name = Encoding.UTF8.GetBytes(path[(slash + 1)..]);
        return TryReachThroughProxy(proxy, request, slash == 0 ? "/" : path[..slash], out dir);
    }

    private static Errno Rename(SecureProxy proxy, FuseRequest request, string from, string to, uint flags) =>
        Parent(proxy, request, from, out ulong fd, out byte[] fn) && Parent(proxy, request, to, out ulong td, out byte[] tn)
            ? proxy.Rename(request, fd, fn, td, tn, flags) : Errno.EACCES;

    private static Errno Link(SecureProxy proxy, FuseRequest request, string from, string to) =>
        TryReachThroughProxy(proxy, request, from, out ulong node) && Parent(proxy, request, to, out ulong td, out byte[] tn)
            ? proxy.Link(request, node, td, tn, out _) : Errno.EACCES;

    private static Errno Symlink(SecureProxy proxy, FuseRequest request, string at, string target) =>
        Parent(proxy, request, at, out ulong dir, out byte[] name) ? proxy.Symlink(request, dir, name, Encoding.UTF8.GetBytes(target), out _) : Errno.EACCES;

    private static Errno MkDir(SecureProxy proxy, FuseRequest request, string at) =>
        Parent(proxy, request, at, out ulong dir, out byte[] name) ? proxy.MkDir(request, dir, name, 0x1ED, 0, out _) : Errno.EACCES;
}
