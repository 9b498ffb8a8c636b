using System.Globalization;
using System.Text;
using InSpatialFs.Security.Events;

namespace InSpatialFs.Daemon.Runtime;

/// <summary>
/// Per-operation latency histograms with power-of-two microsecond buckets (1 µs .. ~1 s): cheap to add to from
/// the event consumer, enough for percentiles in `stats` and a Prometheus histogram in `metrics`.
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

    public void WritePrometheus(StringBuilder sb, string instance)
    {
        sb.Append("# HELP inspatialfs_op_latency_seconds Time the daemon spent on an operation.\n# TYPE inspatialfs_op_latency_seconds histogram\n");
        for (int op = 0; op < FsOpNames.Count; op++)
        {
            long cumulative = 0;
            for (int b = 0; b <= Buckets; b++)
            {
                cumulative += Interlocked.Read(ref _counts[op, b]);
            }

            if (cumulative == 0)
            {
                continue;
            }

            string name = ((FsOp)op).Name();
            long running = 0;
            for (int b = 0; b <= Buckets; b++)
            {
                running += Interlocked.Read(ref _counts[op, b]);
                string le = b == Buckets ? "+Inf" : (Math.Pow(2, b) / 1e6).ToString("G6", CultureInfo.InvariantCulture);
                sb.Append(CultureInfo.InvariantCulture, $"inspatialfs_op_latency_seconds_bucket{{instance=\"{instance}\",op=\"{name}\",le=\"{le}\"}} {running}\n");
            }

            sb.Append(CultureInfo.InvariantCulture, $"inspatialfs_op_latency_seconds_sum{{instance=\"{instance}\",op=\"{name}\"}} {Interlocked.Read(ref _sumNanos[op]) / 1e9:0.#########}\n");
            sb.Append(CultureInfo.InvariantCulture, $"inspatialfs_op_latency_seconds_count{{instance=\"{instance}\",op=\"{name}\"}} {cumulative}\n");
        }
    }
}
