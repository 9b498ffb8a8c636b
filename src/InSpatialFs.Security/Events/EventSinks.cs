using System.Buffers;
using System.Text.Json;
using InSpatialFs.Interop.Diagnostics;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.Security.Events;

/// <summary>
/// Where analysed events go, on the consumer thread: the journal (<c>events.jsonl</c>) and any number of subscribers
/// (alert outputs, the control plane's event stream), added and removed at run time. Each event is serialised once and
/// the same bytes go to every sink. A journal that cannot be written (a full state disk) loses its lines, said in the
/// log at most once a minute, and the subscribers still get every event; a subscriber's failure is its own, logged,
/// and the other subscribers still get the event.
/// </summary>
internal sealed class EventSinks : IDisposable
{
    private readonly EventJournal? _journal;
    private readonly ILogger _log;
    private readonly object _subscriberGate = new();
    private volatile EventLineHandler[] _subscribers = [];
    private readonly ArrayBufferWriter<byte> _line = new(1024);
    private readonly Utf8JsonWriter _lineWriter;
    private readonly LogThrottle _journalFailureLines = new(1, TimeSpan.FromMinutes(1));

    public EventSinks(EventJournal? journal, ILogger log)
    {
        _journal = journal;
        _log = log;
        _lineWriter = new Utf8JsonWriter(_line);
    }

    /// <summary>Adds a subscriber; dispose the result to remove it.</summary>
    public IDisposable Subscribe(EventLineHandler onEvent)
    {
        ArgumentNullException.ThrowIfNull(onEvent);
        lock (_subscriberGate) _subscribers = [.. _subscribers, onEvent];
        return new Subscription(this, onEvent);
    }

    /// <summary>Serialises <paramref name="e"/> (only when some sink wants it) and hands the line to every sink.</summary>
    public void Publish(FsEvent e)
    {
        EventLineHandler[] subscribers = _subscribers;
        if (_journal is null && subscribers.Length == 0)
        {
            return;
        }

        ReadOnlySpan<byte> line = JsonLine(e);
        if (_journal != null)
        {
            try
            {
                _journal.WriteLine(line);
            }
            catch (IOException ex)
            {
                JournalFailed(ex);
            }
        }

        foreach (EventLineHandler s in subscribers)
        {
            try
            {
                s(e, line);
            }
            catch (Exception ex)
            {
                SecurityLog.ResponseFailed(_log, ex, "event subscriber");
            }
        }
    }

    /// <summary>After a batch: the journal's buffered lines to the file.</summary>
    public void Flush()
    {
        try
        {
            _journal?.Flush();
        }
        catch (IOException ex)
        {
            JournalFailed(ex);
        }
    }

    private void JournalFailed(IOException ex)
    {
        if (_journalFailureLines.Allow(out long notLogged))
        {
            SecurityLog.RecordWriteFailed(_log, "event journal " + EventJournal.FileName, ex.Message,
                "its lines are lost until it can be written; alert outputs and the event stream still get every event", notLogged);
        }
    }

    private ReadOnlySpan<byte> JsonLine(FsEvent e)
    {
        _line.ResetWrittenCount();
        _lineWriter.Reset(_line);
        FsEventJson.Write(_lineWriter, e);
        _lineWriter.Flush();
        _line.Write("\n"u8);
        return _line.WrittenSpan;
    }

    public void Dispose()
    {
        _lineWriter.Dispose();
        _journal?.Dispose();
    }

    private sealed class Subscription(EventSinks owner, EventLineHandler action) : IDisposable
    {
        public void Dispose()
        {
            lock (owner._subscriberGate) owner._subscribers = owner._subscribers.Where(a => a != action).ToArray();
        }
    }
}
