using System.Diagnostics;
using System.Globalization;
using System.Text;
using InSpatialFs.Interop;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace InSpatialFs.Fuse.Transport;

/// <summary>
/// One mounted FUSE connection: mounts (mount(2) as root, fusermount3 otherwise), owns the <see cref="FuseDevice"/>,
/// and unmounts. Dispose unmounts lazily if still mounted and closes every descriptor.
/// </summary>
public sealed class FuseMount : IDisposable
{
    private readonly ILogger _logger;
    private int _mounted; // 1 while mounted, 0 after the first successful unmount

    private FuseMount(string mountpoint, FuseDevice device, bool viaFusermount, FuseMountOptions options, ILogger logger)
    {
        Mountpoint = mountpoint;
        Device = device;
        ViaFusermount = viaFusermount;
        Options = options;
        _logger = logger;
        _mounted = 1;
        ConnectionId = FindConnectionId(mountpoint);

        device.SetShutdown(() => Unmount(lazy: true));
    }

    public string Mountpoint { get; }

    /// <summary>The transport to hand to <see cref="ProtocolServer"/>.</summary>
    public FuseDevice Device { get; }

    public FuseMountOptions Options { get; }

    /// <summary>True when fusermount3 mounted it (unmount goes through fusermount3 -u too).</summary>
    public bool ViaFusermount { get; }

    /// <summary>The number under /sys/fs/fuse/connections (minor of the mount's st_dev), if known.</summary>
    public uint? ConnectionId { get; }

    public bool IsMounted => Volatile.Read(ref _mounted) == 1;

    /// <summary>
    /// Mounts a new FUSE connection on <paramref name="mountpoint"/> (an existing directory). Returns at once:
    /// the kernel has queued INIT, which the protocol server answers.
    /// </summary>
    public static FuseMount Mount(string mountpoint, FuseMountOptions? options = null, ILogger? logger = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(mountpoint);
        options ??= new FuseMountOptions();
        options.Validate();
        logger ??= NullLogger.Instance;
        string full = Path.GetFullPath(mountpoint);
        if (!Directory.Exists(full))
        {
            throw new DirectoryNotFoundException($"mountpoint {full} does not exist");
        }

        bool root = LibC.geteuid() == 0;
        FuseDevice device = root && !options.UseFusermount ? MountDirect(full, options) : MountWithFusermount(full, options);
        var mount = new FuseMount(full, device, !root || options.UseFusermount, options, logger);
        FuseLog.Mounted(logger, full, mount.ViaFusermount ? "fusermount3" : "mount(2)", mount.ConnectionId ?? 0);
        return mount;
    }

    /// <summary>The data string for mount(2) (fd, rootmode, ids and the permission options).</summary>
    internal static string DirectMountData(int fd, uint uid, uint gid, FuseMountOptions options)
    {
        var data = new StringBuilder();
        data.Append(CultureInfo.InvariantCulture, $"fd={fd},rootmode=40000,user_id={uid},group_id={gid}");
        if (options.AllowOther)
        {
            data.Append(",allow_other");
        }

        if (options.DefaultPermissions)
        {
            data.Append(",default_permissions");
        }

        data.Append(CultureInfo.InvariantCulture, $",max_read={options.MaxRead}");
        return data.ToString();
    }

    /// <summary>MS_* flags for mount(2): nosuid and nodev always, plus the options'.</summary>
    internal static ulong DirectMountFlags(FuseMountOptions options)
    {
        ulong flags = LibC.MS_NOSUID | LibC.MS_NODEV;
        if (options.ReadOnly)
        {
            flags |= LibC.MS_RDONLY;
        }

        if (options.NoExec)
        {
            flags |= LibC.MS_NOEXEC;
        }

        if (options.NoAtime)
        {
            flags |= LibC.MS_NOATIME;
        }

        return flags;
    }

    /// <summary>The -o string for fusermount3.</summary>
    internal static string FusermountOptions(FuseMountOptions options)
    {
        var o = new List<string> { "fsname=" + options.FsName, "nosuid", "nodev" };
        if (!string.IsNullOrEmpty(options.Subtype))
        {
            o.Add("subtype=" + options.Subtype);
        }

        if (options.AllowOther)
        {
            o.Add("allow_other");
        }

        if (options.DefaultPermissions)
        {
            o.Add("default_permissions");
        }

        o.Add("max_read=" + options.MaxRead.ToString(CultureInfo.InvariantCulture));
        o.Add(options.ReadOnly ? "ro" : "rw");
        if (options.NoExec)
        {
            o.Add("noexec");
        }

        if (options.NoAtime)
        {
            o.Add("noatime");
        }

        return string.Join(',', o);
    }

