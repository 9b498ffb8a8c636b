using System.Text;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage;
using InSpatialFs.Storage.Mounts;

namespace InSpatialFs.Daemon.Outputs;

/// <summary>
/// Reads a small file of the container's own tree (its /etc/passwd and /etc/group, for user.name and group.name)
/// through the mount table and the backend that serves it: component by component from the backend's root, relative
/// to its descriptors as every container request is, so a symlink planted in the tree never leads to the host's
/// files. Never through the FUSE mount itself (no round trip through the kernel from the daemon).
/// </summary>
internal static class ContainerFiles
{
    private const uint SIfmt = 0xF000, SIfreg = 0x8000;

    /// <summary>The file's text (at most <paramref name="maxBytes"/>), or null when it is missing, not a regular file or unreadable.</summary>
    public static string? Read(MountTable mounts, string path, int maxBytes)
    {
        MountResolution where = mounts.Resolve(path);
        IFileSystemBackend backend = where.Mount.Backend;
        // A best-effort read: the walk holds nothing (a node dropped under it ends the read with null).
        ulong ino = backend.RootIno;
        FuseAttr attr = default;
        foreach (string part in where.RelativePath.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (backend.Lookup(ino, Encoding.UTF8.GetBytes(part), out FuseAttr found) != Errno.OK)
            {
                return null;
            }

            ino = found.Ino;
            attr = found;
        }

        if ((attr.Mode & SIfmt) != SIfreg)
        {
            return null;
        }

        if (backend.Open(ino, LibC.O_RDONLY, new Caller(0, 0, 0), out IOpenFile opened) != Errno.OK)
        {
            return null;
        }

        try
        {
            byte[] buffer = new byte[Math.Min(maxBytes, (int)Math.Min(attr.Size, int.MaxValue))];
            int total = 0;
            while (total < buffer.Length && opened.Read(total, buffer.AsSpan(total), out int n) == Errno.OK && n > 0)
            {
                total += n;
            }

            return Encoding.UTF8.GetString(buffer, 0, total);
        }
        finally
        {
            opened.Release();
        }
    }
}
