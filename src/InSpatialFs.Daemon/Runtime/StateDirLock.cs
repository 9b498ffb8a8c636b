using System.Globalization;
using System.Text;
using InSpatialFs.Interop;
using Microsoft.Win32.SafeHandles;

namespace InSpatialFs.Daemon.Runtime;

/// <summary>
/// Holds <c>&lt;state_dir&gt;/instance.lock</c> (flock, exclusive) for the life of the instance. Two instances on one state
/// directory (the same name, or the same --state-dir) would interleave their incident and event journals and lose lines,
/// so the second one is refused at start with the pid from <c>instance.pid</c> (the keeper's, under one). The kernel drops the lock when the
/// process ends, so a daemon killed with SIGKILL leaves no stale lock behind. Both files are opened beneath the checked
/// state directory without following symlinks and created 0600 (<see cref="TrustedPath"/>).
/// </summary>
internal sealed class StateDirLock : IDisposable
{
    public const string LockFileName = "instance.lock";
    public const string PidFileName = "instance.pid";

    private readonly SafeFileHandle _lock;

    /// <summary>
    /// How long a start waits for the holder to let go before refusing. An engine that unmounts a container and mounts the
    /// same layer again at once (podman commit right after the container exits) starts the next instance while the last
    /// one is still closing its journals; that one lets go within moments, a live duplicate never does.
    /// </summary>
    public static readonly TimeSpan HolderGrace = TimeSpan.FromSeconds(5);

    private StateDirLock(SafeFileHandle held) => _lock = held;

    /// <param name="stateDir">A directory already opened (and created) by <see cref="TrustedPath.OpenDirectory"/>.</param>
    public static StateDirLock Acquire(SafeFd stateDir, string stateDirPath)
    {
        SafeFileHandle held = TrustedPath.OpenFile(stateDir, stateDirPath, LockFileName, LibC.O_RDWR | LibC.O_CREAT);
        long giveUpAt = Environment.TickCount64 + (long)HolderGrace.TotalMilliseconds;
        while (LibC.flock((int)held.DangerousGetHandle(), LibC.LOCK_EX | LibC.LOCK_NB) != 0)
        {
            Errno error = ErrnoExtensions.LastPInvoke();
            if (error == Errno.EAGAIN && Environment.TickCount64 < giveUpAt)
            {
                Thread.Sleep(50);
                continue;
            }

            held.Dispose();
            if (error != Errno.EAGAIN)
            {
                throw new InstanceStartException($"cannot lock {Path.Combine(stateDirPath, LockFileName)}: {error}");
            }

            string holder = ReadHolder(stateDir, stateDirPath) is int pid ? $" (pid {pid})" : "";
            throw new InstanceStartException(
                $"state directory {stateDirPath} is in use by another instance{holder}; give this one its own --name or --state-dir");
        }

        // `inspatialfs prune` holds the lock while it removes a stopped instance's directory; a start that waited for it
        // holds a lock file that is no longer linked, in a directory that is gone (StatePruner).
        if (LinkCount(held) == 0)
        {
            held.Dispose();
            throw new StateDirectoryRemovedException(stateDirPath);
        }

        using (SafeFileHandle pidFile = TrustedPath.OpenFile(stateDir, stateDirPath, PidFileName, LibC.O_WRONLY | LibC.O_CREAT | LibC.O_TRUNC))
        {
            RandomAccess.Write(pidFile, Encoding.ASCII.GetBytes(InstancePid().ToString(CultureInfo.InvariantCulture) + "\n"), 0);
        }

        return new StateDirLock(held);
    }

    /// <summary>
    /// The process an operator stops to stop this instance: the keeper this server runs under (the `inspatialfs mount`
    /// process, which outlives the server's restarts), else this process. The variable is believed only from the parent.
    /// </summary>
    private static int InstancePid() =>
        int.TryParse(Environment.GetEnvironmentVariable("INSPATIALFS_KEEPER_PID"), NumberStyles.None, CultureInfo.InvariantCulture, out int keeper)
        && keeper == LibC.getppid() ? keeper : Environment.ProcessId;

    private static unsafe uint LinkCount(SafeFileHandle file)
    {
        StatX st;
        byte empty = 0;
        return LibC.statx((int)file.DangerousGetHandle(), &empty, LibC.AT_EMPTY_PATH, LibC.STATX_BASIC_STATS, &st) == 0 ? st.Nlink : 1;
    }

    /// <summary>The pid the holder wrote, read without following symlinks and bounded (a planted file cannot flood us).</summary>
    internal static int? ReadHolder(SafeFd stateDir, string stateDirPath)
    {
        try
        {
            using SafeFileHandle file = TrustedPath.OpenFile(stateDir, stateDirPath, PidFileName, LibC.O_RDONLY);
            byte[] buffer = new byte[16];
            int n = RandomAccess.Read(file, buffer, 0);
            return int.TryParse(Encoding.ASCII.GetString(buffer, 0, n).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int pid) ? pid : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    public void Dispose() => _lock.Dispose();
}

/// <summary>
/// `inspatialfs prune` removed the state directory while this start waited for its lock: the start makes it afresh
/// (<see cref="Instance"/>), as it would have had prune finished a moment earlier.
/// </summary>
internal sealed class StateDirectoryRemovedException(string stateDirPath)
    : IOException($"state directory {stateDirPath} was removed by `inspatialfs prune` while this instance started");