    /// <summary>
    /// Takes over a mount whose connection an earlier server made (a restart under a keeper): <paramref name="session"/>
    /// is that connection's /dev/fuse session descriptor. Nothing is mounted; no INIT comes (see ProtocolServerOptions.Adopt).
    /// </summary>
    public static FuseMount Adopt(string mountpoint, SafeFd session, FuseMountOptions? options = null, ILogger? logger = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(mountpoint);
        options ??= new FuseMountOptions();
        return new FuseMount(Path.GetFullPath(mountpoint), new FuseDevice(session), viaFusermount: false, options, logger ?? NullLogger.Instance);
    }

    /// <summary>Unmounts (lazily by default). Returns OK, or the errno of umount2 / the exit of fusermount3 -u.</summary>
    public Errno Unmount(bool lazy = true)
    {
        if (!IsMounted)
        {
            return Errno.OK;
        }

        Errno e;
        if (ViaFusermount)
        {
            e = RunFusermount(Options.FusermountPath, lazy ? ["-u", "-z", "--", Mountpoint] : ["-u", "--", Mountpoint]) == 0 ? Errno.OK : Errno.EIO;
        }
        else
        {
            int rc = LibC.umount2(Mountpoint, (lazy ? LibC.MNT_DETACH : 0) | LibC.UMOUNT_NOFOLLOW);
            e = ErrnoExtensions.LastPInvoke();
            if (rc == 0)
            {
                e = Errno.OK;
            }
            else if (e == Errno.EINVAL)
            {
                e = Errno.OK; // not a mount point any more: someone unmounted it from outside
            }
        }

        if (e == Errno.OK)
        {
            Volatile.Write(ref _mounted, 0);
            FuseLog.Unmounted(_logger, Mountpoint);
        }
        else
        {
            FuseLog.UnmountFailed(_logger, Mountpoint, e);
        }

        return e;
    }

    /// <summary>
    /// Aborts the connection through /sys/fs/fuse/connections/N/abort (mounting fusectl if needed): every pending
    /// and later request fails and every read on the device returns ENODEV. The way out of a hung daemon.
    /// </summary>
    public Errno Abort() => ConnectionId is uint id ? AbortConnection(id) : Errno.ENOENT;

    /// <summary>Aborts FUSE connection <paramref name="connectionId"/> through fusectl.</summary>
    public static Errno AbortConnection(uint connectionId)
    {
        const string root = "/sys/fs/fuse/connections";
        string abort = Path.Combine(root, connectionId.ToString(CultureInfo.InvariantCulture), "abort");
        if (!File.Exists(abort))
        {
            _ = LibC.mount("fusectl", root, "fusectl", 0, null);
        }

        try
        {
            File.WriteAllText(abort, "1");
            return Errno.OK;
        }
        catch (IOException)
        {
            return Errno.EIO;
        }
        catch (UnauthorizedAccessException)
        {
            return Errno.EACCES;
        }
    }

    /// <summary>
    /// The fusectl connection number of the newest FUSE mount on <paramref name="mountpoint"/>, read from
    /// /proc/self/mountinfo. Never stat() the mountpoint for this: before INIT is answered that blocks forever.
    /// </summary>
    internal static uint? FindConnectionId(string mountpoint)
    {
        uint? found = null;
        try
        {
            foreach (string line in File.ReadLines("/proc/self/mountinfo"))
            {
                // id parent major:minor root mountpoint options [optional fields] - fstype source superoptions
                string[] fields = line.Split(' ');
                int separator = Array.IndexOf(fields, "-");
                if (fields.Length < 5 || separator < 0 || separator + 1 >= fields.Length || !fields[separator + 1].StartsWith("fuse", StringComparison.Ordinal))
                {
                    continue;
                }

                if (UnescapeMountinfo(fields[4]) != mountpoint)
                {
                    continue;
                }

                string[] dev = fields[2].Split(':');
                if (dev.Length == 2 && uint.TryParse(dev[1], NumberStyles.None, CultureInfo.InvariantCulture, out uint minor))
                {
                    found = minor;
                }
            }
        }
        catch (IOException)
        {
            return null;
        }

        return found;
    }

