using System.Runtime.InteropServices;

namespace InSpatialFs.Interop;

// libc calls the FUSE layer needs: mount/umount2 for the direct (root) mount, socketpair/recvmsg for the
// fusermount3 descriptor hand-off (SCM_RIGHTS), fcntl for FD_CLOEXEC.
// Hand-written with LibraryImport (not Tmds.LibC) so errno is read the one way every layer reads it.
public static unsafe partial class LibC
{
    public const ulong MS_RDONLY = 1, MS_NOSUID = 2, MS_NODEV = 4, MS_NOEXEC = 8, MS_NOATIME = 1024;
    public const int MNT_FORCE = 1, MNT_DETACH = 2, UMOUNT_NOFOLLOW = 8;

    public const int AF_UNIX = 1, SOCK_STREAM = 1, SOCK_SEQPACKET = 5, SOCK_CLOEXEC = 0x80000;
    public const int SOL_SOCKET = 1, SCM_RIGHTS = 1, MSG_CMSG_CLOEXEC = 0x40000000;

    public const int F_GETFD = 1, F_SETFD = 2, FD_CLOEXEC = 1;

    [LibraryImport(Lib)]
    public static partial uint getegid();

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int mount(string source, string target, string fstype, ulong flags, string? data);

    [LibraryImport(Lib, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int umount2(string target, int flags);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int socketpair(int domain, int type, int protocol, int* sv);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial nint recvmsg(int sockfd, MsgHdr* msg, int flags);

    /// <summary>Receives one message with exactly one SCM_RIGHTS descriptor (opened with MSG_CMSG_CLOEXEC), as fusermount3 sends it.</summary>
    public static Errno ReceiveFd(int socket, out SafeFd fd)
    {
        fd = new SafeFd();
        Span<byte> data = stackalloc byte[1];
        Errno e = ReceiveFds(socket, data, 1, out _, out SafeFd[] fds);
        if (e != Errno.OK)
        {
            return e;
        }

        if (fds.Length != 1)
        {
            Array.ForEach(fds, f => f.Dispose());
            return Errno.ECONNABORTED; // the peer closed (or wrote) without sending a descriptor
        }

        fd = fds[0];
        return Errno.OK;
    }
}

/// <summary>struct msghdr (x86_64, 56 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct MsgHdr
{
    public void* Name;
    public uint NameLen;
    public IoVec* Iov;
    public nuint IovLen;
    public void* Control;
    public nuint ControlLen;
    public int Flags;
}

/// <summary>struct cmsghdr (x86_64, 16 bytes; data follows).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct CmsgHdr
{
    public nuint Len;
    public int Level;
    public int Type;
}
