using InSpatialFs.Fuse;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Security;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Identity;
using InSpatialFs.Security.Policy;
using InSpatialFs.Security.Resources;
using InSpatialFs.Storage;
using InSpatialFs.Proxy.Direct;
using InSpatialFs.Storage.Host;
using InSpatialFs.Storage.Memory;
using InSpatialFs.Storage.Mounts;
using InSpatialFs.Storage.Overlay;
using InSpatialFs.TestKit;
using Microsoft.Extensions.Logging.Abstractions;

namespace InSpatialFs.Proxy.Tests.Stack;

/// <summary>Which backend serves a mount of the stack.</summary>
public enum Backend
{
    Memory,
    Host,
    Overlay,
}

/// <summary>
/// One mount of the stack. <paramref name="Seed"/> holds files (relative path → bytes) that exist before the stack
/// starts: written into the source directory of a host mount, into the lower layer of an overlay, and through a
/// short-lived writable proxy into a memory mount (so a read-only memory mount can hold data too).
/// </summary>
public sealed record StackMount(string Path, Backend Backend, bool ReadOnly = false, bool Direct = false,
    IReadOnlyDictionary<string, byte[]>? Seed = null);

/// <summary>How the stack is built. Without <see cref="Security"/> the test's <see cref="RecordingGate"/> decides.</summary>
public sealed record StackOptions
{
    public required IReadOnlyList<StackMount> Mounts { get; init; }

    /// <summary>A real <see cref="SecurityManager"/> with these options (host users get full access, see the harness).</summary>
    public SecurityOptions? Security { get; init; }

    /// <summary>Whether the fake kernel can register backing files (FUSE passthrough); without it DirectFS falls back.</summary>
    public bool KernelPassthrough { get; init; }

    /// <summary>The --direct-fallback copy setting (pread/pwrite) instead of the default splice.</summary>
    public bool CopyFallback { get; init; }

    /// <summary>Size limit of memory mounts (0: the backend's default).</summary>
    public long MemorySize { get; init; }

    /// <summary>Inode limit of memory mounts (0: the backend's default).</summary>
    public long MemoryInodes { get; init; }
}

/// <summary>
/// The whole request path in one process, no mount and no root: fake kernel → protocol server → secure proxy →
/// mount table → Memory / Host / Overlay backends over temp directories. All wiring lives here so an API change of
/// the proxy or the backends is fixed in one place; tests speak FUSE frames (<see cref="FrameSender"/>) and read replies
/// and recorded events.
/// </summary>
internal sealed class StackHarness : IDisposable
{
    public const ulong Root = 1;

    /// <summary>The in-header pid of requests unless a test gives one: high enough that no process has it, so the
    /// security manager pins nobody and the event carries exactly the pid that was sent.</summary>
    public const uint DefaultPid = 4_190_001;

    private readonly List<IFileSystemBackend> _backends = [];
    private readonly List<FsEvent> _managerEvents = [];
    private readonly IDisposable? _subscription;
    private readonly SecurityManager? _manager;
    private readonly RecordingGate? _recordingGate;

