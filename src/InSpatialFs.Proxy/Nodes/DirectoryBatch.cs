using InSpatialFs.Storage;

namespace InSpatialFs.Proxy.Nodes;

/// <summary>
/// Collects a batch of directory entries from a backend before the proxy writes them into the reply, so
/// that READDIRPLUS can look each entry up after the backend's listing call returned (never re-entering a
/// backend from inside its own callback). One instance per reader thread, reused; names live in one buffer.
/// </summary>
internal sealed class DirectoryBatch : IDirectoryEntrySink
{
    private readonly byte[] _names = new byte[64 * 1024];
    private readonly Entry[] _entries = new Entry[1024];
    private int _nameBytes;
    private int _limit;

    [ThreadStatic]
    private static DirectoryBatch? s_current;

    public int Count { get; private set; }

    /// <summary>The calling thread's batch, emptied, accepting at most <paramref name="limit"/> entries.</summary>
    public static DirectoryBatch Rent(int limit)
    {
        DirectoryBatch batch = s_current ??= new DirectoryBatch();
        batch.Count = 0;
        batch._nameBytes = 0;
        batch._limit = Math.Clamp(limit, 1, batch._entries.Length);
        return batch;
    }

    public bool TryAdd(ReadOnlySpan<byte> name, ulong ino, uint mode, long nextOffset)
    {
        if (Count >= _limit || _nameBytes + name.Length > _names.Length)
        {
            return false;
        }

        name.CopyTo(_names.AsSpan(_nameBytes));
        _entries[Count++] = new Entry(_nameBytes, name.Length, ino, mode, nextOffset);
        _nameBytes += name.Length;
        return true;
    }

    public ReadOnlySpan<byte> NameAt(int i) => _names.AsSpan(_entries[i].NameStart, _entries[i].NameLength);

    public ref readonly Entry At(int i) => ref _entries[i];

    internal readonly record struct Entry(int NameStart, int NameLength, ulong Ino, uint Mode, long NextOffset);
}
