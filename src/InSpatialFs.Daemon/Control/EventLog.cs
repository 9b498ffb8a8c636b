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
    /// When the destination cut a line longer than itself, <paramref name="restOfLine"/> is a copy of that line's
    /// remaining bytes up to and including its newline (see <see cref="EventCursor"/>: the window may overwrite them
    /// before the reader comes back); otherwise null.
    /// </summary>
    public int Read(ref long position, Span<byte> destination, TimeSpan wait, bool readerAtLineStart, out byte[]? restOfLine)
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
                    int copied = Copy(position, destination[1..], out restOfLine);
                    position--;
                    return copied + 1;
                }
            }

            return Copy(position, destination, out restOfLine);
        }
    }

    /// <summary>
    /// Copies from log position <paramref name="offset"/> (inside the window); the caller holds _gate. Only whole lines
    /// when the destination cannot take everything (the log itself always ends on a line end): a reader's position
    /// then stays at a line start, so if the window later overtakes it, no half line is ever handed out.
    /// </summary>
    private int Copy(long offset, Span<byte> destination, out byte[]? restOfLine)
    {
        restOfLine = null;
        long available = Math.Max(0, _end - offset);
        int count = (int)Math.Min(destination.Length, available);
        CopyOut(offset, destination[..count]);

        if (count < available)
        {
            int lastNewline = destination[..count].LastIndexOf((byte)'\n');
            if (lastNewline >= 0)
            {
                count = lastNewline + 1;
            }
            else
            {
                restOfLine = RestOfLine(offset + count); // a line longer than the whole buffer goes out in pieces
            }
        }

        return count;
    }

    /// <summary>A copy of the bytes from <paramref name="from"/> (inside the window, mid-line) to the end of that line; the caller holds _gate.</summary>
    private byte[] RestOfLine(long from)
    {
        long end = from;
        while (_ring[(int)(end % _ring.Length)] != (byte)'\n')
        {
            end++; // the log always ends on a newline, so this stops inside the window
        }

        var rest = new byte[end + 1 - from];
        CopyOut(from, rest);
        return rest;
    }

    /// <summary>Fills <paramref name="destination"/> from log position <paramref name="from"/> (inside the window), across the ring's wrap.</summary>
    private void CopyOut(long from, Span<byte> destination)
    {
        for (int done = 0; done < destination.Length;)
        {
            int at = (int)((from + done) % _ring.Length);
            int n = Math.Min(destination.Length - done, _ring.Length - at);
            _ring.AsSpan(at, n).CopyTo(destination.Slice(done, n));
            done += n;
        }
    }
}
