using System.Runtime.InteropServices;

namespace InSpatialFs.Interop;

/// <summary>Process calls for caller pinning and responses: pidfds, signals, poll, fsync.</summary>
public static unsafe partial class LibC
{
    public const long SYS_pidfd_send_signal = 424, SYS_pidfd_open = 434;
    public const int SIGKILL = 9, SIGCONT = 18, SIGSTOP = 19;
    public const short POLLIN = 0x1;

    [LibraryImport(Lib, SetLastError = true)]
    private static partial long syscall(long number, long a1, long a2, long a3, long a4);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int kill(int pid, int sig);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int poll(PollFd* fds, ulong nfds, int timeoutMs);

    public const int EPOLL_CLOEXEC = 0x80000, EPOLL_CTL_ADD = 1, EPOLL_CTL_DEL = 2;
    public const uint EPOLLIN = 0x1;

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int epoll_create1(int flags);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int epoll_ctl(int epfd, int op, int fd, EpollEvent* ev);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int epoll_wait(int epfd, EpollEvent* events, int maxevents, int timeoutMs);

    public const int EFD_CLOEXEC = 0x80000, EFD_NONBLOCK = 0x800;

    /// <summary>eventfd(2): a counter a thread can block on in an epoll set; another thread wakes it by adding to it.</summary>
    [LibraryImport(Lib, SetLastError = true)]
    public static partial int eventfd(uint initval, int flags);

    /// <summary>Adds one to an eventfd's counter (wakes whoever polls it).</summary>
    public static void SignalEventFd(SafeFd eventFd)
    {
        ulong one = 1;
        if (!eventFd.IsInvalid && !eventFd.IsClosed) write(eventFd.Fd, (byte*)&one, sizeof(ulong));
    }

    /// <summary>pidfd_open(2): a descriptor that refers to this process for its lifetime (never to a reused pid).</summary>
    public static Errno PidfdOpen(int pid, out SafeFd fd)
    {
        long raw = syscall(SYS_pidfd_open, pid, 0, 0, 0);
        Errno e = ErrnoExtensions.LastPInvoke();
        fd = new SafeFd(raw < 0 ? -1 : (int)raw);
        return raw < 0 ? e : Errno.OK;
    }

    /// <summary>pidfd_send_signal(2): signals exactly the process the pidfd pins.</summary>
    public static Errno PidfdSendSignal(SafeFd pidfd, int sig)
    {
        bool added = false;
        pidfd.DangerousAddRef(ref added);
        try
        {
            long r = syscall(SYS_pidfd_send_signal, pidfd.Fd, sig, 0, 0);
            Errno e = ErrnoExtensions.LastPInvoke();
            return r < 0 ? e : Errno.OK;
        }
        finally
        {
            if (added) pidfd.DangerousRelease();
        }
    }

    /// <summary>True when the process a pidfd pins has exited (a pidfd polls readable on exit).</summary>
    public static bool PidfdHasExited(SafeFd pidfd)
    {
        bool added = false;
        pidfd.DangerousAddRef(ref added);
        try
        {
            var p = new PollFd { Fd = pidfd.Fd, Events = POLLIN };
            int r = poll(&p, 1, 0);
            return r > 0 && (p.Revents & POLLIN) != 0;
        }
        finally
        {
            if (added) pidfd.DangerousRelease();
        }
    }
}

[StructLayout(LayoutKind.Sequential)]
public struct PollFd
{
    public int Fd;
    public short Events;
    public short Revents;
}

/// <summary>struct epoll_event: packed on x86_64 (12 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Pack = 4)]
public struct EpollEvent
{
    public uint Events;
    public ulong Data;
}
