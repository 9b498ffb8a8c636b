using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace InSpatialFs.Security.Outputs;

/// <summary>Retry timing of a channel: exponential backoff from <see cref="InitialBackoff"/> up to <see cref="MaxBackoff"/>.</summary>
public sealed record RetryPolicy(TimeSpan InitialBackoff, TimeSpan MaxBackoff, TimeSpan GiveUpAfter)
{
    public static readonly RetryPolicy Default = new(TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(60));
}

/// <summary>One channel's counters, for the status and metrics control files.</summary>
public sealed record AlertChannelStatus(
    string Name,
    string Target,
    int Queued,
    long Delivered,
    long Dropped,
    long Failed,
    long Retries,
    bool Retrying,
    string? LastError);

/// <summary>
/// One alert destination behind a bounded queue. <see cref="TryEnqueue"/> never blocks: a full queue drops the alert
/// and counts it. A pump delivers in order; a failed delivery is retried with exponential backoff while newer alerts
/// wait (and, once the queue is full, are dropped and counted), so a dead receiver costs the daemon nothing but the
/// queue; after <see cref="RetryPolicy.GiveUpAfter"/> the alert is counted as failed and the next one is tried.
/// Delivery resumes by itself when the receiver is back.
/// </summary>
public abstract class AlertChannel : IDisposable
{
    public const int DefaultCapacity = 1024;

    private readonly Channel<Alert> _queue;
    private readonly RetryPolicy _retry;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _pump;
    private long _delivered, _dropped, _failed, _retries, _lastDropLog;
    private volatile bool _retrying;
    private volatile string? _lastError;

    protected AlertChannel(string name, string target, int capacity, RetryPolicy? retry, ILogger? log)
    {
        Name = name;
        Target = target;
        Log = log ?? NullLogger.Instance;
        _retry = retry ?? RetryPolicy.Default;
        _queue = Channel.CreateBounded<Alert>(new BoundedChannelOptions(Math.Max(1, capacity))
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait, // TryWrite fails when full: counted as a drop, never waited on
        });
        _pump = Task.Run(PumpAsync);
    }

    public string Name { get; }

    /// <summary>Where alerts go (a path, socket or URL), for status lines.</summary>
    public string Target { get; }

    protected ILogger Log { get; }

    /// <summary>Queues one alert; false when the queue is full (the alert is dropped and counted).</summary>
    public bool TryEnqueue(Alert alert)
    {
        if (_queue.Writer.TryWrite(alert))
        {
            return true;
        }

        long dropped = Interlocked.Increment(ref _dropped);
        long now = Environment.TickCount64, last = Volatile.Read(ref _lastDropLog);
        if (now - last >= 1000 && Interlocked.CompareExchange(ref _lastDropLog, now, last) == last)
        {
            OutputsLog.Dropped(Log, Name, dropped);
        }

        return false;
    }

    /// <summary>Delivers one alert; throws on failure (the pump retries).</summary>
    protected abstract Task SendAsync(Alert alert, CancellationToken cancel);

    public AlertChannelStatus Status() => new(Name, Target, _queue.Reader.Count, Interlocked.Read(ref _delivered),
        Interlocked.Read(ref _dropped), Interlocked.Read(ref _failed), Interlocked.Read(ref _retries), _retrying, _lastError);

    /// <summary>Waits until everything queued so far was delivered or given up on (tests, shutdown).</summary>
    public bool WaitIdle(TimeSpan timeout)
    {
        DateTime deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (_queue.Reader.Count == 0 && !_busy)
            {
                return true;
            }

            Thread.Sleep(10);
        }

        return false;
    }

    private volatile bool _busy;

    private async Task PumpAsync()
    {
        CancellationToken cancel = _stop.Token;
        try
        {
            while (await _queue.Reader.WaitToReadAsync(cancel).ConfigureAwait(false))
            {
                while (_queue.Reader.TryRead(out Alert? alert))
                {
                    _busy = true;
                    await DeliverAsync(alert, cancel).ConfigureAwait(false);
                    _busy = false;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // disposed
        }
    }

    private async Task DeliverAsync(Alert alert, CancellationToken cancel)
    {
        DateTime firstFailure = default;
        TimeSpan delay = _retry.InitialBackoff;
        long retriesHere = 0;
        while (true)
        {
            try
            {
                await SendAsync(alert, cancel).ConfigureAwait(false);
                Interlocked.Increment(ref _delivered);
                if (_retrying)
                {
                    _retrying = false;
                    OutputsLog.Recovered(Log, Name, retriesHere);
                }

                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancel.IsCancellationRequested)
            {
                _lastError = ex.Message;
                if (firstFailure == default)
                {
                    firstFailure = DateTime.UtcNow;
                }

                if (DateTime.UtcNow - firstFailure >= _retry.GiveUpAfter)
                {
                    Interlocked.Increment(ref _failed);
                    OutputsLog.GaveUp(Log, Name, (long)_retry.GiveUpAfter.TotalSeconds, ex.Message);
                    return;
                }

                if (!_retrying)
                {
                    OutputsLog.Retrying(Log, Name, ex.Message, (long)delay.TotalMilliseconds);
                }

                _retrying = true;
                Interlocked.Increment(ref _retries);
                retriesHere++;
                await Task.Delay(delay, cancel).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(_retry.MaxBackoff.Ticks, delay.Ticks * 2));
            }
        }
    }

    /// <summary>Stops taking alerts, gives the queue up to two seconds to drain, then stops the pump.</summary>
    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    /// <summary>The drain and stop of <see cref="Dispose()"/>; subclasses release their own resources in <see cref="Close"/>.</summary>
    protected virtual void Dispose(bool disposing)
    {
        if (!disposing)
        {
            return;
        }

        _queue.Writer.TryComplete();
        if (!_pump.Wait(TimeSpan.FromSeconds(2)))
        {
            _stop.Cancel();
            try
            {
                _pump.Wait(TimeSpan.FromSeconds(2));
            }
            catch (AggregateException)
            {
                // the pump ends with the cancellation
            }
        }

        Close();
        _stop.Dispose();
    }

    /// <summary>Releases what the channel holds (files, sockets, clients) after the pump stopped.</summary>
    protected virtual void Close()
    {
    }
}
