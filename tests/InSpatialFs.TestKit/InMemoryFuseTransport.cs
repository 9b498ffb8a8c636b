using System.Collections.Concurrent;
using InSpatialFs.Fuse;
using InSpatialFs.Fuse.Transport;
using InSpatialFs.Interop;

namespace InSpatialFs.TestKit;

/// <summary>One frame written by the server: a reply (or notification) and the channel it was written on.</summary>
public sealed record WrittenFrame(byte[] Bytes, int Channel);

/// <summary>
/// Frames in, frames out: the protocol server's transport without /dev/fuse. Requests are queued by the fake
/// kernel; every channel reads from the same queue (like clones of one connection); replies are recorded with the
/// channel they were written on. <see cref="Shutdown"/> makes every read return ENODEV, as an unmount does.
/// </summary>
public sealed class InMemoryFuseTransport : IFuseTransport, IDisposable
{
    private readonly BlockingCollection<byte[]> _requests = new(new ConcurrentQueue<byte[]>());
    private readonly object _gate = new(); // a Monitor: WaitForReply waits on it
    private readonly List<WrittenFrame> _replies = [];
    private readonly List<byte[]> _notifications = [];
    private readonly ConcurrentDictionary<ulong, int> _readOn = new();
    private int _channels;

    /// <summary>Returned by <see cref="Backing"/>; null means the transport cannot register backing files.</summary>
    public IBackingRegistrar? BackingRegistrar { get; set; }

    public IBackingRegistrar? Backing => BackingRegistrar;

    /// <summary>
    /// What the channels' <see cref="ISpliceChannel.SpliceReply"/> answers: OK takes the reply from the pipe;
    /// ENOENT/ENODEV take it and drop it (as the kernel does for an interrupted request or a dead connection);
    /// any other errno refuses it whole and leaves the pipe untouched (as the kernel does for a short pipe).
    /// </summary>
    public Errno SpliceFailure { get; set; }

    /// <summary>Replies that arrived through <see cref="ISpliceChannel.SpliceReply"/> (recorded among <see cref="Replies"/> too).</summary>
    public int SplicedReplies => Volatile.Read(ref _splicedReplies);

    private int _splicedReplies;

    /// <summary>How many channels the server opened (one per reader thread).</summary>
    public int ChannelCount => Volatile.Read(ref _channels);

    /// <summary>Frames too big for the reader's buffer: the kernel would fail such a request without delivering it.</summary>
    public int OversizedFrames { get; private set; }

    public void Enqueue(byte[] frame) => _requests.Add(frame);

    /// <summary>The channel that read the request with this unique (to check that replies go back on it).</summary>
    public int? ChannelThatRead(ulong unique) => _readOn.TryGetValue(unique, out int channel) ? channel : null;

    public IFuseChannel OpenChannel() => new Channel(this, Interlocked.Increment(ref _channels) - 1);

    public Errno Notify(ReadOnlySpan<byte> header, ReadOnlySpan<byte> body)
    {
        lock (_gate)
        {
            _notifications.Add([.. header, .. body]);
            Monitor.PulseAll(_gate);
        }

        return Errno.OK;
    }

    public void Shutdown() => _requests.CompleteAdding();

    /// <summary>Every reply written so far, in order.</summary>
    public IReadOnlyList<WrittenFrame> Replies
    {
        get
        {
            lock (_gate)
            {
                return [.. _replies];
            }
        }
    }

    public IReadOnlyList<byte[]> Notifications
    {
        get
        {
            lock (_gate)
            {
                return [.. _notifications];
            }
        }
    }

    /// <summary>Waits for the first reply whose out_header.unique is <paramref name="unique"/>.</summary>
    public WrittenFrame? WaitForReply(ulong unique, TimeSpan timeout)
    {
        DateTime deadline = DateTime.UtcNow + timeout;
        lock (_gate)
        {
            while (true)
            {
                foreach (WrittenFrame reply in _replies)
                {
                    if (reply.Bytes.Length >= 16 && BitConverter.ToUInt64(reply.Bytes, 8) == unique)
                    {
                        return reply;
                    }
                }

                TimeSpan left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero)
                {
                    return null;
                }

                Monitor.Wait(_gate, left);
            }
        }
    }

    public void Dispose()
    {
        Shutdown();
        _requests.Dispose();
    }

    private void Record(WrittenFrame frame)
    {
        lock (_gate)
        {
            _replies.Add(frame);
            Monitor.PulseAll(_gate);
        }
    }

    private sealed class Channel(InMemoryFuseTransport owner, int index) : IFuseChannel, ISpliceChannel
    {
        /// <summary>Reads the reply out of the server's pipe (a real pipe), as fuse_dev_splice_write would.</summary>
        public unsafe Errno SpliceReply(int pipeReadFd, int length)
        {
            Errno failure = owner.SpliceFailure;
            int queued = 0;
            if (LibC.ioctl(pipeReadFd, 0x541B /* FIONREAD */, &queued) < 0 || queued < length)
            {
                return Errno.EINVAL; // the kernel's "the pipe holds less than len" refusal
            }

            if (failure is not (Errno.OK or Errno.ENOENT or Errno.ENODEV))
            {
                return failure;
            }

            byte[] bytes = new byte[length];
            int got = 0;
            fixed (byte* p = bytes)
            {
                while (got < length)
                {
                    nint n = LibC.read(pipeReadFd, p + got, length - got);
                    if (n <= 0)
                    {
                        return Errno.EIO;
                    }

                    got += (int)n;
                }
            }

            if (failure != Errno.OK)
            {
                return failure;
            }

            Interlocked.Increment(ref owner._splicedReplies);
            owner.Record(new WrittenFrame(bytes, index));
            return Errno.OK;
        }

        public Errno Read(Span<byte> buffer, out int length)
        {
            length = 0;
            while (true)
            {
                byte[] frame;
                try
                {
                    if (!owner._requests.TryTake(out frame!, Timeout.Infinite))
                    {
                        return Errno.ENODEV;
                    }
                }
                catch (InvalidOperationException)
                {
                    return Errno.ENODEV; // completed or disposed while waiting (ObjectDisposedException derives from it)
                }

                if (frame.Length > buffer.Length)
                {
                    owner.OversizedFrames++;
                    continue;
                }

                frame.CopyTo(buffer);
                length = frame.Length;
                if (frame.Length >= 16)
                {
                    owner._readOn[BitConverter.ToUInt64(frame, 8)] = index;
                }

                return Errno.OK;
            }
        }

        public Errno Write(ReadOnlySpan<byte> header, ReadOnlySpan<byte> body)
        {
            owner.Record(new WrittenFrame([.. header, .. body], index));
            return Errno.OK;
        }

        public void Dispose()
        {
        }
    }
}
