using System.Collections.Concurrent;
using InSpatialFs.Interop;
using InSpatialFs.Security.Events;

namespace InSpatialFs.Security.Policy;

/// <summary>
/// Files created or modified since the instance started, for the dynamic-code control, marked by what they are
/// (<see cref="InodeIdentity"/>), not by a name: a rename, an extra hard link, the removal of a name, an O_TMPFILE
/// linked in later or a /proc/self/fd re-open all reach the same mark. Fed synchronously from Record (a write
/// followed at once by an exec is never missed), read on opens only. Bounded: past <see cref="Capacity"/> it fails
/// closed (every file counts as runtime-written) rather than forgetting what was written.
/// </summary>
public sealed class RuntimeWrittenObjects
{
    private readonly ConcurrentDictionary<InodeIdentity, byte> _objects = new();
    private volatile bool _overflowed;
    // ConcurrentDictionary.Count takes every bucket lock: on the request path the size is kept here instead.
    private int _count;

    public RuntimeWrittenObjects(int capacity = 1 << 20) => Capacity = capacity;

    public int Capacity { get; }
    public int Count => Volatile.Read(ref _count);
    public bool Overflowed => _overflowed;

    /// <summary>Raised for each newly marked object that names the same file after a restart (the persistence hook).</summary>
    public event Action<InodeIdentity>? Marked;

    public bool Contains(in InodeIdentity obj) => _overflowed || (!obj.IsNone && _objects.ContainsKey(obj));

    /// <summary>Updates the marks from a completed, successful op.</summary>
    public void Observe(FsEvent e)
    {
        if (e.Result != 0 || e.Decision == Decision.Deny) return;
        switch (e.Op)
        {
            case FsOp.Create:
            case FsOp.TmpFile:
            case FsOp.Write:
            case FsOp.Truncate:
            case FsOp.Fallocate:
            case FsOp.MkNod:
            case FsOp.CopyFileRange: // Object is the destination
                Add(e.Object);
                break;
            case FsOp.Open:
                // An open for write (or with O_TRUNC) may be served by DirectFS, whose writes we never see.
                if (e.IsWrite || (e.Flags & (LibC.O_ACCMODE | LibC.O_TRUNC)) != 0) Add(e.Object);
                break;
            default:
                break; // renames, links and unlinks change names, not objects
        }
    }

    /// <summary>Marks an object (also used to reload the marks of persistent objects at start).</summary>
    public void Add(in InodeIdentity obj)
    {
        if (obj.IsNone) return;
        if (Volatile.Read(ref _count) >= Capacity)
        {
            _overflowed = true;
            return;
        }

        if (_objects.TryAdd(obj, 0))
        {
            Interlocked.Increment(ref _count);
            if (obj.Persistent) Marked?.Invoke(obj);
        }
    }
}