    /// <summary>mountinfo writes space, tab, newline and backslash as \ooo octal escapes.</summary>
    public static string UnescapeMountinfo(string field)
    {
        if (!field.Contains('\\', StringComparison.Ordinal))
        {
            return field;
        }

        var sb = new StringBuilder(field.Length);
        for (int i = 0; i < field.Length; i++)
        {
            if (field[i] == '\\' && IsOctal(field, i + 1))
            {
                sb.Append((char)Convert.ToInt32(field.Substring(i + 1, 3), 8));
                i += 3;
            }
            else
            {
                sb.Append(field[i]);
            }
        }

        return sb.ToString();
    }

    private static bool IsOctal(string s, int at) =>
        at + 3 <= s.Length && s[at] is >= '0' and <= '7' && s[at + 1] is >= '0' and <= '7' && s[at + 2] is >= '0' and <= '7';

    public void Dispose()
    {
        if (IsMounted)
        {
            Unmount(lazy: true);
        }

        Device.Dispose();
    }

    private static FuseDevice MountDirect(string mountpoint, FuseMountOptions options)
    {
        Errno e = FuseDevice.OpenDevice(out SafeFd fd);
        if (e != Errno.OK)
        {
            fd.Dispose();
            throw new IOException($"open /dev/fuse: {e}");
        }

        string fstype = string.IsNullOrEmpty(options.Subtype) ? "fuse" : "fuse." + options.Subtype;
        string data = DirectMountData(fd.Fd, LibC.geteuid(), LibC.getegid(), options);
        int rc = LibC.mount(options.FsName, mountpoint, fstype, DirectMountFlags(options), data);
        e = ErrnoExtensions.LastPInvoke();
        if (rc != 0)
        {
            fd.Dispose();
            throw new IOException($"mount({mountpoint}, {fstype}, \"{data}\"): {e}");
        }

        return new FuseDevice(fd);
    }

    private static unsafe FuseDevice MountWithFusermount(string mountpoint, FuseMountOptions options)
    {
        int* pair = stackalloc int[2];
        if (LibC.socketpair(LibC.AF_UNIX, LibC.SOCK_STREAM, 0, pair) != 0)
        {
            Errno se = ErrnoExtensions.LastPInvoke();
            throw new IOException($"socketpair: {se}");
        }

        // Ours stays close-on-exec; the child's end must be inherited by fusermount3 (.NET opens everything CLOEXEC
        // and does not close other descriptors in the child, so clearing the flag is enough).
        using var ours = new SafeFd(pair[0]);
        using var theirs = new SafeFd(pair[1]);
        _ = LibC.fcntl(ours.Fd, LibC.F_SETFD, LibC.FD_CLOEXEC);
        _ = LibC.fcntl(theirs.Fd, LibC.F_SETFD, 0);

        var start = new ProcessStartInfo(options.FusermountPath)
        {
            UseShellExecute = false,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add("-o");
        start.ArgumentList.Add(FusermountOptions(options));
        start.ArgumentList.Add("--");
        start.ArgumentList.Add(mountpoint);
        start.Environment["_FUSE_COMMFD"] = theirs.Fd.ToString(CultureInfo.InvariantCulture);

        using Process process = Process.Start(start) ?? throw new IOException("could not start fusermount3");
        theirs.Dispose(); // only the child holds it now, so EOF on ours means fusermount3 is gone
#pragma warning disable CA2000 // the returned device owns it; the catch below closes it on every failure
        Errno e = LibC.ReceiveFd(ours.Fd, out SafeFd fd);
#pragma warning restore CA2000
        try
        {
            string stderr = process.StandardError.ReadToEnd();
            process.WaitForExit();
            if (e != Errno.OK || process.ExitCode != 0)
            {
                throw new IOException($"fusermount3 failed (exit {process.ExitCode}, {e}): {stderr.Trim()}");
            }

            return new FuseDevice(fd);
        }
        catch
        {
            fd.Dispose(); // whatever failed (fusermount3, reading its stderr, the device), the received descriptor goes
            throw;
        }
    }

    private static int RunFusermount(string path, string[] args)
    {
        var start = new ProcessStartInfo(path) { UseShellExecute = false, RedirectStandardError = true };
        foreach (string a in args)
        {
            start.ArgumentList.Add(a);
        }

        using Process process = Process.Start(start) ?? throw new IOException("could not start fusermount3");
        process.StandardError.ReadToEnd();
        process.WaitForExit();
        return process.ExitCode;
    }
}
