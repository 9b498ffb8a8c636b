using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Proxy.Nodes;
using InSpatialFs.Security.Resources;
using InSpatialFs.Storage;

namespace InSpatialFs.Proxy;

// Disk-bytes and inode quotas of host mounts, charged per object (see QuotaAccount): a new inode before a create
// (EDQUOT refuses it with nothing changed), block growth reserved before a write, truncate, fallocate or copy and
// settled after it against the blocks the object really holds, and an object's whole charge given back when its
// last name goes (unlink, rmdir, or a rename over it). Mounts without a quota pay one array read.
public sealed partial class SecureProxy
{
    /// <summary>A reservation made before a growing operation, settled after it.</summary>
    private readonly record struct QuotaHold(QuotaAccount? Account, InodeIdentity Object, long Reserved, bool Settle);

    private const long QuotaBlock = 4096;

    /// <summary>Charges one new inode on the mount; EDQUOT past the limit.</summary>
    private Errno ChargeInode(int mount) => _quotas[mount] is QuotaAccount q ? q.TryCharge(0, 1) : Errno.OK;

    private void RefundInode(int mount) => _quotas[mount]?.TryCharge(0, -1);

    /// <summary>After a successful create on a quota mount: the new object is the container's, inode and all.</summary>
    private void ChargedNewObject(int mount, in FuseEntryOut entry)
    {
        if (_quotas[mount] is QuotaAccount q)
        {
            q.Created(IdentityOfEntry(entry));
        }
    }

    /// <summary>
    /// Before an operation that may allocate blocks of <paramref name="node"/>: reserves what it can add (the blocks
    /// from the current end of file to <paramref name="newEnd"/>, plus <paramref name="allocating"/> for fallocate);
    /// EDQUOT when that does not fit. Writes inside a dense file reserve nothing and are not settled.
    /// </summary>
    private Errno BeginGrowth(ProxyNode node, long newEnd, long allocating, out QuotaHold hold)
    {
        hold = default;
        if (_quotas[node.Mount] is not { ByteLimit: not null } q || BackendOf(node).GetAttr(node.Ino, out FuseAttr attr) != Errno.OK)
        {
            return Errno.OK;
        }

        long size = (long)attr.Size, allocated = (long)attr.Blocks * 512;
        long estimate = allocating + Math.Max(0, RoundUp(newEnd) - RoundUp(size));
        bool sparse = allocated < RoundUp(size);
        if (estimate == 0 && !sparse && newEnd >= 0)
        {
            return Errno.OK; // an overwrite inside allocated blocks changes nothing
        }

        InodeIdentity id = IdentityOf(node);
        q.Touch(id, allocated);
        Errno err = q.TryCharge(estimate, 0);
        if (err == Errno.OK)
        {
            hold = new QuotaHold(q, id, estimate, Settle: true);
        }

        return err;
    }

    /// <summary>After the operation (done or failed): charges what the object really holds now, returning the reservation.</summary>
    private void EndGrowth(ProxyNode node, in QuotaHold hold)
    {
        if (!hold.Settle)
        {
            return;
        }

        if (BackendOf(node).GetAttr(node.Ino, out FuseAttr attr) == Errno.OK)
        {
            hold.Account!.Settle(hold.Object, (long)attr.Blocks * 512, hold.Reserved);
        }
        else
        {
            hold.Account!.Settle(default, 0, hold.Reserved);
        }
    }

    private static long RoundUp(long bytes) => bytes <= 0 ? 0 : (bytes + QuotaBlock - 1) / QuotaBlock * QuotaBlock;

    /// <summary>
    /// Before an unlink, rmdir or rename over a name: the object that goes with it when this is its last name
    /// (a directory, or a file with one link), for <see cref="FreedObject"/> after the operation succeeded.
    /// </summary>
    private InodeIdentity ObjectFreedByRemoving(ProxyNode dir, ReadOnlySpan<byte> name)
    {
        if (_quotas[dir.Mount] is null)
        {
            return default;
        }

        IFileSystemBackend backend = BackendOf(dir);
        if (backend.Lookup(dir.Ino, name, out FuseAttr attr) != Errno.OK)
        {
            return default;
        }

        InodeIdentity id = backend.IdentityOf(attr.Ino);
        bool directory = (attr.Mode & LibC.S_IFMT) == LibC.S_IFDIR;
        if (!directory && _nodes.TryFind(dir.Mount, attr.Ino, out ProxyNode open) && Volatile.Read(ref open.OpenFiles) > 0)
        {
            return default; // still open: its blocks stay allocated, so its charge stays until its last release (Release)
        }

        return directory || attr.Nlink <= 1 ? id : default;
    }

    private void FreedObject(int mount, in InodeIdentity obj)
    {
        if (!obj.IsNone)
        {
            _quotas[mount]?.Removed(obj);
        }
    }

    /// <summary>Passthrough writes never reach the daemon, so a mount with a byte quota keeps writes mediated.</summary>
    private bool QuotaNeedsMediatedWrites(ProxyNode node) => _quotas[node.Mount] is { ByteLimit: not null };
}
