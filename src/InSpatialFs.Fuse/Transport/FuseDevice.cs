using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;

namespace InSpatialFs.Fuse.Transport;

/// <summary>
/// The /dev/fuse side of one connection: the session descriptor, clones for extra reader threads, notifications
/// and the passthrough backing ioctls. Created by <see cref="FuseMount"/>; owns every descriptor it hands out.
/// </summary>
public sealed class FuseDevice : IFuseTransport, IFuseRingTransport, IBackingRegistrar, IDisposable
{
    private const string DevicePath = "/dev/fuse";

    private readonly SafeFd _session;
    private readonly Lock _channelsGate = new();
    private readonly List<DeviceChannel> _channels = [];
    private bool _sessionChannelTaken;
    private Action? _shutdown;

    /// <summary>Takes ownership of an open, mounted /dev/fuse session descriptor.</summary>
    public FuseDevice(SafeFd session, Action? shutdown = null)
    {
        ArgumentNullException.ThrowIfNull(session);
        if (session.IsInvalid)
        {
            throw new ArgumentException("invalid /dev/fuse descriptor", nameof(session));
        }

        _session = session;
        _shutdown = shutdown;
    }

    /// <summary>The session descriptor (for mount data and diagnostics).</summary>
    public SafeFd Session => _session;

    public IBackingRegistrar? Backing => this;

    /// <summary>Opens /dev/fuse (O_RDWR|O_CLOEXEC) for a new connection, before mount.</summary>
    public static Errno OpenDevice(out SafeFd fd) => LibC.OpenFd(DevicePath, LibC.O_RDWR, 0, out fd);

    /// <summary>
    /// Called with each clone as it is opened, before any request is read from it: a keeper of the connection must hold
    /// every descriptor a request may be read from (<see cref="DuplicateDescriptors"/>). The clone stays the device's.
    /// </summary>
    public Action<SafeFd>? CloneOpened { get; set; }

    /// <summary>What <see cref="Shutdown"/> does (set by the mount: unmount lazily).</summary>
    internal void SetShutdown(Action shutdown) => _shutdown = shutdown;

    public IFuseChannel OpenChannel()
    {
        lock (_channelsGate)
        {
            DeviceChannel channel;
            if (!_sessionChannelTaken)
            {
                _sessionChannelTaken = true;
                channel = new DeviceChannel(_session, owns: false);
            }
            else
            {
#pragma warning disable CA2000 // disposed on failure below; on success the channel owns it (owns: true), the device its channels
                Errno e = Clone(out SafeFd clone);
#pragma warning restore CA2000
                if (e != Errno.OK)
                {
                    clone.Dispose();
                    throw new IOException($"FUSE_DEV_IOC_CLONE failed: {e}");
                }

                channel = new DeviceChannel(clone, owns: true);
                CloneOpened?.Invoke(clone);
            }

            _channels.Add(channel);
            return channel;
        }
    }

    public IFuseChannel OpenRingChannel(int queue, int payloadCapacity)
    {
        Errno e = FuseRingChannel.TryCreate(_session, queue, payloadCapacity, out FuseRingChannel? channel);
        return e == Errno.OK ? channel! : throw new IOException($"cannot make an io_uring for FUSE ring queue {queue}: {e}");
    }

    /// <summary>
    /// Close-on-exec duplicates of the session descriptor and of every clone handed out so far, session first: what a
    /// keeper holds so that the connection outlives this process. The kernel ends the requests a descriptor has read and
    /// not answered when its last copy closes, so every clone must be held until a later server has sent NOTIFY_RESEND.
    /// </summary>
    public IReadOnlyList<SafeFd> DuplicateDescriptors()
    {
        lock (_channelsGate)
        {
            var copies = new List<SafeFd>(_channels.Count + 1);
            try
            {
                copies.Add(Duplicate(_session));
                foreach (DeviceChannel channel in _channels)
                {
                    if (!ReferenceEquals(channel.Descriptor, _session))
                    {
                        copies.Add(Duplicate(channel.Descriptor));
                    }
                }

                return copies;
            }
            catch
            {
                copies.ForEach(c => c.Dispose());
                throw;
            }
        }
    }

    private static SafeFd Duplicate(SafeFd fd)
    {
        bool added = false;
        try
        {
            fd.DangerousAddRef(ref added);
            int copy = LibC.fcntl(fd.Fd, LibC.F_DUPFD_CLOEXEC, 3);
            Errno e = ErrnoExtensions.LastPInvoke();
            return copy >= 0 ? new SafeFd(copy) : throw new IOException($"cannot duplicate a /dev/fuse descriptor: {e}");
        }
        finally
        {
            if (added)
            {
                fd.DangerousRelease();
            }
        }
    }

    public unsafe Errno Notify(ReadOnlySpan<byte> header, ReadOnlySpan<byte> body) => DeviceChannel.WriteGather(_session, header, body);

    public void Shutdown() => _shutdown?.Invoke();

