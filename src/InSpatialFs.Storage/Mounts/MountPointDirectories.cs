using System.Text;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;

namespace InSpatialFs.Storage.Mounts;

/// <summary>
/// Every mount point a directory of the mount it sits in: made at start where missing (mode 0755, owned by root,
/// missing parents too), as a container runtime makes its mount points in the rootfs. Without it a mount point is
/// reached by name but missing from its parent's listings (`ls /` without `data`, `find` and `tar` never descend).
/// </summary>
public static class MountPointDirectories
{
    private static readonly Caller Root = new(0, 0, 0);

    /// <summary>
    /// Makes what is missing; returns the mount points left reachable by name only, with why: a read-only parent mount,
    /// a non-directory in the way, or the parent backend's refusal.
    /// </summary>
    public static IReadOnlyList<(string Path, Errno Error)> Ensure(MountTable table)
    {
        ArgumentNullException.ThrowIfNull(table);
        var unlisted = new List<(string, Errno)>();
        foreach (MountEntry m in table.Entries.Where(e => e.Path != "/").OrderBy(e => e.Path.Length))
        {
            int slash = m.Path.LastIndexOf('/');
            MountResolution parent = table.Resolve(slash == 0 ? "/" : m.Path[..slash]);
            string name = m.Path[(slash + 1)..];
            string relative = parent.RelativePath.Length == 0 ? name : parent.RelativePath + "/" + name;
            Errno e = Make(parent.Mount.Backend, relative, canMake: !parent.Mount.ReadOnly);
            if (e != Errno.OK)
            {
                unlisted.Add((m.Path, e));
            }
        }

        return unlisted;
    }

    private static Errno Make(IFileSystemBackend backend, string relative, bool canMake)
    {
        ulong dir = backend.RootIno;
        foreach (string part in relative.Split('/'))
        {
            byte[] name = Encoding.UTF8.GetBytes(part);
            Errno e = backend.Lookup(dir, name, out FuseAttr attr);
            if (e == Errno.ENOENT)
            {
                e = canMake ? backend.MkDir(dir, name, 0x1ED, Root, out attr) : Errno.EROFS;
            }

            if (e != Errno.OK)
            {
                return e;
            }

            if ((attr.Mode & LibC.S_IFMT) != LibC.S_IFDIR)
            {
                return Errno.ENOTDIR;
            }

            dir = attr.Ino;
        }

        return Errno.OK;
    }
}
