namespace InSpatialFs.Daemon.Control;

/// <summary>
/// The `events` control file's content: an append-only byte log of JSON lines, of which the most recent
/// <see cref="Capacity"/> bytes are kept. Offsets are positions in the whole log since start, so every reader
/// (cat, tail -f, several at once) reads the same stream at its own position; a read at the end blocks until
/// more arrives, like /proc/kmsg. A reader that fell behind the kept window continues at the window's start.
///
/// Lock order: EventLog._gate is a leaf lock.
/// </summary>
internal sealed class EventLog
{
    private readonly byte[] _ring;
    private readonly object _gate = new(); // Monitor.Wait/PulseAll need a monitor, not a Lock
    private long _end;

    public EventLog(int capacity = 4 * 1024 * 1024)
    {
        _ring = new byte[capacity];
    }

    public int Capacity => _ring.Length;

    /// <summary>Total bytes ever appended: the file size readers see.</summary>
    public long End
    {
        get
        {
            lock (_gate)
            {
                return _end;
            }
        }
    }

    /// <summary>Time of the last append (the file's mtime, so pollers like tail -f notice growth).</summary>
    public DateTime LastAppendUtc { get; private set; } = DateTime.UtcNow;

    public void Append(ReadOnlySpan<byte> line)
    {
        if (line.Length > _ring.Length)
        {
            return; // a single line larger than the whole window cannot be kept
        }

        lock (_gate)
        {
            long start = _end;
            for (int done = 0; done < line.Length;)
            {
                int at = (int)((start + done) % _ring.Length);
                int n = Math.Min(line.Length - done, _ring.Length - at);
                line.Slice(done, n).CopyTo(_ring.AsSpan(at, n));
                done += n;
            }

            _end += line.Length;
            LastAppendUtc = DateTime.UtcNow;
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>
    /// Copies bytes from log position <paramref name="position"/>; waits up to <paramref name="wait"/> at the end for
    /// new data. A reader that fell behind the kept window is moved to the first whole line in it — after a newline
    /// when it was mid-line (<paramref name="readerAtLineStart"/> false), so no line is glued to a stranger's tail —
    /// and <paramref name="position"/> comes back as the log position of the first byte returned (the caller keeps
    /// that skew for its next read, so it never re-reads the window). Returns the count (0 = nothing new within the wait).
    /// </summary>
    public int Read(ref long position, Span<byte> destination, TimeSpan wait, bool readerAtLineStart = true)
    {
        lock (_gate)
        {
            if (position >= _end && wait > TimeSpan.Zero)
            {
                Monitor.Wait(_gate, wait);
            }

            long oldest = Math.Max(0, _end - _ring.Length);
            if (position < oldest)
            {
                position = oldest;
                if (oldest > 0)
                {
                    // The byte before the window was overwritten: skip the partial line the window starts with.
                    while (position < _end && _ring[(int)(position % _ring.Length)] != (byte)'\n')
                    {
                        position++;
                    }

                    position = Math.Min(position + 1, _end);
                }

                if (!readerAtLineStart && destination.Length > 1)
                {
                    // Ends the reader's partial line; the newline stands one byte before the data in the reader's offsets.
                    destination[0] = (byte)'\n';
                    int copied = Copy(position, destination[1..]);
                    position--;
                    return copied + 1;
                }
            }

            return Copy(position, destination);
        }
    }

    /// <summary>
    /// Copies from log position <paramref name="offset"/> (inside the window); the caller holds _gate. Only whole lines
    /// when the destination cannot take everything (the log itself always ends on a line end): a reader's position
    /// then stays at a line start, so if the window later overtakes it, no half line is ever handed out.
    /// </summary>
    private int Copy(long offset, Span<byte> destination)
    {
        long available = Math.Max(0, _end - offset);
        int count = (int)Math.Min(destination.Length, available);
        for (int done = 0; done < count;)
        {
            int at = (int)((offset + done) % _ring.Length);
            int n = Math.Min(count - done, _ring.Length - at);
            _ring.AsSpan(at, n).CopyTo(destination.Slice(done, n));
            done += n;
        }

        if (count < available)
        {
            int lastNewline = destination[..count].LastIndexOf((byte)'\n');
            if (lastNewline >= 0)
            {
                count = lastNewline + 1; // a line longer than the whole buffer still goes out in pieces
            }
        }

        return count;
    }
}
