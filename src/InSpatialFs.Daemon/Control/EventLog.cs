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
    /// new data. A reader that fell behind the kept window is moved to the first whole line in it, and
    /// <paramref name="position"/> says where the returned bytes start (the caller keeps that skew for its next read,
    /// so it neither re-reads the window nor starts mid-line). Returns the count (0 = nothing new within the wait).
    /// </summary>
    public int Read(ref long position, Span<byte> destination, TimeSpan wait)
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
            }

            long offset = position;
            int count = (int)Math.Min(destination.Length, Math.Max(0, _end - offset));
            for (int done = 0; done < count;)
            {
                int at = (int)((offset + done) % _ring.Length);
                int n = Math.Min(count - done, _ring.Length - at);
                _ring.AsSpan(at, n).CopyTo(destination.Slice(done, n));
                done += n;
            }

            return count;
        }
    }
}
