using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Host;
using static InSpatialFs.Interop.LibC;

namespace InSpatialFs.Storage.Overlay;

// Hard links across copy-up keep their identity, as the kernel's index feature does: the upper copy of a lower file
// with several names is also linked into the work directory's "index" under the lower file's identity, and a lookup
// of another name of that lower file links the indexed copy into the upper directory instead of answering with the
// lower file. So a write through one name is seen through all of them, before and after a remount. The index link
// counts in the copy's st_nlink (one more than the names the container sees).
public sealed partial class OverlayFileSystem
{
    private static byte[] IndexName(in InodeIdentity lower) =>
        System.Text.Encoding.ASCII.GetBytes(FormattableString.Invariant($"{lower.Device:x}-{lower.Inode:x}-{lower.Generation:x}\0"));

    /// <summary>After a copy-up of a lower file with several names: the copy joins the index under the lower identity.</summary>
    private unsafe void IndexCopy(in InodeIdentity lower, ulong upperIno)
    {
        if (_index is null || _layers[0].BorrowForCopy(upperIno, out FdLease copy) != Errno.OK) return;
        using (copy)
        {
            byte empty = 0;
            fixed (byte* n = IndexName(lower))
            {
                linkat(copy.Fd, &empty, _index.Fd, n, AT_EMPTY_PATH);
            }
        }
    }

    /// <summary>
    /// During resolution: a lower file with several names whose identity is indexed was copied up through another
    /// name. The indexed copy is linked in under this name too (the directory copied up first), and answers.
    /// </summary>
    private unsafe bool TryUseIndexedCopy(OverlayNode dir, ReadOnlySpan<byte> name, ref LayerObject top, ref FuseAttr attr)
    {
        if (_index is null || top.Layer == 0 || attr.Nlink < 2 || (attr.Mode & S_IFMT) != S_IFREG) return false;
        byte[] indexName = IndexName(LayerOf(top).IdentityOf(top.Ino));
        StatX st;
        fixed (byte* n = indexName)
        {
            if (statx(_index.Fd, n, AT_SYMLINK_NOFOLLOW, STATX_INO, &st) != 0) return false;
        }

        if (EnsureUpper(dir) != Errno.OK || _layers[0].BorrowForCopy(dir.Top.Ino, out FdLease parent) != Errno.OK) return false;
        using (parent)
        {
            Span<byte> nameZ = stackalloc byte[name.Length + 1];
            name.CopyTo(nameZ);
            fixed (byte* n = indexName)
            fixed (byte* target = nameZ)
            {
                if (linkat(_index.Fd, n, parent.Fd, target, 0) != 0 && ErrnoExtensions.LastPInvoke() != Errno.EEXIST) return false;
            }
        }

        if (_layers[0].Lookup(dir.Top.Ino, name, out FuseAttr upper) != Errno.OK) return false;
        ReleaseLayer(top.Layer, top.Ino);
        (top, attr) = (new LayerObject(0, upper.Ino), upper);
        return true;
    }
}
