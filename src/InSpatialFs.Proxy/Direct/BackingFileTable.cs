using InSpatialFs.Fuse;
using InSpatialFs.Interop;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.Proxy.Direct;

/// <summary>How DirectFS files move their data.</summary>
public enum DirectMode
{
    /// <summary>FUSE passthrough: the kernel reads and writes the backing file itself.</summary>
    KernelPassthrough,
    /// <summary>Passthrough unavailable: READ/WRITE go through the daemon, copied with pread/pwrite (--direct-fallback copy).</summary>
    Proxied,
    /// <summary>Passthrough unavailable: READ data moves host file → pipe → /dev/fuse by splice(2), WRITE by pwrite (--direct-fallback splice).</summary>
    Spliced,
}

public static class DirectModeNames
{
    /// <summary>The name shown in status and mount listings ("kernel-passthrough", "spliced", "proxied").</summary>
    public static string DisplayName(this DirectMode mode) => mode switch
    {
        DirectMode.KernelPassthrough => "kernel-passthrough",
        DirectMode.Spliced => "spliced",
        _ => "proxied",
    };
}

/// <summary>
/// One kernel backing id per inode, shared by every passthrough open of that inode and closed at its last release
/// (the kernel allows one backing file per inode while it is open, and closing an id right after the OPEN reply
/// races the opener; §5 of the protocol reference). The first EPERM, EINVAL or ENOTTY from registration means
/// passthrough is unavailable on this connection: the table remembers it, switches <see cref="Mode"/> to its
/// fallback (<see cref="DirectMode.Proxied"/> or <see cref="DirectMode.Spliced"/>) and raises <see cref="PassthroughUnavailable"/> once.
/// Thread-safe; one lock, held across the registration ioctl so two first opens of an inode cannot register twice.
/// </summary>
public sealed class BackingFileTable : IPassthroughFiles
{
    private readonly IBackingRegistrar _registrar;
    private readonly ILogger? _logger;
    private readonly Dictionary<ulong, (int Id, int Refs)> _entries = [];
    private readonly Lock _lock = new();
    private readonly DirectMode _fallback;
    private Errno _unavailableReason;

    /// <param name="registrar">The connection's FUSE_DEV_IOC_BACKING_OPEN/CLOSE (FuseConnectionInfo.Backing).</param>
    /// <param name="logger">If given, the fallback to proxied I/O is logged once as a warning (event 2110).</param>
    /// <param name="fallback">The mode reported once passthrough is off: how the daemon then moves the data.</param>
    public BackingFileTable(IBackingRegistrar registrar, ILogger? logger = null, DirectMode fallback = DirectMode.Proxied)
    {
        ArgumentNullException.ThrowIfNull(registrar);
        if (fallback == DirectMode.KernelPassthrough)
        {
            throw new ArgumentOutOfRangeException(nameof(fallback), fallback, "the fallback is a daemon data path");
        }

        _registrar = registrar;
        _logger = logger;
        _fallback = fallback;
    }

    /// <summary>Raised once, with the errno that disabled passthrough, when the table falls back to proxied I/O.</summary>
    public event Action<Errno>? PassthroughUnavailable;

    public DirectMode Mode
    {
        get { lock (_lock) return _unavailableReason == Errno.OK ? DirectMode.KernelPassthrough : _fallback; }
    }

    /// <summary>The errno that turned passthrough off, or OK.</summary>
    public Errno UnavailableReason
    {
        get { lock (_lock) return _unavailableReason; }
    }

    /// <summary>Inodes with a live backing id.</summary>
    public int Count
    {
        get { lock (_lock) return _entries.Count; }
    }

    /// <summary>
    /// Gives the backing id for inode <paramref name="key"/>, registering <paramref name="fd"/> if the inode has none yet,
    /// and counts one more open. The table never takes <paramref name="fd"/>: the caller disposes it (the kernel keeps its
    /// own reference). On any error nothing is counted and the open must be served without passthrough.
    /// </summary>
    public Errno Acquire(ulong key, SafeFd fd, out int backingId)
    {
        ArgumentNullException.ThrowIfNull(fd);
        backingId = 0;
        Action<Errno>? notify = null;
        Errno result;
        lock (_lock)
        {
            if (_unavailableReason != Errno.OK) return _unavailableReason;
            if (_entries.TryGetValue(key, out var entry))
            {
                _entries[key] = (entry.Id, entry.Refs + 1);
                backingId = entry.Id;
                return Errno.OK;
            }
            result = _registrar.Open(fd, out int id);
            if (result == Errno.OK && id > 0)
            {
                _entries[key] = (id, 1);
                backingId = id;
                return Errno.OK;
            }
            if (result == Errno.OK) result = Errno.EINVAL; // an id of 0 or less is not a backing id
            if (result is Errno.EPERM or Errno.EINVAL or Errno.ENOTTY)
            {
                _unavailableReason = result;
                notify = PassthroughUnavailable ?? (_ => { });
            }
        }
        if (notify != null)
        {
            if (_logger != null) Log.PassthroughUnavailable(_logger, result, _fallback.DisplayName());
            notify(result);
        }
        return result;
    }

    /// <summary>
    /// Takes over backing id <paramref name="backingId"/>, which an earlier server registered for inode <paramref name="key"/>
    /// and the kernel still uses for <paramref name="opens"/> open files (a restart): the last of their releases closes it.
    /// </summary>
    public void Adopt(ulong key, int backingId, int opens)
    {
        lock (_lock)
        {
            _entries[key] = _entries.TryGetValue(key, out var entry) ? (entry.Id, entry.Refs + opens) : (backingId, opens);
        }
    }

    /// <summary>Counts one passthrough release of inode <paramref name="key"/>; the last one closes the backing id.</summary>
    public void Release(ulong key)
    {
        lock (_lock)
        {
            if (!_entries.TryGetValue(key, out var entry)) return;
            if (entry.Refs > 1)
            {
                _entries[key] = (entry.Id, entry.Refs - 1);
                return;
            }
            _entries.Remove(key);
            _registrar.Close(entry.Id);
        }
    }

    /// <summary>The live backing id of an inode, if any (diagnostics).</summary>
    public bool TryGetBackingId(ulong key, out int backingId)
    {
        lock (_lock)
        {
            bool found = _entries.TryGetValue(key, out var entry);
            backingId = found ? entry.Id : 0;
            return found;
        }
    }
}
