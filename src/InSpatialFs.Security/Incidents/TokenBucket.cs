using System.Diagnostics;

namespace InSpatialFs.Security.Incidents;

/// <summary>
/// The output rate limit Falco puts on its alerts: <see cref="Capacity"/> tokens, refilled at <see cref="Rate"/> per
/// second; each new incident takes one. Not thread-safe (the incident store calls it under its lock).
/// </summary>
internal sealed class TokenBucket(double rate, int capacity)
{
    private double _tokens = capacity;
    private long _refilledAt = Stopwatch.GetTimestamp();

    public double Rate { get; } = rate;
    public int Capacity { get; } = capacity;

    /// <summary>Takes a token if one is there; false means "over the limit, suppress".</summary>
    public bool TryTake(long nowTimestamp)
    {
        double seconds = (nowTimestamp - _refilledAt) / (double)Stopwatch.Frequency;
        if (seconds > 0)
        {
            _tokens = Math.Min(Capacity, _tokens + seconds * Rate);
            _refilledAt = nowTimestamp;
        }

        if (_tokens < 1) return false;
        _tokens -= 1;
        return true;
    }
}
