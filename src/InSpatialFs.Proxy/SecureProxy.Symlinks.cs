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
    /// </summary>
    private string? ResolveSymlinkTarget(string linkDir, string target)
    {
        var resolved = new List<string>();
        if (target.Length == 0 || target[0] != '/')
        {
            resolved.AddRange(linkDir.Split('/', StringSplitOptions.RemoveEmptyEntries));
        }

        var pending = new Stack<string>(target.Split('/', StringSplitOptions.RemoveEmptyEntries).Reverse());
        int hops = 0;
        bool existing = true; // components still exist in the namespace (once one does not, the rest are lexical)
        while (pending.TryPop(out string? component))
        {
            if (component == ".")
            {
                continue;
            }

            if (component == "..")
            {
                if (resolved.Count == 0)
                {
                    return null; // above the root: the lexical rule already calls this leaving
                }

                resolved.RemoveAt(resolved.Count - 1);
                existing = true;
                continue;
            }

            resolved.Add(component);
            if (!existing || LinkBodyAt(resolved) is not string body)
            {
                existing = existing && ExistsAt(resolved);
                continue;
            }

            if (++hops > MaxSymlinkHops)
            {
                return null;
            }

            // Replace the link by its body: relative bodies continue from the link's directory.
            resolved.RemoveAt(resolved.Count - 1);
            if (body.StartsWith('/'))
            {
                resolved.Clear();
            }

            foreach (string part in body.Split('/', StringSplitOptions.RemoveEmptyEntries).Reverse())
            {
                pending.Push(part);
            }
        }

        return "/" + string.Join('/', resolved);
    }

    /// <summary>The body of the symlink at <paramref name="components"/>, or null when that is no symlink (or nothing).</summary>
    private string? LinkBodyAt(List<string> components)
    {
        if (!TryWalk(components, out IFileSystemBackend? backend, out ulong ino, out FuseAttr attr))
        {
            return null;
        }

        try
        {
            if ((attr.Mode & LibC.S_IFMT) != LibC.S_IFLNK)
            {
                return null;
            }

            Span<byte> buffer = stackalloc byte[4096];
            return backend.ReadLink(ino, buffer, out int length) == Errno.OK ? ExactNames.Decode(buffer[..length]) : null;
        }
        finally
        {
            ReleaseHeld(backend, ino);
        }
    }

    private bool ExistsAt(List<string> components)
    {
        if (!TryWalk(components, out IFileSystemBackend? backend, out ulong ino, out _))
        {
            return false;
        }

        ReleaseHeld(backend, ino);
        return true;
    }

    /// <summary>
    /// Looks a namespace path up from the root through the mount table and the backends, one component at a time,
    /// without following links. On success the caller holds <paramref name="ino"/> in its backend (no hold for a mount
    /// root) and gives it back with <see cref="ReleaseHeld"/>; each step holds its directory while it looks up the next.
    /// </summary>
    private bool TryWalk(List<string> components, out IFileSystemBackend backend, out ulong ino, out FuseAttr attr)
    {
        backend = _mounts[_table.Root.Index].Backend;
        ino = backend.RootIno;
        attr = default;
        string path = "";
        for (int i = 0; i < components.Count; i++)
        {
            path += "/" + components[i];
            int mount = MountAt(path);
            if (mount >= 0)
            {
                ReleaseHeld(backend, ino);
                backend = _mounts[mount].Backend;
                ino = backend.RootIno;
                continue;
            }

            Errno err = LookupHeld(backend, ino, ExactNames.Encode(components[i]), out attr);
            ReleaseHeld(backend, ino);
            if (err != Errno.OK)
            {
                return false;
            }

            ino = attr.Ino;
            if (i < components.Count - 1 && (attr.Mode & LibC.S_IFMT) != LibC.S_IFDIR)
            {
                ReleaseHeld(backend, ino);
                return false; // a link or a file in the middle: the caller resolves up to here
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
