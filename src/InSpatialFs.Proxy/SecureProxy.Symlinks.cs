using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Security.Policy;
using InSpatialFs.Storage;

namespace InSpatialFs.Proxy;

// Where a symlink leads, for the symlink controls of enhanced and maximum: the chain is followed inside the
// namespace, so "ln -s / r; ln -s r/proc/self/root chain" is seen as pointing at /proc/self/root, not at a
// harmless "r/...". Checked when a link is made and again each time the kernel reads one (symlink caching is
// off at those levels, so a link made harmless first and armed later by a second link is caught on use).
public sealed partial class SecureProxy
{
    /// <summary>Links followed before giving up (the kernel's own limit); past it the chain counts as leaving.</summary>
    private const int MaxSymlinkHops = 40;

    /// <summary>
    /// The absolute namespace path <paramref name="target"/> leads to when it is the body of a link in
    /// <paramref name="linkDir"/>, following links inside the namespace; components past the last existing one are
    /// taken as written. Null when the chain climbs above the root with "..", or is longer than <see cref="MaxSymlinkHops"/>.
    /// The walk goes down one component at a time from where it is (each component is looked up once), and keeps the
    /// directories it went through, so ".." goes back up without a lookup.
    /// </summary>
    private string? ResolveSymlinkTarget(string linkDir, string target)
    {
        var walk = new List<WalkStep>();
        try
        {
            if (target.Length == 0 || target[0] != '/')
            {
                foreach (string component in linkDir.Split('/', StringSplitOptions.RemoveEmptyEntries))
                {
                    Descend(walk, component); // the link's own directories: taken as they are, not followed
                }
            }

            var pending = new Stack<string>(target.Split('/', StringSplitOptions.RemoveEmptyEntries).Reverse());
            int hops = 0;
            while (pending.TryPop(out string? component))
            {
                if (component == ".")
                {
                    continue;
                }

                if (component == "..")
                {
                    if (walk.Count == 0)
                    {
                        return null; // above the root: the lexical rule already calls this leaving
                    }

                    Ascend(walk);
                    continue;
                }

                Descend(walk, component);
                if (LinkBody(walk[^1]) is not string body)
                {
                    continue;
                }

                if (++hops > MaxSymlinkHops)
                {
                    return null;
                }

                // Replace the link by its body: relative bodies continue from the link's directory.
                Ascend(walk);
                while (body.StartsWith('/') && walk.Count > 0)
                {
                    Ascend(walk);
                }

                foreach (string part in body.Split('/', StringSplitOptions.RemoveEmptyEntries).Reverse())
                {
                    pending.Push(part);
                }
            }

            return "/" + string.Join('/', walk.Select(step => step.Name));
        }
        finally
        {
            while (walk.Count > 0)
            {
                Ascend(walk);
            }
        }
    }

    /// <summary>
    /// One component of a walk: what its name is in the namespace (Backend null: nothing there, or below something that
    /// is no directory). Held: looked up with <see cref="LookupHeld"/>, given back when the walk leaves it.
    /// </summary>
    private readonly record struct WalkStep(string Name, string Path, IFileSystemBackend? Backend, ulong Ino, uint Mode, bool Held);

    /// <summary>Goes down to <paramref name="name"/> from the walk's last step (the namespace root when it has none).</summary>
    private void Descend(List<WalkStep> walk, string name)
    {
        IFileSystemBackend? backend;
        ulong dir;
        string path;
        if (walk.Count == 0)
        {
            backend = _mounts[_table.Root.Index].Backend;
            dir = backend.RootIno;
            path = "/" + name;
        }
        else
        {
            WalkStep parent = walk[^1];
            backend = (parent.Mode & LibC.S_IFMT) == LibC.S_IFDIR ? parent.Backend : null;
            dir = parent.Ino;
            path = parent.Path + "/" + name;
        }

        int mount = MountAt(path);
        if (mount >= 0)
        {
            // The mount table answers for a mount point, whatever lies below it in the parent's backend.
            IFileSystemBackend root = _mounts[mount].Backend;
            walk.Add(root.GetAttr(root.RootIno, out FuseAttr rootAttr) == Errno.OK
                ? new WalkStep(name, path, root, root.RootIno, rootAttr.Mode, false)
                : new WalkStep(name, path, null, 0, 0, false));
            return;
        }

        if (backend is null)
        {
            walk.Add(new WalkStep(name, path, null, 0, 0, false)); // below nothing, or below a file: taken as written
            return;
        }

        walk.Add(LookupHeld(backend, dir, ExactNames.Encode(name), out FuseAttr attr) == Errno.OK
            ? new WalkStep(name, path, backend, attr.Ino, attr.Mode, true)
            : new WalkStep(name, path, null, 0, 0, false));
    }

