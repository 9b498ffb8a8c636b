using System.Collections.Concurrent;
using InSpatialFs.Interop;
using InSpatialFs.Interop.Threading;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Policy;

namespace InSpatialFs.Security.Resources;

/// <summary>
/// Resource controls of one container: op and byte rates (delays), the open-file cap (EMFILE) and per-mount
/// quota accounts the storage side charges (ENOSPC for the memory cap, EDQUOT for disk bytes and inodes).
/// All counters are lock-free. With a state directory, quota ledgers are saved every few seconds and at the end,
/// and reloaded at start, so a restarted daemon (after a crash too, less the last seconds) charges as before.
/// </summary>
public sealed class ResourceGovernor : IDisposable
{
    private static readonly TimeSpan SaveInterval = TimeSpan.FromSeconds(2);
    private readonly string? _stateDir;
    private readonly HousekeepingJob? _saver;
    private readonly RateLimiter? _ops;
    private readonly RateLimiter? _bytes;
    private readonly ConcurrentDictionary<string, QuotaAccount> _accounts = new(StringComparer.Ordinal);
    private long _openFiles;
    private long _throttledOps;

    public ResourceGovernor(ResourceLimits limits, string? stateDir = null)
    {
        Limits = limits;
        _stateDir = stateDir;
        if (stateDir != null && (limits.DiskBytes != null || limits.Inodes != null))
        {
            _saver = Housekeeping.Shared.Schedule(SaveQuotas, SaveInterval, SaveInterval);
        }

        if (limits.OpsPerSecond is double ops) _ops = new RateLimiter(ops);
        if (limits.BytesPerSecond is double bytes) _bytes = new RateLimiter(bytes);
    }

    public ResourceLimits Limits { get; }
    public long OpenFiles => Volatile.Read(ref _openFiles);
    public long ThrottledOps => Volatile.Read(ref _throttledOps);

    /// <summary>The delay owed by an op: one op token, plus its bytes for read and write.</summary>
    /// <summary>Whether an ops/s or bytes/s limit is configured at all (the data path skips everything when not).</summary>
    public bool LimitsRates => _ops != null || _bytes != null;

    public TimeSpan Throttle(FsOp op, long bytes, long nowTimestamp)
    {
        TimeSpan d = TimeSpan.Zero;
        if (_ops != null) d = _ops.Take(1, nowTimestamp);
        if (_bytes != null && bytes > 0 && op is FsOp.Read or FsOp.Write or FsOp.CopyFileRange)
        {
            TimeSpan b = _bytes.Take(bytes, nowTimestamp);
            if (b > d) d = b;
        }

        if (d > TimeSpan.Zero) Interlocked.Increment(ref _throttledOps);
        return d;
    }

    /// <summary>Counts an open file; EMFILE past the cap (the count is not taken then).</summary>
    public Errno TryOpenFile()
    {
        long n = Interlocked.Increment(ref _openFiles);
        if (Limits.OpenFiles is int cap && n > cap)
        {
            Interlocked.Decrement(ref _openFiles);
            return Errno.EMFILE;
        }

        return Errno.OK;
    }

    public void FileClosed()
    {
        if (Interlocked.Decrement(ref _openFiles) < 0) Interlocked.Exchange(ref _openFiles, 0);
    }

    /// <summary>The quota account of a mount (by its namespace path); memory mounts are capped by resources.memory.</summary>
    public QuotaAccount Account(string mount, bool inMemory = false) => _accounts.GetOrAdd(mount, m =>
    {
        var account = new QuotaAccount(m, inMemory ? Limits.MemoryBytes : Limits.DiskBytes, Limits.Inodes, inMemory);
        if (!inMemory && LedgerPath(m) is string path)
        {
            account.Load(path);
        }

        return account;
    });

    /// <summary>Where a mount's quota ledger is kept: "quota-" and the mount path with '%' and '/' escaped.</summary>
    private string? LedgerPath(string mount) =>
        _stateDir is null ? null : Path.Combine(_stateDir, "quota-" + mount.Replace("%", "%25", StringComparison.Ordinal).Replace("/", "%2F", StringComparison.Ordinal) + ".ledger");

    /// <summary>Saves every changed ledger (the timer, and Dispose); an I/O error is kept for the next round.</summary>
    public void SaveQuotas()
    {
        foreach (QuotaAccount a in _accounts.Values)
        {
            if (a.InMemory || LedgerPath(a.Mount) is not string path) continue;
            try
            {
                a.Save(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                LastSaveError = e.Message;
            }
        }
    }

    /// <summary>Why the last ledger save failed (null when it did not).</summary>
    public string? LastSaveError { get; private set; }

    public void Dispose()
    {
        _saver?.Dispose();
        SaveQuotas();
    }

    public IReadOnlyCollection<QuotaAccount> Accounts => _accounts.Values.ToList();
}

