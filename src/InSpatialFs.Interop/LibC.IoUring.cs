using System.Runtime.InteropServices;

namespace InSpatialFs.Interop;

// io_uring for FUSE over io_uring (the FUSE layer's ring transport): the two system calls (glibc has no wrappers),
// the mmap of the rings, and the ABI structs of include/uapi/linux/io_uring.h that a ring needs. No liburing: a FUSE
// ring holds one command at a time, so the little it needs is written out here.
public static unsafe partial class LibC
{
    public const long SYS_io_uring_setup = 425, SYS_io_uring_enter = 426;

    /// <summary>io_uring_params.flags: 128-byte SQEs (a URING_CMD carries 80 bytes of command; FUSE needs it).</summary>
    public const uint IORING_SETUP_SQE128 = 1u << 10;

    /// <summary>io_uring_params.features: SQ and CQ rings share one mapping.</summary>
    public const uint IORING_FEAT_SINGLE_MMAP = 1u << 0;

    public const uint IORING_ENTER_GETEVENTS = 1u << 0;

    public const long IORING_OFF_SQ_RING = 0, IORING_OFF_CQ_RING = 0x8000000, IORING_OFF_SQES = 0x10000000;

    public const byte IORING_OP_URING_CMD = 46;

    public const int PROT_READ = 1, PROT_WRITE = 2, MAP_SHARED = 1, MAP_POPULATE = 0x8000;

    [LibraryImport(Lib, SetLastError = true)]
    public static partial void* mmap(void* addr, nuint length, int prot, int flags, int fd, long offset);

    [LibraryImport(Lib, SetLastError = true)]
    public static partial int munmap(void* addr, nuint length);

    /// <summary>sched_setaffinity(2): pid 0 is the calling thread; a one-word mask covers CPUs 0..63.</summary>
    [LibraryImport(Lib, SetLastError = true)]
    public static partial int sched_setaffinity(int pid, nuint setSize, ulong* mask);

    /// <summary>sched_getaffinity(2): the CPUs thread <paramref name="pid"/> may run on.</summary>
    [LibraryImport(Lib, SetLastError = true)]
    public static partial int sched_getaffinity(int pid, nuint setSize, ulong* mask);

    /// <summary>Words of the CPU masks below: 1,024 CPUs.</summary>
    public const int CpuMaskWords = 16;

    /// <summary>The CPUs the process's main thread may run on, into <paramref name="mask"/> (<see cref="CpuMaskWords"/> words).</summary>
    public static bool GetProcessCpus(Span<ulong> mask)
    {
        fixed (ulong* m = mask)
        {
            return mask.Length == CpuMaskWords && sched_getaffinity(Environment.ProcessId, CpuMaskWords * sizeof(ulong), m) == 0;
        }
    }

    /// <summary>Lets the calling thread run on the CPUs of <paramref name="mask"/> (<see cref="CpuMaskWords"/> words) only.</summary>
    public static bool SetThreadCpus(ReadOnlySpan<ulong> mask)
    {
        fixed (ulong* m = mask)
        {
            return mask.Length == CpuMaskWords && sched_setaffinity(0, CpuMaskWords * sizeof(ulong), m) == 0;
        }
    }

    /// <summary>
    /// Lets the calling thread run on every CPU the process's main thread may run on. A new thread gets the CPUs of the
    /// thread that started it, so a thread started on a request (a ring reader pinned to its queue's CPU starts the
    /// exit watcher when it pins the first caller) would otherwise stay on that one CPU for its life. False when the
    /// mask could not be read or set; the thread then keeps what it has.
    /// </summary>
    public static bool RunOnProcessCpus()
    {
        Span<ulong> mask = stackalloc ulong[CpuMaskWords];
        return GetProcessCpus(mask) && SetThreadCpus(mask);
    }

    /// <summary>io_uring_setup(2): a new ring of <paramref name="entries"/> SQEs; the kernel fills in the offsets.</summary>
    public static int IoUringSetup(uint entries, IoUringParams* p) => (int)syscall(SYS_io_uring_setup, entries, (long)p, 0, 0, 0, 0);

    /// <summary>io_uring_enter(2) without a signal mask.</summary>
    public static int IoUringEnter(int ringFd, uint toSubmit, uint minComplete, uint flags) =>
        (int)syscall(SYS_io_uring_enter, ringFd, toSubmit, minComplete, flags, 0, 0);
}

/// <summary>struct io_sqring_offsets (40 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct IoSqringOffsets
{
    public uint Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, Resv1;
    public ulong UserAddr;
}

/// <summary>struct io_cqring_offsets (40 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct IoCqringOffsets
{
    public uint Head, Tail, RingMask, RingEntries, Overflow, Cqes, Flags, Resv1;
    public ulong UserAddr;
}

/// <summary>struct io_uring_params (120 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct IoUringParams
{
    public uint SqEntries, CqEntries, Flags, SqThreadCpu, SqThreadIdle, Features, WqFd;
    public uint Resv0, Resv1, Resv2;
    public IoSqringOffsets SqOff;
    public IoCqringOffsets CqOff;
}

/// <summary>struct io_uring_cqe without CQE32 (16 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct IoUringCqe
{
    public ulong UserData;
    public int Res;
    public uint Flags;
}
