namespace InSpatialFs.Security.Events;

/// <summary>
/// The operation an event records, in the vocabulary rules use (evt.op). SETATTR arrives split into
/// chmod, chown, truncate and utimens; an exec is an <see cref="Open"/> with evt.is_exec.
/// </summary>
public enum FsOp : byte
{
    Lookup,
    GetAttr,
    Chmod,
    Chown,
    Truncate,
    Utimens,
    ReadLink,
    Symlink,
    MkNod,
    MkDir,
    Unlink,
    RmDir,
    Rename,
    Link,
    Open,
    Read,
    Write,
    Create,
    Release,
    StatFs,
    Fsync,
    SetXattr,
    GetXattr,
    ListXattr,
    RemoveXattr,
    OpenDir,
    ReadDir,
    Access,
    Fallocate,
    CopyFileRange,
    TmpFile,
    /// <summary>A host path the backend refused to resolve (RESOLVE_BENEATH escape attempt).</summary>
    Escape,
}

public static class FsOpNames
{
    /// <summary>
    /// Operations the proxy never records as events (served without a decision, or summed into the release event:
    /// reads and writes), so rules on them never fire.
    /// </summary>
    public static readonly IReadOnlyList<FsOp> NeverEvents = [FsOp.GetAttr, FsOp.Read, FsOp.Write, FsOp.StatFs, FsOp.Fsync, FsOp.GetXattr, FsOp.ListXattr];

    /// <summary>Operations recorded as events only when denied (an allowed lookup or access check is not an event).</summary>
    public static readonly IReadOnlyList<FsOp> EventsOnlyWhenDenied = [FsOp.Lookup, FsOp.Access];

    private static readonly string[] Names =
    [
        "lookup", "getattr", "chmod", "chown", "truncate", "utimens", "readlink", "symlink", "mknod", "mkdir",
        "unlink", "rmdir", "rename", "link", "open", "read", "write", "create", "release", "statfs", "fsync",
        "setxattr", "getxattr", "listxattr", "removexattr", "opendir", "readdir", "access", "fallocate",
        "copy_file_range", "tmpfile", "escape",
    ];

    /// <summary>The lower-case name used in rules and JSON (evt.op).</summary>
    public static string Name(this FsOp op) => Names[(int)op];

    public static bool TryParse(string name, out FsOp op)
    {
        int i = Array.IndexOf(Names, name);
        op = i < 0 ? default : (FsOp)i;
        return i >= 0;
    }

    public static int Count => Names.Length;

    /// <summary>Ops that change data or metadata (the write class of the policy).</summary>
    public static bool IsWriteClass(this FsOp op) => op switch
    {
        FsOp.Chmod or FsOp.Chown or FsOp.Truncate or FsOp.Utimens or FsOp.Symlink or FsOp.MkNod or FsOp.MkDir
            or FsOp.Unlink or FsOp.RmDir or FsOp.Rename or FsOp.Link or FsOp.Write or FsOp.Create
            or FsOp.SetXattr or FsOp.RemoveXattr or FsOp.Fallocate or FsOp.CopyFileRange or FsOp.TmpFile => true,
        _ => false,
    };
}