    /// <summary>Leaves the walk's last step (giving back its hold).</summary>
    private static void Ascend(List<WalkStep> walk)
    {
        WalkStep last = walk[^1];
        walk.RemoveAt(walk.Count - 1);
        if (last.Held)
        {
            ReleaseHeld(last.Backend!, last.Ino);
        }
    }

    /// <summary>The body of the symlink a walk step found, or null when it found no symlink (or nothing).</summary>
    private static string? LinkBody(WalkStep step)
    {
        if (step.Backend is null || (step.Mode & LibC.S_IFMT) != LibC.S_IFLNK)
        {
            return null;
        }

        Span<byte> buffer = stackalloc byte[4096];
        return step.Backend.ReadLink(step.Ino, buffer, out int length) == Errno.OK ? ExactNames.Decode(buffer[..length]) : null;
    }

    /// <summary>
    /// Looks a namespace path up from the root through the mount table and the backends, one component at a time
    /// (<see cref="Descend"/>), without following links. On success the caller holds <paramref name="ino"/> in its
    /// backend (no hold for a mount root) and gives it back with <see cref="ReleaseHeld"/>.
    /// </summary>
    private bool TryWalk(List<string> components, out IFileSystemBackend backend, out ulong ino, out FuseAttr attr)
    {
        backend = _mounts[_table.Root.Index].Backend;
        ino = backend.RootIno;
        var walk = new List<WalkStep>(components.Count);
        try
        {
            foreach (string component in components)
            {
                Descend(walk, component);
            }

            if (walk.Count > 0)
            {
                WalkStep last = walk[^1];
                if (last.Backend is null)
                {
                    attr = default;
                    return false; // missing, or below a link or a file: the caller resolves up to here
                }

                walk.RemoveAt(walk.Count - 1); // its hold is the caller's now
                (backend, ino) = (last.Backend, last.Ino);
            }
        }
        finally
        {
            while (walk.Count > 0)
            {
                Ascend(walk);
            }
        }

        return backend.GetAttr(ino, out attr) == Errno.OK || ReleaseAndFail(backend, ino);
    }

    private static bool ReleaseAndFail(IFileSystemBackend backend, ulong ino)
    {
        ReleaseHeld(backend, ino);
        return false;
    }

    /// <summary>
    /// A lookup whose node the caller keeps past the call (a walk, a scan queue): the node is retained in its backend,
    /// and looked up again if the backend dropped it in between (as <see cref="Lookup"/> does).
    /// </summary>
    private static Errno LookupHeld(IFileSystemBackend backend, ulong dir, ReadOnlySpan<byte> name, out FuseAttr attr)
    {
        for (int attempt = 1; ; attempt++)
        {
            Errno err = backend.Lookup(dir, name, out attr);
            if (err != Errno.OK || backend.Retain(attr.Ino))
            {
                return err;
            }

            if (attempt == MaxLookupAttempts)
            {
                return Errno.ESTALE;
            }
        }
    }

    /// <summary>Gives back a node held by <see cref="LookupHeld"/> (a backend's root is never held).</summary>
    private static void ReleaseHeld(IFileSystemBackend backend, ulong ino)
    {
        if (ino != backend.RootIno)
        {
            backend.Release(ino);
        }
    }
}
