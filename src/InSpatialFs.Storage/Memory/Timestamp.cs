namespace InSpatialFs.Storage.Memory;

/// <summary>A POSIX timespec (seconds and nanoseconds since the epoch).</summary>
internal readonly record struct Timestamp(long Seconds, uint Nanoseconds)
{
    public static Timestamp Now()
    {
        long ticks = DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks;
        return new Timestamp(ticks / TimeSpan.TicksPerSecond, (uint)(ticks % TimeSpan.TicksPerSecond * 100));
    }

    public bool IsAfter(Timestamp other) => Seconds != other.Seconds ? Seconds > other.Seconds : Nanoseconds > other.Nanoseconds;
}