    public StackHarness(StackOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        TempRoot = Directory.CreateTempSubdirectory("inspatialfs-stack-").FullName;
        try
        {
            var entries = new List<MountEntry>();
            foreach (StackMount mount in options.Mounts)
            {
                entries.Add(BuildMount(mount, entries.Count));
            }

            Table = MountTable.Create(entries);
            ISecurityGate gate;
            if (options.Security is { } security)
            {
                // The test process is a host process, not a container member; host_users would otherwise refuse what
                // quotas are charged for (non-root runs) and make every quota case a host-access case.
                _manager = new SecurityManager(security with
                {
                    Membership = security.Membership with { HostRoot = HostAccess.Full, HostUsers = HostAccess.Full },
                    StateDir = null,
                });
                _subscription = _manager.Subscribe(e =>
                {
                    lock (_managerEvents)
                    {
                        _managerEvents.Add(e);
                    }
                });
                gate = _manager;
            }
            else
            {
                gate = _recordingGate = new RecordingGate();
            }

            Registrar = options.KernelPassthrough ? new StackBackingRegistrar() : null;
            var proxyOptions = new ProxyOptions { DirectFallback = options.CopyFallback ? DirectMode.Proxied : DirectMode.Spliced };
            Proxy = new SecureProxy(Table, gate, proxyOptions, NullLogger.Instance);
            Kernel = new FakeKernel(Proxy);
            Kernel.Transport.BackingRegistrar = Registrar;
            Fuse = new FrameSender(Kernel, Uid, Gid, DefaultPid);
            FuseReply init = Kernel.Init();
            if (init.Error != Errno.OK)
            {
                throw new InvalidOperationException("INIT failed: " + init);
            }

            Kernel.Call(FuseOpcode.StatFs, Root); // one reader: answered only after the proxy's Initialized returned
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public StackOptions Options { get; }

    /// <summary>Holds every temp directory of the stack (host sources, overlay layers); deleted on dispose.</summary>
    public string TempRoot { get; }

    public MountTable Table { get; } = null!;

    public SecureProxy Proxy { get; } = null!;

    public FakeKernel Kernel { get; } = null!;

    /// <summary>Requests from the test's caller: this process's uid and gid, pid <see cref="DefaultPid"/>.</summary>
    public FrameSender Fuse { get; } = null!;

    /// <summary>The same caller with another in-header pid.</summary>
    public FrameSender As(uint pid) => new(Kernel, Uid, Gid, pid);

    /// <summary>The fake FUSE_DEV_IOC_BACKING_OPEN/CLOSE, when the kernel can do passthrough.</summary>
    public StackBackingRegistrar? Registrar { get; }

    /// <summary>The test-decided gate (null when a real security manager decides).</summary>
    public RecordingGate? Gate => _recordingGate;

    /// <summary>The real security manager (null when the recording gate decides).</summary>
    public SecurityManager? Security => _manager;

    public uint Uid { get; } = LibC.geteuid();

    public uint Gid { get; } = LibC.getegid();

    /// <summary>Host directory of a host mount's source, or an overlay's upper layer (null for memory).</summary>
    public Dictionary<string, string> HostDirectory { get; } = [];

    /// <summary>Open files and directories the proxy holds.</summary>
    public int OpenHandles => Proxy.OpenHandles;

    /// <summary>Nodes the kernel holds per the proxy (root included).</summary>
    public int LiveNodes => Proxy.LiveNodes;

    /// <summary>"spliced", "proxied" or "kernel-passthrough": how DirectFS mounts move data.</summary>
    public string DirectModeName => Proxy.DirectMode.DisplayName();

    /// <summary>Completed events so far, in order (a real manager's pipeline is drained first).</summary>
    public IReadOnlyList<FsEvent> Events()
    {
        if (_manager is not null)
        {
            Assert.That(_manager.WaitIdle(TimeSpan.FromSeconds(10)), Is.True, "the event pipeline drains");
            lock (_managerEvents)
            {
                return [.. _managerEvents];
            }
        }

        lock (_recordingGate!.Recorded)
        {
            return [.. _recordingGate.Recorded];
        }
    }

    /// <summary>What the quota of a host or overlay mount has charged (a real manager with resources.disk or inodes).</summary>
    public (long Bytes, long Inodes) QuotaUsage(string mountPath)
    {
        QuotaAccount account = _manager!.QuotaFor(mountPath)!;
        return (account.Bytes, account.Inodes);
    }

    /// <summary>A reload of `paths:` (forbidden / read-only / allowed), as SIGHUP does; only with a real manager.</summary>
    public void ReplacePaths(IReadOnlyList<string> forbidden, IReadOnlyList<string> readOnly)
    {
        _manager!.ReplacePaths(forbidden, readOnly, []);
        Proxy.InvalidateKernelCaches("test reload", TimeSpan.Zero);
    }

    private MountEntry BuildMount(StackMount mount, int index)
    {
        string dir = Path.Combine(TempRoot, "m" + index);
        switch (mount.Backend)
        {
            case Backend.Memory:
            {
                var memory = Options.MemorySize > 0
                    ? new MemoryFileSystem(Options.MemorySize, Options.MemoryInodes)
                    : new MemoryFileSystem(inodeLimit: Options.MemoryInodes);
                _backends.Add(memory);
                if (mount.Seed is { Count: > 0 } seed)
                {
                    SeedThroughProxy(memory, seed);
                }

                return new MountEntry(mount.Path, memory, mount.ReadOnly, mount.Direct, MountKind.Memory);
            }

            case Backend.Host:
            {
                Directory.CreateDirectory(dir);
                WriteSeed(dir, mount.Seed);
                var host = new HostFileSystem(dir, mount.ReadOnly, NullLogger.Instance, direct: mount.Direct);
                _backends.Add(host);
                HostDirectory[mount.Path] = dir;
                return new MountEntry(mount.Path, host, mount.ReadOnly, mount.Direct, mount.Direct ? MountKind.Direct : MountKind.Host);
            }

            default:
            {
                string lower = Path.Combine(dir, "lower"), upper = Path.Combine(dir, "upper"), work = Path.Combine(dir, "work");
                Directory.CreateDirectory(lower);
                Directory.CreateDirectory(upper);
                Directory.CreateDirectory(work);
                WriteSeed(lower, mount.Seed);
                var overlay = new OverlayFileSystem(new OverlayLayers([lower], upper, work), NullLogger.Instance, directLower: mount.Direct, directUpper: mount.Direct);
                _backends.Add(overlay);
                HostDirectory[mount.Path] = upper;
                return new MountEntry(mount.Path, overlay, mount.ReadOnly, mount.Direct, MountKind.Overlay);
            }
        }
    }

    private static void WriteSeed(string dir, IReadOnlyDictionary<string, byte[]>? seed)
    {
        foreach ((string relative, byte[] bytes) in seed ?? new Dictionary<string, byte[]>())
        {
            string file = Path.Combine(dir, relative);
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            File.WriteAllBytes(file, bytes);
        }
    }

    /// <summary>
    /// Fills a memory backend through a writable stack of its own (the stack under test may mount it read-only),
    /// then forgets every node so the backend is left as a fresh one holding the files.
    /// </summary>
    private static void SeedThroughProxy(MemoryFileSystem memory, IReadOnlyDictionary<string, byte[]> seed)
    {
        var table = MountTable.Create([new MountEntry("/", memory, ReadOnly: false, Direct: false, MountKind.Memory)]);
        var proxy = new SecureProxy(table, new RecordingGate(), new ProxyOptions(), NullLogger.Instance);
        using var kernel = new FakeKernel(proxy);
        Assert.That(kernel.Init().Error, Is.EqualTo(Errno.OK));
        var seeder = new FrameSender(kernel, LibC.geteuid(), LibC.getegid(), DefaultPid);
        foreach ((string relative, byte[] bytes) in seed)
        {
            string[] parts = relative.Split('/');
            ulong dir = Root;
            var held = new List<ulong>();
            foreach (string part in parts[..^1])
            {
                FuseReply made = seeder.MkDir(dir, part);
                dir = made.Error == Errno.EEXIST ? seeder.Lookup(dir, part).As<FuseEntryOut>().NodeId : Ok(made).As<FuseEntryOut>().NodeId;
                held.Add(dir);
            }

            FuseReply created = Ok(seeder.Create(dir, parts[^1], LibC.O_RDWR, 0x1A4));
            ulong node = created.At<FuseEntryOut>(0).NodeId;
            ulong fh = created.At<FuseOpenOut>(128).Fh;
            if (bytes.Length > 0)
            {
                Ok(seeder.Write(node, fh, 0, bytes));
            }

            Ok(seeder.Release(node, fh));
            held.Add(node);
            foreach (ulong n in held)
            {
                seeder.Forget(n, 1);
            }
        }

        kernel.Call(FuseOpcode.StatFs, Root); // every FORGET above is processed (one reader, in order)
    }

    /// <summary>Asserts a reply succeeded and returns it.</summary>
    public static FuseReply Ok(FuseReply reply)
    {
        ArgumentNullException.ThrowIfNull(reply);
        Assert.That(reply.Error, Is.EqualTo(Errno.OK), reply.ToString());
        return reply;
    }

    public void Dispose()
    {
        Kernel?.Dispose();
        _subscription?.Dispose();
        _manager?.Dispose();
        foreach (IFileSystemBackend backend in _backends)
        {
            backend.Dispose();
        }

        try
        {
            Directory.Delete(TempRoot, recursive: true);
        }
        catch (IOException)
        {
            // A test that failed half way may leave an odd mode behind; the temp directory is the only casualty.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}

/// <summary>A registrar standing in for FUSE_DEV_IOC_BACKING_OPEN/CLOSE: hands out ids and remembers the live ones.</summary>
internal sealed class StackBackingRegistrar : IBackingRegistrar
{
    private int _next;

    public HashSet<int> Live { get; } = [];

    public Errno Open(SafeFd fd, out int backingId)
    {
        lock (Live)
        {
            backingId = ++_next;
            Live.Add(backingId);
        }

        return Errno.OK;
    }

    public Errno Close(int backingId)
    {
        lock (Live)
        {
            return Live.Remove(backingId) ? Errno.OK : Errno.ENOENT;
        }
    }
}
