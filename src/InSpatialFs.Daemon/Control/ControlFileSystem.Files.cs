using System.Collections.Concurrent;
using System.Text;
using InSpatialFs.Fuse;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.Daemon.Control;

// The open control files: snapshots rendered at OPEN, the blocking `events` log, and `control`'s command lines and replies.
internal sealed partial class ControlFileSystem
{
    public Errno Open(FuseRequest request, ulong nodeId, int flags, uint openFlags, out FuseOpenOut open)
    {
        open = default;
        if (!IsNode(nodeId) || nodeId == RootId)
        {
            return nodeId == RootId ? Errno.EISDIR : Errno.ENOENT;
        }

        ControlFile file = FileOf(nodeId);
        bool writing = (flags & LibC.O_ACCMODE) != LibC.O_RDONLY;
        if (writing != (file == ControlFile.Control))
        {
            return Errno.EACCES; // control is opened for writing (read-write to read its replies); everything else read-only
        }

        byte[] snapshot = file is ControlFile.Control or ControlFile.Events ? [] : Encoding.UTF8.GetBytes(_plane.Render(file));
        ulong fh = (ulong)Interlocked.Increment(ref _nextFh);
        _open[fh] = new OpenControlFile(file, snapshot, NonBlocking: (flags & LibC.O_NONBLOCK) != 0)
        {
            Events = file == ControlFile.Events ? new EventCursor(_plane.Events) : null,
        };
        open = new FuseOpenOut { Fh = fh, OpenFlags = FopenFlags.DirectIo };
        return Errno.OK;
    }

    /// <summary>
    /// The open file <paramref name="fh"/>; a handle a predecessor opened (the control mount was handed over) is taken on
    /// here as if opened now: a snapshot file renders this server's snapshot, `control` starts with no replies. An
    /// `events` reader's position was the dead server's log: it gets EBADF and opens the file again.
    /// </summary>
    private bool TryGetOpen(ulong nodeId, ulong fh, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out OpenControlFile? open)
    {
        if (_open.TryGetValue(fh, out open))
        {
            return true;
        }

        if (fh == 0 || fh >= (ulong)FirstFh || !IsNode(nodeId) || nodeId == RootId || FileOf(nodeId) == ControlFile.Events)
        {
            return false;
        }

        ControlFile file = FileOf(nodeId);
        open = _open.GetOrAdd(fh, _ => new OpenControlFile(file, file == ControlFile.Control ? [] : Encoding.UTF8.GetBytes(_plane.Render(file)), NonBlocking: false));
        return open.File == file;
    }

    public Errno Read(FuseRequest request, ulong nodeId, ulong fh, long offset, Span<byte> buffer, out int bytesRead)
    {
        bytesRead = 0;
        if (!TryGetOpen(nodeId, fh, out OpenControlFile? open))
        {
            return Errno.EBADF;
        }

        if (open.File == ControlFile.Control)
        {
            // The replies to the commands written on this open file (`ctl` opens read-write: writes, then reads why). They
            // are read as a stream, from where the last read stopped, not at the file offset: on one open file the writes
            // moved that offset (`exec 3<> control; echo reload >&3; read -r reply <&3` would start inside the reply).
            lock (open)
            {
                byte[] reply = Encoding.UTF8.GetBytes(open.Replies.ToString());
                if (open.RepliesRead < reply.Length)
                {
                    bytesRead = Math.Min(buffer.Length, reply.Length - open.RepliesRead);
                    reply.AsSpan(open.RepliesRead, bytesRead).CopyTo(buffer);
                    open.RepliesRead += bytesRead;
                }

                if (open.RepliesRead == reply.Length)
                {
                    open.Replies.Clear(); // all read: room for the next replies (the store is bounded)
                    open.RepliesRead = 0;
                }
            }

            return Errno.OK;
        }

        if (open.File != ControlFile.Events)
        {
            if (offset < open.Snapshot.Length)
            {
                bytesRead = Math.Min(buffer.Length, open.Snapshot.Length - (int)offset);
                open.Snapshot.AsSpan((int)offset, bytesRead).CopyTo(buffer);
            }

            return Errno.OK;
        }

        // Like /proc/kmsg: block at the end of the log until events arrive, the reader is interrupted or the daemon stops.
        if (TryReadEvents(open, offset, buffer, TimeSpan.Zero, out bytesRead) || open.NonBlocking || _closing)
        {
            return Errno.OK; // O_NONBLOCK readers (ctl events without --follow) get end of file at the end
        }

        if (Interlocked.Increment(ref _blockedReaders) > MaxBlockedEventReaders)
        {
            Interlocked.Decrement(ref _blockedReaders);
            return Errno.EAGAIN;
        }

        try
        {
            while (!_closing)
            {
                if (TryReadEvents(open, offset, buffer, EventPoll, out bytesRead))
                {
                    return Errno.OK;
                }

                if (request.IsInterrupted)
                {
                    return Errno.EINTR;
                }
            }

            return Errno.OK;
        }
        finally
        {
            Interlocked.Decrement(ref _blockedReaders);
        }
    }

