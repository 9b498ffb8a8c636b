namespace InSpatialFs.Storage.Memory;

/// <summary>
/// The fallback store (file data normally lives in kernel memory, see <see cref="DataVolume"/>).
/// The bytes of one regular file as a sparse map of 4 KiB pages: a page exists only where data was
/// written or space allocated, so a write at 2^40 costs one page and holes read as zeros. The ordered
/// page index set answers SEEK_DATA/SEEK_HOLE without scanning the file.
/// Not thread-safe: callers hold the instance's monitor (the per-file "FileData" lock) or the
/// namespace write lock.
/// </summary>
internal sealed class FileContent
{
    public const int PageShift = 12;
    public const int PageSize = 1 << PageShift;

    private readonly Dictionary<long, byte[]> _pages = [];
    private readonly SortedSet<long> _order = [];

    public long Size { get; set; }

    public int PageCount => _pages.Count;

    /// <summary>How many pages a write or allocation of [offset, offset+length) must add.</summary>
    public long CountMissingPages(long offset, long length)
    {
        if (length <= 0)
        {
            return 0;
        }
        long first = offset >> PageShift;
        long last = (offset + length - 1) >> PageShift;
        long span = last - first + 1;
        if (_pages.Count == 0)
        {
            return span;
        }
        if (span <= 1024)
        {
            // The write path (at most max_write = 1 MiB = 256 pages): probing the map allocates nothing.
            long missing = 0;
            for (long index = first; index <= last; index++)
            {
                missing += _pages.ContainsKey(index) ? 0 : 1;
            }
            return missing;
        }
        return span - _order.GetViewBetween(first, last).Count;
    }

    public void Write(long offset, ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty)
        {
            long index = offset >> PageShift;
            int within = (int)(offset & (PageSize - 1));
            int count = Math.Min(PageSize - within, data.Length);
            data[..count].CopyTo(GetOrAddPage(index).AsSpan(within, count));
            data = data[count..];
            offset += count;
        }
        if (offset > Size)
        {
            Size = offset;
        }
    }

    /// <summary>Reads from <paramref name="offset"/> up to the end of file; holes read as zeros.</summary>
    public int Read(long offset, Span<byte> buffer)
    {
        if (offset >= Size)
        {
            return 0;
        }
        int total = (int)Math.Min(buffer.Length, Size - offset);
        var remaining = buffer[..total];
        while (!remaining.IsEmpty)
        {
            long index = offset >> PageShift;
            int within = (int)(offset & (PageSize - 1));
            int count = Math.Min(PageSize - within, remaining.Length);
            if (_pages.TryGetValue(index, out var page))
            {
                page.AsSpan(within, count).CopyTo(remaining);
            }
            else
            {
                remaining[..count].Clear();
            }
            remaining = remaining[count..];
            offset += count;
        }
        return total;
    }

    /// <summary>Sets the size; shrinking drops whole pages past the end and zeroes the tail of the last one.</summary>
    /// <returns>The number of pages freed.</returns>
    public long Truncate(long newSize)
    {
        long freed = 0;
        if (newSize < Size)
        {
            long firstDropped = (newSize + PageSize - 1) >> PageShift;
            freed = RemovePages(firstDropped, long.MaxValue);
            int tail = (int)(newSize & (PageSize - 1));
            if (tail != 0 && _pages.TryGetValue(newSize >> PageShift, out var page))
            {
                page.AsSpan(tail).Clear();
            }
        }
        else
        {
            // Pages allocated past the old end with KEEP_SIZE hold zeros only, so growing needs nothing.
            freed = 0;
        }
        Size = newSize;
        return freed;
    }

    /// <summary>Creates every missing page in the range (zero-filled). Callers reserved the space.</summary>
    public void Allocate(long offset, long length)
    {
        long first = offset >> PageShift;
        long last = (offset + length - 1) >> PageShift;
        for (long index = first; index <= last; index++)
        {
            GetOrAddPage(index);
        }
    }

    /// <summary>Zeroes [offset, offset+length): whole pages are dropped (a hole), partial pages cleared.</summary>
    /// <returns>The number of pages freed.</returns>
    public long PunchHole(long offset, long length)
    {
        long end = offset + length;
        long firstWhole = (offset + PageSize - 1) >> PageShift;
        long endWhole = end >> PageShift; // exclusive
        ClearWithinPage(offset, Math.Min(end, firstWhole << PageShift));
        if (endWhole >= firstWhole)
        {
            ClearWithinPage(Math.Max(offset, endWhole << PageShift), end);
        }
        return endWhole > firstWhole ? RemovePages(firstWhole, endWhole - 1) : 0;
    }

    /// <summary>Zeroes the range keeping (or creating) its pages: FALLOC_FL_ZERO_RANGE.</summary>
    public void ZeroRange(long offset, long length)
    {
        long end = offset + length;
        while (offset < end)
        {
            long index = offset >> PageShift;
            int within = (int)(offset & (PageSize - 1));
            int count = (int)Math.Min(PageSize - within, end - offset);
            GetOrAddPage(index).AsSpan(within, count).Clear();
            offset += count;
        }
    }

    /// <summary>SEEK_DATA: the first offset at or after <paramref name="offset"/> inside a page, or -1.</summary>
    public long NextData(long offset)
    {
        long index = offset >> PageShift;
        var view = _order.GetViewBetween(index, long.MaxValue);
        if (view.Count == 0)
        {
            return -1;
        }
        long found = Math.Max(offset, view.Min << PageShift);
        return found < Size ? found : -1;
    }

    /// <summary>SEEK_HOLE: the first offset at or after <paramref name="offset"/> not backed by a page (EOF counts as a hole).</summary>
    public long NextHole(long offset)
    {
        long index = offset >> PageShift;
        foreach (long present in _order.GetViewBetween(index, long.MaxValue))
        {
            if (present != index)
            {
                break;
            }
            index++;
        }
        return Math.Min(Size, Math.Max(offset, index << PageShift));
    }

    public void Clear()
    {
        _pages.Clear();
        _order.Clear();
        Size = 0;
    }

    private byte[] GetOrAddPage(long index)
    {
        if (!_pages.TryGetValue(index, out var page))
        {
            page = new byte[PageSize];
            _pages.Add(index, page);
            _order.Add(index);
        }
        return page;
    }

    private void ClearWithinPage(long from, long to)
    {
        if (to <= from)
        {
            return;
        }
        if (_pages.TryGetValue(from >> PageShift, out var page))
        {
            int within = (int)(from & (PageSize - 1));
            page.AsSpan(within, (int)(to - from)).Clear();
        }
    }

    private long RemovePages(long first, long last)
    {
        if (first > last)
        {
            return 0;
        }
        var doomed = _order.GetViewBetween(first, last).ToArray();
        foreach (long index in doomed)
        {
            _pages.Remove(index);
            _order.Remove(index);
        }
        return doomed.Length;
    }
}
