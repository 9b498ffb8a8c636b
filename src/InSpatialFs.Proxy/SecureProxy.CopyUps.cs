using InSpatialFs.Interop;
using InSpatialFs.Security.Events;
using InSpatialFs.Storage.Overlay;

namespace InSpatialFs.Proxy;

// An overlay copy-up moves a file from a lower layer into the upper one: for the container it is the same file, but it
// has a new host identity. Marks keyed by identity (the class a protected name gives all names of a hard-linked file,
// "written at run time") and the node's own identity move with it, or a rename of an ancestor (which copies the tree
// up) would strip a forbidden file's other name of its class, and an overwritten image binary would lose its
// runtime-written mark as soon as the kernel forgot the node.
public sealed partial class SecureProxy
{
    // Copy-ups made while this thread serves its current request: the request's event was made before the copy (it
    // names the lower object), and the copy is what the operation wrote. Rare, so the table exists only once needed.
    [ThreadStatic]
    private static Dictionary<InodeIdentity, InodeIdentity>? t_copies;

    private void FollowCopyUps()
    {
        for (int i = 0; i < _mounts.Length; i++)
        {
            if (_mounts[i].Backend is OverlayFileSystem overlay)
            {
                int mount = i;
                overlay.CopiedUp += (ino, original, copy) => CopiedUp(mount, ino, original, copy);
            }
        }
    }

    private void CopiedUp(int mount, ulong ino, InodeIdentity original, InodeIdentity copy)
    {
        if (original.IsNone || copy.IsNone)
        {
            return;
        }

        _gate.ObjectCopied(original, copy);
        _nodes.CopiedUp(mount, ino, copy);
        (t_copies ??= [])[original] = copy;
    }

    /// <summary>Before a completed event is recorded: an object copied up during the operation is named by its copy.</summary>
    private static void TakeCopiedObject(FsEvent e)
    {
        if (t_copies is not { Count: > 0 } copies)
        {
            return;
        }

        if (copies.TryGetValue(e.Object, out InodeIdentity copy))
        {
            e.Object = copy;
        }

        copies.Clear();
    }
}
