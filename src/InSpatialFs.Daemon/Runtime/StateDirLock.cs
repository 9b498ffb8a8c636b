namespace InSpatialFs.Daemon.Runtime;

/// <summary>
/// Holds <c>&lt;state_dir&gt;/instance.lock</c> for the life of the instance. Two instances on one state directory
/// (the same name, or the same --state-dir) would interleave their incident and event journals and lose lines, so the
/// second one is refused at start. .NET takes an exclusive flock(2) for a FileShare.None open on Linux; the kernel
/// drops it when the process ends, so a daemon killed with SIGKILL leaves no stale lock behind.
/// </summary>
internal sealed class StateDirLock : IDisposable
{
    public const string LockFileName = "instance.lock";
    public const string PidFileName = "instance.pid";

    private readonly FileStream _lock;

    private StateDirLock(FileStream held) => _lock = held;

    public static StateDirLock Acquire(string stateDir)
    {
        Directory.CreateDirectory(stateDir);
        string lockPath = Path.Combine(stateDir, LockFileName);
        string pidPath = Path.Combine(stateDir, PidFileName);
        FileStream held;
        try
        {
            held = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e)
        {
            string holder = File.Exists(pidPath) ? $" (pid {File.ReadAllText(pidPath).Trim()})" : "";
            throw new InstanceStartException(
                $"state directory {stateDir} is in use by another instance{holder}; give this one its own --name or --state-dir", e);
        }

        File.WriteAllText(pidPath, Environment.ProcessId + "\n");
        return new StateDirLock(held);
    }

    public void Dispose() => _lock.Dispose();
}
