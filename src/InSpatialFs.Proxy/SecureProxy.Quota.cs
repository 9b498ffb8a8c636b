using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Proxy.Nodes;
using InSpatialFs.Security.Resources;
using InSpatialFs.Storage;

namespace InSpatialFs.Proxy;

// Disk-bytes and inode quotas of host mounts: growth is charged before the operation (EDQUOT refuses it with
// nothing changed) and given back when the operation fails or when data and inodes go away. Mounts without a
// quota pay one array read.
public sealed partial class SecureProxy
{
    /// <summary>Charges one new inode on the mount; EDQUOT past the limit.</summary>
    private Errno ChargeInode(int mount) => _quotas[mount] is QuotaAccount q ? q.TryCharge(0, 1) : Errno.OK;

    private void RefundInode(int mount) => _quotas[mount]?.TryCharge(0, -1);

    /// <summary>Charges the bytes a write or size change would add beyond the current end of file.</summary>
    private Errno ChargeGrowth(ProxyNode node, long newEnd, out long charged)
    {
        charged = 0;
        if (_quotas[node.Mount] is not { ByteLimit: not null } q || BackendOf(node).GetAttr(node.Ino, out FuseAttr attr) != Errno.OK)
        {
            return Errno.OK;
        }

        long growth = newEnd - (long)attr.Size;
        if (growth <= 0)
        {
            return Errno.OK;
        }

        Errno err = q.TryCharge(growth, 0);
        charged = err == Errno.OK ? growth : 0;
        return err;
    }

    private void RefundBytes(int mount, long bytes)
    {
        if (bytes > 0)
        {
            _quotas[mount]?.TryCharge(-bytes, 0);
        }
    }

    /// <summary>Before an unlink or rmdir: what removing the name will free (the inode and its bytes at the last link).</summary>
    private (long Bytes, long Inodes) FreedByRemoval(ProxyNode dir, ReadOnlySpan<byte> name)
    {
        if (_quotas[dir.Mount] is null)
        {
            return (0, 0);
        }

        IFileSystemBackend backend = BackendOf(dir);
        if (backend.Lookup(dir.Ino, name, out FuseAttr attr) != Errno.OK)
        {
            return (0, 0);
        }

        backend.Forget(attr.Ino, 1);
        bool directory = (attr.Mode & LibC.S_IFMT) == LibC.S_IFDIR;
        return directory || attr.Nlink <= 1 ? (directory ? 0 : (long)attr.Size, 1) : (0, 0);
    }

    private void Refund(int mount, (long Bytes, long Inodes) freed)
    {
        if (freed != (0, 0))
        {
            _quotas[mount]?.TryCharge(-freed.Bytes, -freed.Inodes);
        }
    }

    /// <summary>Passthrough writes never reach the daemon, so a mount with a byte quota keeps writes mediated.</summary>
    private bool QuotaNeedsMediatedWrites(ProxyNode node) => _quotas[node.Mount] is { ByteLimit: not null };
}
