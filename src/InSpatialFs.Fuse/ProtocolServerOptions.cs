using InSpatialFs.Fuse.Abi;

namespace InSpatialFs.Fuse;

/// <summary>What the protocol server negotiates and how many reader threads it runs.</summary>
public sealed record ProtocolServerOptions
{
    /// <summary>
    /// Features requested in the INIT reply (each is kept only if the kernel offered it). INIT_EXT is added
    /// whenever the kernel offers it. Passthrough is dropped when WritebackCache is also wanted (the kernel would
    /// silently disable it anyway).
    /// </summary>
    public const FuseInitFlags DefaultWantedFlags =
        FuseInitFlags.AsyncRead | FuseInitFlags.BigWrites | FuseInitFlags.AtomicOTrunc | FuseInitFlags.ParallelDirops
        | FuseInitFlags.DoReaddirplus | FuseInitFlags.ReaddirplusAuto | FuseInitFlags.ExportSupport
        | FuseInitFlags.HandleKillprivV2 | FuseInitFlags.MaxPages | FuseInitFlags.CacheSymlinks
        | FuseInitFlags.SetxattrExt | FuseInitFlags.Passthrough;

    /// <summary>2..4 depending on the CPU count.</summary>
    public static int DefaultReaderThreads => Math.Clamp(Environment.ProcessorCount, 2, 4);

    /// <summary>Dedicated OS threads blocked in read(2), each on its own cloned descriptor (1..64).</summary>
    public int ReaderThreads { get; init; } = DefaultReaderThreads;

    /// <summary>
    /// Serve over io_uring (FUSE_OVER_IO_URING, 7.42) when the kernel offers it at INIT: after INIT, each of the
    /// kernel's ring queues (one per possible CPU) gets <see cref="RingThreadsPerQueue"/> threads, each with its own
    /// io_uring and one ring entry. The /dev/fuse readers stay for what the kernel still sends there (FORGET,
    /// INTERRUPT, and every request until all queues have an entry).
    /// </summary>
    public bool IoUring { get; init; }

    /// <summary>Reader threads are named this, a dash and their index (at most 12 characters: Linux keeps 15 of a name).</summary>
    public string ReaderThreadName { get; init; } = "fuse-reader";

    /// <summary>
    /// Pin each /dev/fuse reader to a CPU of its own while every CPU has idle time (see <see cref="Transport.ReaderPlacement"/>).
    /// Has no effect over io_uring, or with fewer readers than CPUs.
    /// </summary>
    public bool PinReaders { get; init; }

    /// <summary>Ring threads per queue (1..8): how many requests issued from one CPU are served at once.</summary>
    public int RingThreadsPerQueue { get; init; } = 2;

    /// <summary>Largest WRITE payload (init_out.max_write); 1 MiB with max_pages 256.</summary>
    public uint MaxWrite { get; init; } = 1 << 20;

    /// <summary>init_out.max_pages (the kernel clamps it to /proc/sys/fs/fuse/max_pages_limit).</summary>
    public ushort MaxPages { get; init; } = 256;

    public FuseInitFlags WantedFlags { get; init; } = DefaultWantedFlags;

    /// <summary>init_out.max_stack_depth when passthrough is accepted: 1, or 2 if backing files sit on overlayfs.</summary>
    public uint MaxStackDepth { get; init; } = 1;

    public ushort MaxBackground { get; init; } = 12;

    public ushort CongestionThreshold { get; init; } = 9;

    /// <summary>Timestamp granularity in nanoseconds (1 = full nanoseconds).</summary>
    public uint TimeGranularity { get; init; } = 1;

    /// <summary>
    /// Set when this server adopts a connection another server negotiated (a restart or upgrade underneath a live
    /// mount): no INIT comes, the server takes these parameters as negotiated and, once its readers run, asks the
    /// kernel to resend every request the previous server read but did not answer (NOTIFY_RESEND).
    /// </summary>
    public FuseSessionParameters? Adopt { get; init; }

    internal void Validate()
    {
        if (ReaderThreads is < 1 or > 64)
        {
            throw new ArgumentOutOfRangeException(nameof(ReaderThreads), ReaderThreads, "1..64 reader threads");
        }

        if (ReaderThreadName.Length is 0 or > 12)
        {
            throw new ArgumentOutOfRangeException(nameof(ReaderThreadName), ReaderThreadName, "1..12 characters");
        }

        if (RingThreadsPerQueue is < 1 or > 8)
        {
            throw new ArgumentOutOfRangeException(nameof(RingThreadsPerQueue), RingThreadsPerQueue, "1..8 ring threads per queue");
        }

        if (MaxWrite is < 4096 or > 16 << 20)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxWrite), MaxWrite, "max_write must be 4 KiB..16 MiB");
        }

        if (MaxPages is 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxPages), MaxPages, "max_pages must be positive");
        }

        if (MaxStackDepth is < 1 or > 2)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxStackDepth), MaxStackDepth, "max_stack_depth is 1 or 2");
        }
    }

    /// <summary>Read buffer per reader: the kernel refuses reads smaller than max(8192, 80 + max_write).</summary>
    internal int RequestBufferSize => Math.Max(FuseConstants.MinReadBuffer, (int)MaxWrite + 4096);

    /// <summary>A ring entry's payload: the kernel refuses less than max(8 KiB, max_write, max_pages pages).</summary>
    internal int RingPayloadSize => Math.Max(FuseConstants.MinReadBuffer, Math.Max((int)MaxWrite, MaxPages * 4096));

    /// <summary>Reply buffer per reader: out header plus the largest READ/READDIR body (max_pages pages or max_write).</summary>
    internal int ReplyBufferSize => Math.Max(MaxPages * 4096, (int)MaxWrite) + 4096;
}
