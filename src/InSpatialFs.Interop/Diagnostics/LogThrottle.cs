namespace InSpatialFs.Interop.Diagnostics;

/// <summary>
/// Bounds a log line a container can provoke at will (a refused escape, a failed copy-up): at most <see cref="Burst"/>
/// lines per <see cref="Window"/>, the rest counted and reported in one line once the next window lets a line through.
/// The events and incidents still record every occurrence; what is bounded is the daemon's log, which under
/// `mount --background` is a file in the state directory (see the daemon's LogFileGuard) and under systemd the journal.
/// </summary>
public sealed class LogThrottle(int burst, TimeSpan window)
{
    private readonly object _gate = new();
    private long _windowEnds;
    private int _lines;
    private long _suppressed;

    public int Burst { get; } = burst;

    public TimeSpan Window { get; } = window;

    /// <summary>
    /// True when this occurrence may be logged; <paramref name="notLogged"/> is then how many were not logged since the
    /// last one that was (to be said first).
    /// </summary>
    public bool Allow(out long notLogged)
    {
        lock (_gate)
        {
            long now = Environment.TickCount64;
            if (now >= _windowEnds)
            {
                _windowEnds = now + (long)Window.TotalMilliseconds;
                _lines = 0;
            }

            if (_lines < Burst)
            {
                _lines++;
                notLogged = _suppressed;
                _suppressed = 0;
                return true;
            }

            _suppressed++;
            notLogged = 0;
            return false;
        }
    }
}
