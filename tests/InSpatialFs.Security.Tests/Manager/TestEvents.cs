using InSpatialFs.Interop;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Policy;

namespace InSpatialFs.Security.Tests.Manager;

internal static class TestEvents
{
    /// <summary>A test object identity: inode <paramref name="ino"/> on a made-up device.</summary>
    public static InodeIdentity Obj(ulong ino) => new(0x42, ino, 7, Persistent: true);

    public static SecurityOptions Demo(IsolationLevel level, string? stateDir = null) => new()
    {
        Level = level,
        Forbidden = ["/etc/shadow", "/root/.ssh/**"],
        ReadOnly = ["/usr/**", "/bin/**"],
        Allowed = ["/tmp/**", "/data/**"],
        StateDir = stateDir,
        ContainerName = "web-1",
    };

    public static FsEvent Ev(FsOp op, string path, int flags = 0, uint mode = 0, string? target = null, string? linkTarget = null,
        string? xattr = null, int pid = 0, uint uid = 1000, uint nodeUid = 1000, long size = 0, ulong obj = 0) => new()
    {
        Op = op,
        Path = path,
        Flags = flags,
        Mode = mode,
        Target = target,
        LinkTarget = linkTarget,
        XattrName = xattr,
        Pid = pid,
        Uid = uid,
        NodeUid = nodeUid,
        Size = size,
        Object = obj == 0 ? default : Obj(obj),
        IsWrite = op == FsOp.Write || (op == FsOp.Open && (flags & LibC.O_ACCMODE) != 0),
    };
}
