using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Proxy.Nodes;
using InSpatialFs.Security.Policy;
using InSpatialFs.Storage;

namespace InSpatialFs.Proxy;

// Hard links give one file several names. A class protects the object, so the proxy tells the security side about
// every multiply-linked file it meets under a protected name: at start below each protected pattern's literal
// prefix (bounded), and later on every lookup of such a file. Aliases of a protected file found only under a glob
// rooted at "/" are recognised once any protected name of it has been looked up (README, "What the policy sees").
public sealed partial class SecureProxy
{
    /// <summary>Most entries the start-up scan below protected roots visits, over all roots.</summary>
    private const int AliasScanBudget = 20_000;

    private static bool IsLinkedFile(in FuseAttr attr) => attr.Nlink > 1 && (attr.Mode & LibC.S_IFMT) == LibC.S_IFREG;

    /// <summary>After a lookup refused by name: learns the object behind the name when it has other names too.</summary>
    private void NoteIfLinked(ProxyNode dir, ReadOnlySpan<byte> name, string path)
    {
        if (MountAt(path) >= 0 || BackendOf(dir).Lookup(dir.Ino, name, out FuseAttr attr) != Errno.OK)
        {
            return;
        }

        if (IsLinkedFile(attr))
        {
            _gate.NoteLinkedObject(BackendOf(dir).IdentityOf(attr.Ino), path);
        }
    }

    /// <summary>
    /// At start, on a background thread (it may visit thousands of image files; the mount need not wait): marks the
    /// multiply-linked files at and below each protected root, breadth first, at most <see cref="AliasScanBudget"/> entries.
    /// </summary>
    private Task MarkProtectedAliases()
    {
        IReadOnlyList<string> roots = [.. _gate.ProtectedRoots.Where(r => r != "/")]; // "/": learned on lookup instead
        if (roots.Count == 0)
        {
            return Task.CompletedTask;
        }

        return Task.Factory.StartNew(() =>
        {
            try
            {
                ScanForAliases(roots);
            }
            catch (Exception e) when (e is ObjectDisposedException or IOException or InvalidOperationException)
            {
                Log.AliasScanStopped(_logger, e.Message); // the instance is stopping
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>The start-up scan for hard links of protected files (tests wait for it; status could show it).</summary>
    public Task AliasScan { get; }

    private void ScanForAliases(IReadOnlyList<string> roots)
    {
        int budget = AliasScanBudget;
        foreach (string root in roots)
        {
            var components = new List<string>(root.Split('/', StringSplitOptions.RemoveEmptyEntries));
            if (!TryWalk(components, out IFileSystemBackend backend, out ulong ino, out FuseAttr attr))
            {
                continue;
            }

            // Each queued node is held in its backend (a mount root needs no hold) until it is visited.
            var pending = new Queue<(string Path, IFileSystemBackend Backend, ulong Ino, FuseAttr Attr)>();
            pending.Enqueue((root, backend, ino, attr));
            while (pending.TryDequeue(out var item))
            {
                if (IsLinkedFile(item.Attr))
                {
                    _gate.NoteLinkedObject(item.Backend.IdentityOf(item.Ino), item.Path);
                }
                else if ((item.Attr.Mode & LibC.S_IFMT) == LibC.S_IFDIR && budget > 0)
                {
                    foreach (string child in ChildNames(item.Backend, item.Ino, budget))
                    {
                        string path = item.Path == "/" ? "/" + child : item.Path + "/" + child;
                        if (--budget < 0 || MountAt(path) >= 0 || LookupHeld(item.Backend, item.Ino, ExactNames.Encode(child), out FuseAttr childAttr) != Errno.OK)
                        {
                            continue;
                        }

                        pending.Enqueue((path, item.Backend, childAttr.Ino, childAttr));
                    }
                }

                ReleaseHeld(item.Backend, item.Ino);
            }
        }
    }

    private static List<string> ChildNames(IFileSystemBackend backend, ulong dir, int limit)
    {
        var names = new NameCollector(limit);
        if (backend.OpenDir(dir, out IOpenDirectory listing) == Errno.OK)
        {
            listing.ReadDir(0, names);
            listing.Release();
        }

        return names.Names;
    }

    private sealed class NameCollector(int limit) : IDirectoryEntrySink
    {
        public List<string> Names { get; } = [];

        public bool TryAdd(ReadOnlySpan<byte> name, ulong ino, uint mode, long nextOffset)
        {
            if (!name.SequenceEqual("."u8) && !name.SequenceEqual(".."u8))
            {
                Names.Add(ExactNames.Decode(name));
            }

            return Names.Count < limit;
        }
    }
}
