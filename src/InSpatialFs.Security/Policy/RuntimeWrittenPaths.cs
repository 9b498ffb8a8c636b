using System.Collections.Concurrent;
using InSpatialFs.Security.Events;

namespace InSpatialFs.Security.Policy;

/// <summary>
/// Namespace paths created or modified since the instance started, for the dynamic-code control. Fed
/// synchronously from Record (so a write followed at once by an exec is never missed), read on exec
/// opens only. Bounded: past <see cref="Capacity"/> it fails closed (every exec outside read-only paths
/// counts as runtime-written) rather than forgetting what was written.
/// </summary>
public sealed class RuntimeWrittenPaths
{
    private readonly ConcurrentDictionary<string, byte> _paths = new(StringComparer.Ordinal);
    private volatile bool _overflowed;
    // ConcurrentDictionary.Count takes every bucket lock: on the request path the size is kept here instead.
    private int _count;

    public RuntimeWrittenPaths(int capacity = 1 << 20) => Capacity = capacity;

    public int Capacity { get; }
    public int Count => Volatile.Read(ref _count);
    public bool Overflowed => _overflowed;

    public bool Contains(string path) => _overflowed || _paths.ContainsKey(path);

    /// <summary>Updates the set from a completed, successful op.</summary>
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
            case FsOp.Symlink:
            case FsOp.MkNod:
                Add(e.Path);
                break;
            case FsOp.Open:
                // An open for write (or with O_TRUNC) may be served by DirectFS, whose writes we never see.
                if (e.IsWrite || (e.Flags & (Interop.LibC.O_ACCMODE | Interop.LibC.O_TRUNC)) != 0) Add(e.Path);
                break;
            case FsOp.CopyFileRange:
                Add(e.Target ?? e.Path);
                break;
            case FsOp.Link:
                if (e.Target != null) Add(e.Target);
                break;
            case FsOp.Rename:
                if (e.Target != null) MoveTree(e.Path, e.Target);
                if ((e.Flags & Interop.LibC.RENAME_EXCHANGE) != 0) Add(e.Path);
                break;
            case FsOp.Unlink:
                if (_paths.TryRemove(e.Path, out _)) Interlocked.Decrement(ref _count);
                break;
            default:
                break;
        }
    }

    private void Add(string path)
    {
        if (Volatile.Read(ref _count) >= Capacity)
        {
            _overflowed = true;
            return;
        }

        if (_paths.TryAdd(path, 0)) Interlocked.Increment(ref _count);
    }

    /// <summary>The destination counts as written (its content was replaced); written paths below a renamed directory move with it.</summary>
    private void MoveTree(string from, string to)
    {
        Add(to);
        string prefix = from + "/";
        foreach (string p in _paths.Keys)
        {
            if (p.StartsWith(prefix, StringComparison.Ordinal))
            {
                Add(string.Concat(to, p.AsSpan(from.Length)));
            }
        }
    }
}
