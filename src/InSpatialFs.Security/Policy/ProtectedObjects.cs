using System.Collections.Concurrent;
using InSpatialFs.Interop;
using InSpatialFs.Security.Events;

namespace InSpatialFs.Security.Policy;

/// <summary>
/// Classes that follow an object with several names (hard links): a file named by a forbidden or read-only pattern
/// keeps that class under every other name it has, so an image that links /etc/shadow as /backup/s does not hand out
/// the shadow file as /backup/s. Only multiply-linked regular files are marked (a single name carries its class
/// already). Marks come from the proxy: the protected names it resolves at start and every protected name it sees;
/// the most restrictive class wins. Lock-free reads; an empty table costs one volatile read per decision.
/// </summary>
public sealed class ProtectedObjects
{
    private readonly ConcurrentDictionary<InodeIdentity, PathMatch> _marks = new();
    private volatile int _count;

    public int Count => _count;

    /// <summary>Marks <paramref name="obj"/> with <paramref name="match"/> unless it already has a stricter class.</summary>
    public void Mark(in InodeIdentity obj, PathMatch match)
    {
        if (obj.IsNone || match.Class is not (PathClass.Forbidden or PathClass.ReadOnly)) return;
        PathMatch m = match;
        _marks.AddOrUpdate(obj, m, (_, old) => Strictness(old.Class) >= Strictness(m.Class) ? old : m);
        _count = _marks.Count;
    }

    /// <summary>The copy of an object (overlay copy-up) gets the original's class.</summary>
    public void Carry(in InodeIdentity original, in InodeIdentity copy)
    {
        if (_count != 0 && !original.IsNone && _marks.TryGetValue(original, out PathMatch mark))
        {
            Mark(copy, mark);
        }
    }

    /// <summary>The stricter of <paramref name="byName"/> and the object's mark.</summary>
    public PathMatch Apply(in InodeIdentity obj, PathMatch byName) =>
        _count != 0 && !obj.IsNone && _marks.TryGetValue(obj, out PathMatch mark) && Strictness(mark.Class) > Strictness(byName.Class) ? mark : byName;

    private static int Strictness(PathClass c) => c switch
    {
        PathClass.Forbidden => 2,
        PathClass.ReadOnly => 1,
        _ => 0,
    };
}