    /// <summary>Reads the event log at this reader's position; false when nothing arrived within <paramref name="wait"/>.</summary>
    private static bool TryReadEvents(OpenControlFile open, long offset, Span<byte> buffer, TimeSpan wait, out int bytesRead)
    {
        bytesRead = open.Events!.Read(offset, buffer, wait);
        return bytesRead > 0;
    }

    public Errno Write(FuseRequest request, ulong nodeId, ulong fh, long offset, ReadOnlySpan<byte> data, uint writeFlags, out int bytesWritten)
    {
        bytesWritten = 0;
        int writtenLength = data.Length;
        if (!TryGetOpen(nodeId, fh, out OpenControlFile? open) || open.File != ControlFile.Control)
        {
            return Errno.EBADF;
        }

        // Commands are whole lines; a write may carry several or end mid-line (the rest comes next). At most
        // MaxLineBytes of a line are ever buffered: a longer one fails the write with EINVAL, and the rest of that line
        // is dropped (each further write of it fails too) until its newline.
        lock (open)
        {
            while (!data.IsEmpty)
            {
                int newline = data.IndexOf((byte)'\n');
                ReadOnlySpan<byte> piece = newline < 0 ? data : data[..newline];
                data = newline < 0 ? [] : data[(newline + 1)..];
                if (open.Discarding)
                {
                    // The rest of a line refused as too long: dropped up to its newline; the lines after it are run.
                    open.Discarding = newline < 0;
                    if (open.Discarding || data.IsEmpty)
                    {
                        return Errno.EINVAL;
                    }

                    continue;
                }

                if (open.PendingLength + piece.Length > ControlCommand.MaxLineBytes)
                {
                    open.LineNumber++;
                    Log.ControlRefused(_logger, open.LineNumber, 1, "(too long)", $"a command line longer than {ControlCommand.MaxLineBytes} bytes");
                    Reply(open, $"refused: {open.LineNumber}:1: a command line longer than {ControlCommand.MaxLineBytes} bytes");
                    open.PendingLength = 0;
                    open.Discarding = newline < 0;
                    return Errno.EINVAL;
                }

                piece.CopyTo(open.Pending.AsSpan(open.PendingLength));
                open.PendingLength += piece.Length;
                if (newline < 0)
                {
                    break; // the rest of this line comes with the next write (or at close)
                }

                Errno result = RunPendingLine(open);
                if (result != Errno.OK)
                {
                    return result;
                }
            }
        }

        bytesWritten = writtenLength;
        return Errno.OK;
    }

    /// <summary>Parses and runs the buffered line; refusals are logged with their line:column in this open file.</summary>
    private Errno RunPendingLine(OpenControlFile open)
    {
        string line = Encoding.UTF8.GetString(open.Pending, 0, open.PendingLength);
        open.PendingLength = 0;
        open.LineNumber++;
        string trimmed = line.Trim();
        if (trimmed.Length == 0)
        {
            return Errno.OK;
        }

        int lead = line.Length - line.TrimStart().Length;
        if (!ControlCommand.TryParse(trimmed, out ControlCommand command, out int column, out string error))
        {
            Log.ControlRefused(_logger, open.LineNumber, column + lead, trimmed, error); // the log formatter escapes it
            Reply(open, $"refused: {open.LineNumber}:{column + lead}: {error}");
            return Errno.EINVAL;
        }

        Errno result = _plane.Execute(command, out string message);
        if (result != Errno.OK)
        {
            Log.ControlRefused(_logger, open.LineNumber, 1 + lead, command.ToString(), message);
            Reply(open, $"refused: {open.LineNumber}:{1 + lead}: {message}");
        }
        else
        {
            Log.ControlExecuted(_logger, command.ToString(), message);
            Reply(open, "ok: " + message);
        }

        return result;
    }

    /// <summary>Kept per open file and bounded: a writer that never reads cannot grow it without end.</summary>
    private static void Reply(OpenControlFile open, string line)
    {
        if (open.Replies.Length < MaxReplyChars)
        {
            open.Replies.Append(line.ReplaceLineEndings(" ")).Append('\n');
        }
    }

    /// <summary>The replies one open `control` file keeps (about a hundred commands' worth).</summary>
    private const int MaxReplyChars = 16384;

    public Errno Flush(FuseRequest request, ulong nodeId, ulong fh)
    {
        // A last command without a trailing newline (`printf suspend > control`) runs at close.
        if (!_open.TryGetValue(fh, out OpenControlFile? open) || open.File != ControlFile.Control)
        {
            return Errno.OK;
        }

        lock (open)
        {
            if (open.Discarding)
            {
                open.Discarding = false;
                return Errno.EINVAL;
            }

            return open.PendingLength == 0 ? Errno.OK : RunPendingLine(open);
        }
    }

    public Errno Release(FuseRequest request, ulong nodeId, ulong fh, int flags)
    {
        _open.TryRemove(fh, out _);
        return Errno.OK;
    }
}
