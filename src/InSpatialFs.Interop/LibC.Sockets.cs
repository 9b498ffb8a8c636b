using System.Runtime.InteropServices;

namespace InSpatialFs.Interop;

// Passing descriptors between processes over a unix socket (SCM_RIGHTS): fusermount3 hands us the session
// descriptor this way, and a keeper hands a live connection's descriptors to the server that adopts it.
public static unsafe partial class LibC
{
    public const int MSG_CTRUNC = 0x8;

    /// <summary>At most this many descriptors travel in one message (the kernel's SCM_MAX_FD).</summary>
    public const int MaxDescriptorsPerMessage = 253;

    [LibraryImport(Lib, SetLastError = true)]
    public static partial nint sendmsg(int sockfd, MsgHdr* msg, int flags);

    /// <summary>Sends <paramref name="data"/> (at least one byte, so the receiver can tell a message from end of file) with the descriptors in <paramref name="fds"/>.</summary>
    public static Errno SendFds(int socket, ReadOnlySpan<byte> data, ReadOnlySpan<int> fds)
    {
        if (data.IsEmpty || fds.Length > MaxDescriptorsPerMessage)
        {
            return Errno.EINVAL;
        }

        int controlSize = ControlSpace(fds.Length);
        byte* control = stackalloc byte[controlSize];
        new Span<byte>(control, controlSize).Clear();
        fixed (byte* d = data)
        {
            var iov = new IoVec { Base = d, Length = (nuint)data.Length };
            var msg = new MsgHdr { Iov = &iov, IovLen = 1 };
            if (!fds.IsEmpty)
            {
                var header = (CmsgHdr*)control;
                header->Len = (nuint)(sizeof(CmsgHdr) + (fds.Length * sizeof(int)));
                header->Level = SOL_SOCKET;
                header->Type = SCM_RIGHTS;
                fds.CopyTo(new Span<int>(control + sizeof(CmsgHdr), fds.Length));
                msg.Control = control;
                msg.ControlLen = (nuint)controlSize;
            }

            nint n;
            Errno e;
            do
            {
                n = sendmsg(socket, &msg, 0x4000 /* MSG_NOSIGNAL */);
                e = ErrnoExtensions.LastPInvoke();
            }
            while (n < 0 && e == Errno.EINTR);

            return n < 0 ? e : n == data.Length ? Errno.OK : Errno.EIO;
        }
    }

    /// <summary>
    /// Receives one message into <paramref name="data"/> with up to <paramref name="maxFds"/> descriptors (close-on-exec).
    /// ECONNABORTED: the peer closed. EMSGSIZE: more descriptors came than <paramref name="maxFds"/> (the kernel closed the
    /// rest; the ones received are closed too, so nothing leaks and nothing half-arrives).
    /// </summary>
    public static Errno ReceiveFds(int socket, Span<byte> data, int maxFds, out int dataLength, out SafeFd[] fds)
    {
        fds = [];
        dataLength = 0;
        if (data.IsEmpty || maxFds is < 0 or > MaxDescriptorsPerMessage)
        {
            return Errno.EINVAL;
        }

        int controlSize = ControlSpace(maxFds);
        byte* control = stackalloc byte[controlSize];
        new Span<byte>(control, controlSize).Clear();
        fixed (byte* d = data)
        {
            var iov = new IoVec { Base = d, Length = (nuint)data.Length };
            var msg = new MsgHdr { Iov = &iov, IovLen = 1, Control = maxFds > 0 ? control : null, ControlLen = maxFds > 0 ? (nuint)controlSize : 0 };
            nint n;
            Errno e;
            do
            {
                n = recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
                e = ErrnoExtensions.LastPInvoke();
            }
            while (n < 0 && e == Errno.EINTR);

            if (n < 0)
            {
                return e;
            }

            var received = new List<SafeFd>();
            for (var header = (CmsgHdr*)control; msg.ControlLen >= (nuint)sizeof(CmsgHdr) && (byte*)header + sizeof(CmsgHdr) <= control + (int)msg.ControlLen;)
            {
                if (header->Len < (nuint)sizeof(CmsgHdr) || (byte*)header + (int)header->Len > control + (int)msg.ControlLen)
                {
                    break;
                }

                int payload = (int)header->Len - sizeof(CmsgHdr);

                if (header->Level == SOL_SOCKET && header->Type == SCM_RIGHTS)
                {
                    for (int i = 0; i < payload / sizeof(int); i++)
                    {
                        received.Add(new SafeFd(((int*)((byte*)header + sizeof(CmsgHdr)))[i]));
                    }
                }

                header = (CmsgHdr*)((byte*)header + Align((int)header->Len));
            }

            if ((msg.Flags & MSG_CTRUNC) != 0)
            {
                received.ForEach(fd => fd.Dispose());
                return Errno.EMSGSIZE;
            }

            if (n == 0 && received.Count == 0)
            {
                return Errno.ECONNABORTED;
            }

            dataLength = (int)n;
            fds = [.. received];
            return Errno.OK;
        }
    }

    /// <summary>CMSG_SPACE for <paramref name="count"/> ints on x86_64 (header 16 bytes, 8-byte alignment).</summary>
    private static int ControlSpace(int count) => sizeof(CmsgHdr) + Align(Math.Max(count, 1) * sizeof(int));

    private static int Align(int length) => (length + 7) & ~7;
}
