using System.Globalization;
using InSpatialFs.Security.Events;

namespace InSpatialFs.Daemon.Runtime;

/// <summary>
/// Per-operation latency histograms of recorded events, with power-of-two microsecond buckets (1 µs .. ~1 s): cheap
/// to add to from the event consumer, enough for percentiles in `stats` and a Prometheus histogram in `metrics`. The
/// per-operation event counts are the histograms' own totals, so `inspatialfs_events_total{op}` and the histogram's
/// `_count{op}` always agree.
/// </summary>
internal sealed class OpLatencies
{
    private const int Buckets = 21; // ≤1µs, ≤2µs, ... ≤2^20 µs (~1 s), then +Inf
    private readonly long[,] _counts = new long[FsOpNames.Count, Buckets + 1];
    private readonly long[] _sumNanos = new long[FsOpNames.Count];

    public void Add(FsOp op, long nanos)
    {
        long micros = Math.Max(1, nanos / 1000);
        int bucket = Math.Min(Buckets, 64 - (int)ulong.LeadingZeroCount((ulong)(micros - 1)));
        Interlocked.Increment(ref _counts[(int)op, bucket]);
        Interlocked.Add(ref _sumNanos[(int)op], nanos);
    }

    /// <summary>Events of this operation seen so far (the histogram's count).</summary>
    public long Count(FsOp op)
    {
        long total = 0;
        for (int b = 0; b <= Buckets; b++)
        {
            total += Interlocked.Read(ref _counts[(int)op, b]);
        }

        return total;
    }

    /// <summary>Upper bounds (µs) of the buckets holding the 50th, 90th and 99th percentile.</summary>
    public (double P50, double P90, double P99) Percentiles(FsOp op)
    {
        long total = 0;
        for (int b = 0; b <= Buckets; b++)
        {
            total += Interlocked.Read(ref _counts[(int)op, b]);
        }

        return total == 0 ? (0, 0, 0) : (Quantile(op, total, 0.5), Quantile(op, total, 0.9), Quantile(op, total, 0.99));
    }

    private double Quantile(FsOp op, long total, double q)
    {
        long target = (long)Math.Ceiling(total * q), seen = 0;
        for (int b = 0; b <= Buckets; b++)
        {
            seen += Interlocked.Read(ref _counts[(int)op, b]);
            if (seen >= target)
            {
                return Math.Pow(2, b);
            }
        }

        return Math.Pow(2, Buckets);
    }

    /// <summary>`inspatialfs_events_total{op}` and `inspatialfs_event_duration_seconds{op}` from one snapshot of the buckets.</summary>
    public void WritePrometheus(PrometheusText p)
    {
        var snapshot = new long[FsOpNames.Count, Buckets + 1];
        var sums = new long[FsOpNames.Count];
        var totals = new long[FsOpNames.Count];
        for (int op = 0; op < FsOpNames.Count; op++)
        {
            sums[op] = Interlocked.Read(ref _sumNanos[op]);
            for (int b = 0; b <= Buckets; b++)
            {
                snapshot[op, b] = Interlocked.Read(ref _counts[op, b]);
                totals[op] += snapshot[op, b];
            }
        }

        p.Family("inspatialfs_events_total", "counter", "Events recorded, by operation: every denial, and completed opens, creates, directory reads, releases and changes to the tree or metadata (reads, writes, getattr and allowed lookups are not events; inspatialfs_operations_total counts them).");
        for (int op = 0; op < FsOpNames.Count; op++)
        {
            if (totals[op] > 0) p.Sample("inspatialfs_events_total", totals[op], ("op", ((FsOp)op).Name()));
        }

        p.Family("inspatialfs_event_duration_seconds", "histogram", "Time the daemon spent serving the operation of a recorded event.");
        for (int op = 0; op < FsOpNames.Count; op++)
        {
            if (totals[op] == 0)
            {
                continue;
            }

            string name = ((FsOp)op).Name();
            long running = 0;
            for (int b = 0; b <= Buckets; b++)
            {
                running += snapshot[op, b];
                string le = b == Buckets ? "+Inf" : (Math.Pow(2, b) / 1e6).ToString("G6", CultureInfo.InvariantCulture);
                p.Sample("inspatialfs_event_duration_seconds_bucket", running, ("op", name), ("le", le));
            }

            p.Sample("inspatialfs_event_duration_seconds_sum", sums[op] / 1e9, ("op", name));
            p.Sample("inspatialfs_event_duration_seconds_count", totals[op], ("op", name));
        }
    }
}
