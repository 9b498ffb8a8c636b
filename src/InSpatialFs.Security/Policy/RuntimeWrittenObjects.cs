using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using InSpatialFs.Interop;
using InSpatialFs.Interop.Threading;
using InSpatialFs.Security.Events;

namespace InSpatialFs.Security.Policy;

/// <summary>
/// Files created or modified since the instance started, for the dynamic-code control, marked by what they are
/// (<see cref="InodeIdentity"/>), not by a name: a rename, an extra hard link, the removal of a name, an O_TMPFILE
/// linked in later or a /proc/self/fd re-open all reach the same mark. Fed synchronously from Record (a write
/// followed at once by an exec is never missed), read on opens only. Bounded: past <see cref="Capacity"/> it fails
/// closed (every file counts as runtime-written) rather than forgetting what was written.
///
/// With a journal path, marks of objects that keep their identity across a restart (host files) are appended to it
/// (at most a second after the write, and at the end) and read back at start: a file written before a daemon restart
/// is still refused after it. A crash loses at most the last second of marks. The journal is one of the daemon's own
/// files: opened once, beneath its checked state directory and never through a symlink (<see cref="TrustedPath"/>);
/// a journal that fails those checks stops the start, as the event journal's does.
/// </summary>
public sealed class RuntimeWrittenObjects : IDisposable
{
    private static readonly TimeSpan FlushInterval = TimeSpan.FromSeconds(1);
    private readonly ConcurrentDictionary<InodeIdentity, byte> _objects = new();
    private readonly ConcurrentQueue<InodeIdentity> _unsaved = new();
    private readonly FileStream? _journal;
    private readonly HousekeepingJob? _flusher;
    private readonly Lock _flushGate = new();
    private volatile bool _overflowed;
    // ConcurrentDictionary.Count takes every bucket lock: on the request path the size is kept here instead.
    private int _count;

    public RuntimeWrittenObjects(int capacity = 1 << 20, string? journalPath = null)
    {
        Capacity = capacity;
        if (journalPath is not null)
        {
            // Read-write and appending, created 0600; a planted journal throws UnsafePathException.
            _journal = TrustedPath.OpenAppendStream(Path.GetDirectoryName(Path.GetFullPath(journalPath)) ?? "/", Path.GetFileName(journalPath),
                bufferSize: 0, FileAccess.ReadWrite);
            try
            {
                Load(_journal);
            }
            catch
            {
                _journal.Dispose();
                throw;
            }

            // Armed by the first unsaved mark, not periodic: an instance that writes nothing never wakes for it.
            _flusher = Housekeeping.Shared.Schedule(FlushScheduled, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>Marks read back from the journal at start.</summary>
    public int Reloaded { get; private set; }

    public int Capacity { get; }
    public int Count => Volatile.Read(ref _count);
    public bool Overflowed => _overflowed;

    public bool Contains(in InodeIdentity obj) => _overflowed || (!obj.IsNone && _objects.ContainsKey(obj));

    /// <summary>Updates the marks from a completed, successful op.</summary>
    public void Observe(FsEvent e)
    {
        if (e.Result != 0 || e.Decision == Decision.Deny) return;
        switch (e.Op)
        {
            case FsOp.Create:
            case FsOp.TmpFile:
            case FsOp.Write:
            case FsOp.Truncate:
            case FsOp.Fallocate:
            case FsOp.MkNod:
            case FsOp.CopyFileRange: // Object is the destination
                Add(e.Object);
                break;
            case FsOp.Open:
                // An open for write (or with O_TRUNC) may be served by DirectFS, whose writes we never see.
                if (e.IsWrite || (e.Flags & (LibC.O_ACCMODE | LibC.O_TRUNC)) != 0) Add(e.Object);
                break;
            default:
                break; // renames, links and unlinks change names, not objects
        }
    }

    /// <summary>The copy of a marked object (overlay copy-up) is marked too.</summary>
    public void Carry(in InodeIdentity original, in InodeIdentity copy)
    {
        if (!original.IsNone && _objects.ContainsKey(original)) Add(copy);
    }

    /// <summary>Marks an object (also used to reload the marks of persistent objects at start).</summary>
    public void Add(in InodeIdentity obj)
    {
        if (obj.IsNone) return;
        if (Volatile.Read(ref _count) >= Capacity)
        {
            _overflowed = true;
            return;
        }

        if (_objects.TryAdd(obj, 0))
        {
            Interlocked.Increment(ref _count);
            if (obj.Persistent && _journal is not null)
            {
                _unsaved.Enqueue(obj);
                ArmFlush();
            }
        }
    }

    // 1 while the scheduled flush is armed: the first unsaved mark after a flush sets it, the flush clears it.
    private int _flushArmed;

    private void ArmFlush()
    {
        if (Volatile.Read(ref _flushArmed) != 0 || Interlocked.Exchange(ref _flushArmed, 1) != 0) return;
        _flusher?.Change(FlushInterval, Timeout.InfiniteTimeSpan); // nothing once disposed: Dispose's own Flush saves the queue
    }

    private void FlushScheduled()
    {
        // Cleared before the queue is taken: a mark queued after this arms the flush again, one queued before is taken.
        Volatile.Write(ref _flushArmed, 0);
        Flush();
        if (!_unsaved.IsEmpty) ArmFlush(); // a failed write put its marks back
    }

    /// <summary>
    /// Appends the marks not yet saved (the scheduled flush, and Dispose); an I/O error keeps them for the next round. The
    /// emptiness check is inside the lock: a flush that finds the scheduled one in flight waits for its write, rather than
    /// returning (and letting the process exit) while the marks the scheduled flush took are not yet on disk.
    /// </summary>
    public void Flush()
    {
        if (_journal is null) return;
        lock (_flushGate)
        {
            if (_unsaved.IsEmpty) return;
            var text = new StringBuilder();
            var taken = new List<InodeIdentity>();
            while (_unsaved.TryDequeue(out InodeIdentity id))
            {
                taken.Add(id);
                text.Append(CultureInfo.InvariantCulture, $"{id.Device} {id.Inode} {id.Generation}\n");
            }

            try
            {
                _journal.Write(Encoding.ASCII.GetBytes(text.ToString())); // O_APPEND: at the end whatever the position
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                foreach (InodeIdentity id in taken) _unsaved.Enqueue(id);
            }
        }
    }

    private void Load(FileStream journal)
    {
        journal.Position = 0;
        using var reader = new StreamReader(journal, Encoding.ASCII, detectEncodingFromByteOrderMarks: false, leaveOpen: true);
        while (reader.ReadLine() is string line)
        {
            string[] f = line.Split(' ');
            if (f.Length == 3 && ulong.TryParse(f[0], CultureInfo.InvariantCulture, out ulong dev) && ulong.TryParse(f[1], CultureInfo.InvariantCulture, out ulong ino)
                && uint.TryParse(f[2], CultureInfo.InvariantCulture, out uint gen))
            {
                var id = new InodeIdentity(dev, ino, gen, Persistent: true);
                if (_objects.TryAdd(id, 0) && Interlocked.Increment(ref _count) >= Capacity) _overflowed = true;
                Reloaded++;
            }
        }
    }

    public void Dispose()
    {
        _flusher?.Dispose();
        Flush();
        lock (_flushGate) _journal?.Dispose();
    }
}
