using InSpatialFs.Security.Events;

namespace InSpatialFs.Security.Rules;

/// <summary>
/// Falco's <c>evt.type</c> vocabulary (system call names) mapped onto the FUSE operations a filesystem sees. One
/// operation answers to every system call that can produce it: an OPEN is what open, openat and openat2 do; a
/// CREATE also comes from creat; a RENAME from rename, renameat and renameat2. <c>evt.type</c> reads as the first
/// name of its row. System calls no filesystem sees (execve, connect, ptrace...) map to nothing, so a rule that
/// needs only them is skipped at load with that reason. README.md ("Rules from Falco") shows the table.
/// </summary>
internal static class SyscallMap
{
    /// <summary>Per operation (in <see cref="FsOp"/> order): the system calls that produce it; the first is what evt.type shows.</summary>
    private static readonly string[][] ByOp = Build();

    private static readonly Dictionary<string, ulong> OpsBySyscall = Index();

    private static string[][] Build()
    {
        var t = new string[FsOpNames.Count][];
        t[(int)FsOp.Lookup] = ["lookup"];
        t[(int)FsOp.GetAttr] = ["stat", "lstat", "fstat", "newfstatat", "fstatat", "statx", "stat64", "lstat64", "fstat64"];
        t[(int)FsOp.Chmod] = ["chmod", "fchmod", "fchmodat", "fchmodat2"];
        t[(int)FsOp.Chown] = ["chown", "lchown", "fchown", "fchownat"];
        t[(int)FsOp.Truncate] = ["truncate", "ftruncate"];
        t[(int)FsOp.Utimens] = ["utimensat", "utimes", "utime", "futimesat"];
        t[(int)FsOp.ReadLink] = ["readlink", "readlinkat"];
        t[(int)FsOp.Symlink] = ["symlinkat", "symlink"];
        t[(int)FsOp.MkNod] = ["mknodat", "mknod"];
        t[(int)FsOp.MkDir] = ["mkdirat", "mkdir"];
        t[(int)FsOp.Unlink] = ["unlinkat", "unlink"];
        t[(int)FsOp.RmDir] = ["rmdir", "unlinkat"];
        t[(int)FsOp.Rename] = ["renameat2", "rename", "renameat"];
        t[(int)FsOp.Link] = ["linkat", "link"];
        t[(int)FsOp.Open] = ["openat", "open", "openat2"];
        t[(int)FsOp.Read] = ["read", "pread", "readv", "preadv", "pread64"];
        t[(int)FsOp.Write] = ["write", "pwrite", "writev", "pwritev", "pwrite64"];
        t[(int)FsOp.Create] = ["openat", "open", "openat2", "creat"];
        t[(int)FsOp.Release] = ["close"];
        t[(int)FsOp.StatFs] = ["statfs", "fstatfs"];
        t[(int)FsOp.Fsync] = ["fsync", "fdatasync"];
        t[(int)FsOp.SetXattr] = ["setxattr", "lsetxattr", "fsetxattr"];
        t[(int)FsOp.GetXattr] = ["getxattr", "lgetxattr", "fgetxattr"];
        t[(int)FsOp.ListXattr] = ["listxattr", "llistxattr", "flistxattr"];
        t[(int)FsOp.RemoveXattr] = ["removexattr", "lremovexattr", "fremovexattr"];
        t[(int)FsOp.OpenDir] = ["openat", "open", "openat2"];
        t[(int)FsOp.ReadDir] = ["getdents64", "getdents"];
        t[(int)FsOp.Access] = ["faccessat", "access", "faccessat2"];
        t[(int)FsOp.Fallocate] = ["fallocate"];
        t[(int)FsOp.CopyFileRange] = ["copy_file_range"];
        t[(int)FsOp.TmpFile] = ["openat", "open", "openat2"];
        t[(int)FsOp.Escape] = ["escape"];
        return t;
    }

    private static Dictionary<string, ulong> Index()
    {
        var d = new Dictionary<string, ulong>(StringComparer.Ordinal);
        for (int op = 0; op < ByOp.Length; op++)
        {
            foreach (string name in ByOp[op])
            {
                d[name] = d.GetValueOrDefault(name) | (1UL << op);
            }
        }

        return d;
    }

    /// <summary>evt.type of an operation.</summary>
    public static string TypeOf(FsOp op) => ByOp[(int)op][0];

    /// <summary>The operations a system call name stands for (0 for a call no filesystem sees).</summary>
    public static ulong OpsOf(string syscall) => OpsBySyscall.GetValueOrDefault(syscall);

    /// <summary>The system calls of an operation, for the README table.</summary>
    public static IReadOnlyList<string> SyscallsOf(FsOp op) => ByOp[(int)op];

    /// <summary>An operation from an evt.type in a replayed event (the first operation the name stands for).</summary>
    public static bool TryParse(string syscall, out FsOp op)
    {
        ulong bits = OpsOf(syscall);
        op = bits == 0 ? default : (FsOp)System.Numerics.BitOperations.TrailingZeroCount(bits);
        return bits != 0;
    }
}
