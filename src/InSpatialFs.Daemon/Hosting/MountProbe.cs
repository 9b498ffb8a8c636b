using InSpatialFs.Interop;

namespace InSpatialFs.Daemon.Hosting;

/// <summary>
/// The watchdog's evidence that the mount still serves: a dedicated thread issues statfs(2) on the mount root every
/// <c>period</c>. statfs is never answered from the kernel's caches, so each probe is a FUSE_STATFS request that one of
/// the reader threads must take and answer (it records no event). When the reader pool hangs, the probe thread blocks in
/// statfs, <see cref="SinceLastAnswer"/> grows, and the caller stops pinging systemd's watchdog, which then restarts
/// the service. A hung probe thread costs nothing else: it is a background thread.
/// </summary>
internal sealed class MountProbe : IDisposable
{
    private readonly string _path;
    private readonly TimeSpan _period;
    private readonly ManualResetEventSlim _stop = new(false);
    private long _lastAnswerMs = Environment.TickCount64;

    public MountProbe(string path, TimeSpan period)
    {
        _path = path;
        _period = period;
        new Thread(Run) { IsBackground = true, Name = "watchdog probe" }.Start();
    }

    /// <summary>Time since the mount last answered a probe.</summary>
    public TimeSpan SinceLastAnswer => TimeSpan.FromMilliseconds(Environment.TickCount64 - Volatile.Read(ref _lastAnswerMs));

    private unsafe void Run()
    {
        do
        {
            StatFsBuf buf;
            // Any reply, even an error, came from a reader thread; only ENOTCONN (the connection is gone) is no answer.
            if (LibC.statfs(_path, &buf) == 0 || ErrnoExtensions.LastPInvoke() != Errno.ENOTCONN)
            {
                Volatile.Write(ref _lastAnswerMs, Environment.TickCount64);
            }
        }
        while (!_stop.Wait(_period));
    }

    public void Dispose() => _stop.Set();
}
