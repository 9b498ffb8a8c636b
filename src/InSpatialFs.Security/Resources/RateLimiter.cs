using System.Diagnostics;

namespace InSpatialFs.Security.Resources;

/// <summary>
/// A token bucket in its GCRA form: one 64-bit "theoretical arrival time" updated by CAS, so taking tokens
/// costs no lock and no allocation. A caller over the rate is told how long to wait (the proxy delays the
/// reply), never refused. Burst = one second's worth of tokens.
/// </summary>
public sealed class RateLimiter
{
    private readonly double _ticksPerToken;
    private readonly long _burstTicks;
    private long _tat;

    public RateLimiter(double tokensPerSecond, double burstSeconds = 1.0)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tokensPerSecond);
        RatePerSecond = tokensPerSecond;
        _ticksPerToken = Stopwatch.Frequency / tokensPerSecond;
        _burstTicks = (long)(Stopwatch.Frequency * burstSeconds);
        _tat = Stopwatch.GetTimestamp();
    }

    public double RatePerSecond { get; }

    /// <summary>Takes <paramref name="tokens"/>; returns the delay before the caller is within the rate (zero when it is).</summary>
    public TimeSpan Take(long tokens, long nowTimestamp)
    {
        if (tokens <= 0) return TimeSpan.Zero;
        long cost = (long)(tokens * _ticksPerToken);
        while (true)
        {
            long tat = Volatile.Read(ref _tat);
            long start = Math.Max(tat, nowTimestamp);
            long next = start + cost;
            if (Interlocked.CompareExchange(ref _tat, next, tat) == tat)
            {
                long wait = next - nowTimestamp - _burstTicks;
                return wait <= 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(0, wait);
            }
        }
    }

    public TimeSpan Take(long tokens) => Take(tokens, Stopwatch.GetTimestamp());
}
