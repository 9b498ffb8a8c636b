namespace InSpatialFs.Daemon.Control;

/// <summary>
/// One open `events` file's place in the <see cref="EventLog"/>. The kernel asks by file offset; the cursor maps it to
/// a log position (the skew grows when a reader that fell behind the kept window is moved forward). A reader whose
/// buffer is shorter than a line gets that line in pieces, and the cursor keeps a copy of the rest of it: the window
/// may overwrite those bytes before the reader comes back, and a JSON-lines reader must never see a line cut short.
///
/// Lock order: a cursor's lock, then EventLog's gate.
/// </summary>
internal sealed class EventCursor(EventLog log)
{
    private readonly Lock _lock = new();
    private long _skew;
    private bool _atLineStart = true;
    private byte[]? _carried;
    private int _carriedFrom;
    private long _carriedAt; // the file offset of _carried[_carriedFrom]

    /// <summary>Reads at file offset <paramref name="offset"/>, waiting up to <paramref name="wait"/> at the end of the log; 0 = nothing new.</summary>
    public int Read(long offset, Span<byte> destination, TimeSpan wait)
    {
        if (destination.IsEmpty)
        {
            return 0;
        }

        lock (_lock)
        {
            if (_carried != null)
            {
                if (offset == _carriedAt)
                {
                    int n = Math.Min(destination.Length, _carried.Length - _carriedFrom);
                    _carried.AsSpan(_carriedFrom, n).CopyTo(destination);
                    _carriedFrom += n;
                    _carriedAt += n;
                    if (_carriedFrom == _carried.Length)
                    {
                        _carried = null; // the line is complete: the reader stands at a line start again
                        _atLineStart = true;
                    }

                    return n;
                }

                _carried = null; // the reader moved elsewhere (a positioned read): the log serves it as it stands
            }

            long position = offset + _skew;
            int count = log.Read(ref position, destination, wait, _atLineStart, out byte[]? restOfLine);
            _skew = position - offset;
            if (count == 0)
            {
                return 0;
            }

            _atLineStart = destination[count - 1] == (byte)'\n';
            if (restOfLine != null)
            {
                _carried = restOfLine;
                _carriedFrom = 0;
                _carriedAt = offset + count;
            }

            return count;
        }
    }
}