    public unsafe Errno Open(SafeFd fd, out int backingId)
    {
        ArgumentNullException.ThrowIfNull(fd);
        backingId = 0;
        bool fdRef = false, sessionRef = false;
        try
        {
            fd.DangerousAddRef(ref fdRef);
            _session.DangerousAddRef(ref sessionRef);
            var map = new FuseBackingMap { Fd = fd.Fd };
            int rc = LibC.ioctl(_session.Fd, FuseIoctl.DevIocBackingOpen, &map);
            Errno e = ErrnoExtensions.LastPInvoke();
            if (rc < 0)
            {
                return e;
            }

            backingId = rc;
            return Errno.OK;
        }
        finally
        {
            if (fdRef)
            {
                fd.DangerousRelease();
            }

            if (sessionRef)
            {
                _session.DangerousRelease();
            }
        }
    }

    public unsafe Errno Close(int backingId)
    {
        bool sessionRef = false;
        try
        {
            _session.DangerousAddRef(ref sessionRef);
            int id = backingId;
            int rc = LibC.ioctl(_session.Fd, FuseIoctl.DevIocBackingClose, &id);
            Errno e = ErrnoExtensions.LastPInvoke();
            return rc < 0 ? e : Errno.OK;
        }
        finally
        {
            if (sessionRef)
            {
                _session.DangerousRelease();
            }
        }
    }

    public void Dispose()
    {
        lock (_channelsGate)
        {
            foreach (DeviceChannel channel in _channels)
            {
                channel.Dispose();
            }

            _channels.Clear();
        }

        _session.Dispose();
    }

    private unsafe Errno Clone(out SafeFd clone)
    {
        Errno e = OpenDevice(out clone);
        if (e != Errno.OK)
        {
            return e;
        }

        bool sessionRef = false;
        try
        {
            _session.DangerousAddRef(ref sessionRef);
            uint sessionFd = (uint)_session.Fd;
            int rc = LibC.ioctl(clone.Fd, FuseIoctl.DevIocClone, &sessionFd);
            e = ErrnoExtensions.LastPInvoke();
            if (rc < 0)
            {
                clone.Dispose();
                return e;
            }

            return Errno.OK;
        }
        finally
        {
            if (sessionRef)
            {
                _session.DangerousRelease();
            }
        }
    }

    private sealed class DeviceChannel(SafeFd fd, bool owns) : IFuseChannel, ISpliceChannel
    {
        public SafeFd Descriptor => fd;

        public unsafe Errno Read(Span<byte> buffer, out int length)
        {
            length = 0;
            bool added = false;
            try
            {
                // Held for the whole blocking read so the descriptor number cannot be closed and reused under us.
                fd.DangerousAddRef(ref added);
                fixed (byte* p = buffer)
                {
                    while (true)
                    {
                        nint n = LibC.read(fd.Fd, p, buffer.Length);
                        Errno e = ErrnoExtensions.LastPInvoke();
                        if (n >= 0)
                        {
                            length = (int)n;
                            return Errno.OK;
                        }

                        if (e != Errno.EINTR)
                        {
                            return e;
                        }
                    }
                }
            }
            catch (ObjectDisposedException)
            {
                return Errno.ENODEV;
            }
            finally
            {
                if (added)
                {
                    fd.DangerousRelease();
                }
            }
        }

        public Errno Write(ReadOnlySpan<byte> header, ReadOnlySpan<byte> body) => WriteGather(fd, header, body);

        public unsafe Errno SpliceReply(int pipeReadFd, int length)
        {
            bool added = false;
            try
            {
                fd.DangerousAddRef(ref added);
                while (true)
                {
                    nint n = LibC.splice(pipeReadFd, null, fd.Fd, null, (nuint)length, 0);
                    Errno e = ErrnoExtensions.LastPInvoke();
                    if (n == length)
                    {
                        return Errno.OK;
                    }

                    if (n >= 0)
                    {
                        return Errno.EIO; // fuse_dev_splice_write takes a whole reply or fails: a partial count is a broken reply
                    }

                    if (e != Errno.EINTR)
                    {
                        return e;
                    }
                }
            }
            catch (ObjectDisposedException)
            {
                return Errno.ENODEV;
            }
            finally
            {
                if (added)
                {
                    fd.DangerousRelease();
                }
            }
        }

        public void Dispose()
        {
            if (owns)
            {
                fd.Dispose();
            }
        }

        internal static unsafe Errno WriteGather(SafeFd target, ReadOnlySpan<byte> header, ReadOnlySpan<byte> body)
        {
            bool added = false;
            try
            {
                target.DangerousAddRef(ref added);
                fixed (byte* h = header)
                fixed (byte* b = body)
                {
                    IoVec* iov = stackalloc IoVec[2];
                    iov[0] = new IoVec { Base = h, Length = (nuint)header.Length };
                    iov[1] = new IoVec { Base = b, Length = (nuint)body.Length };
                    int count = body.IsEmpty ? 1 : 2;
                    while (true)
                    {
                        nint n = LibC.writev(target.Fd, iov, count);
                        Errno e = ErrnoExtensions.LastPInvoke();
                        if (n >= 0)
                        {
                            return Errno.OK;
                        }

                        if (e != Errno.EINTR)
                        {
                            return e;
                        }
                    }
                }
            }
            catch (ObjectDisposedException)
            {
                return Errno.ENODEV;
            }
            finally
            {
                if (added)
                {
                    target.DangerousRelease();
                }
            }
        }
    }
}
