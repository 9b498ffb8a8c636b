using System.Runtime.InteropServices;

namespace InSpatialFs.Interop;

/// <summary>An owned file descriptor. Every descriptor the daemon opens is one of these, opened O_CLOEXEC.</summary>
public sealed class SafeFd : SafeHandle
{
    public SafeFd() : base(new IntPtr(-1), ownsHandle: true) { }

    public SafeFd(int fd, bool ownsHandle = true) : base(new IntPtr(-1), ownsHandle) => SetHandle(new IntPtr(fd));

    public override bool IsInvalid => handle.ToInt64() < 0;

    /// <summary>The raw number, for syscalls. Valid only while this object is alive (use DangerousAddRef for long calls).</summary>
    public int Fd => (int)handle.ToInt64();

    protected override bool ReleaseHandle() => LibC.close((int)handle.ToInt64()) == 0;
}
