using System.Text;
using Microsoft.Win32.SafeHandles;

namespace InSpatialFs.Interop;

/// <summary>Why a path the daemon was to own or mount on was refused.</summary>
public enum PathProblem
{
    Symlink,
    NotDirectory,
    NotRegularFile,
    ForeignOwner,
    WritableByOthers,
    HardLinked,
    NotConnected,
    Failed,
}

/// <summary>A path the daemon refused to use for its own files or mounts; the message names the path and the reason.</summary>
public sealed class UnsafePathException(string path, PathProblem problem, string message) : IOException(message)
{
    public string Path { get; } = path;

    public PathProblem Problem { get; } = problem;
}

/// <summary>
/// The daemon's own directories and files (state directory, lock and pid files, journals, control directory,
/// mountpoint), reached the way THREAT-MODEL.md asks: walked from "/" one component at a time relative to directory
/// descriptors with O_NOFOLLOW, created with explicit modes (directories 0700, files 0600) whatever the umask, and
/// refused when a component is a symlink, owned by someone other than root (or the daemon's own user), or writable by
/// group or others. A world-writable sticky directory (/tmp, /var/tmp) may be crossed: its sticky bit keeps others
/// from renaming or replacing the root-owned entry below it. Once a path passes, no one but root can change what it
/// names, so the path-based calls that follow it (mount(2), rename during rotation) are safe too.
/// </summary>
public static unsafe class TrustedPath
{
    public const uint DirectoryMode = 0x1C0; // 0700
    public const uint FileMode = 0x180; // 0600
    private const uint GroupOrOtherWrite = 0x12; // 022

    /// <summary>
    /// Opens <paramref name="path"/> (absolute) as an O_PATH directory descriptor, creating missing components 0700
    /// when <paramref name="create"/> is set. A trusted-owner component that is group/other-writable is refused unless
    /// <paramref name="tightenTo"/> gives a mode for it (path, current mode): then it gets that mode and
    /// <paramref name="tightened"/> is told (path, old mode, new mode).
    /// </summary>
    public static SafeFd OpenDirectory(string path, bool create, Func<string, uint, uint?>? tightenTo = null, Action<string, uint, uint>? tightened = null)
    {
        if (!System.IO.Path.IsPathRooted(path))
        {
            throw new ArgumentException($"'{path}' is not an absolute path", nameof(path));
        }

        SafeFd current = Open(-1, "/", LibC.O_PATH | LibC.O_DIRECTORY, "/");
        string walked = "";
        string[] parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        for (int i = 0; i < parts.Length; i++)
        {
            if (parts[i] is "." or "..")
            {
                current.Dispose();
                throw new ArgumentException($"'{path}' is not normalized", nameof(path));
            }

            walked += "/" + parts[i];
            bool last = i == parts.Length - 1;
            SafeFd next;
            try
            {
                next = OpenComponent(current, parts[i], walked, create);
                StatX st = Stat(next, walked);
                CheckDirectory(current, parts[i], walked, st, last, tightenTo, tightened);
            }
            finally
            {
                current.Dispose();
            }

            current = next;
        }

        return current;
    }

    /// <summary>
    /// Opens <paramref name="name"/> in a directory from <see cref="OpenDirectory"/> with O_NOFOLLOW (creating it 0600 when
    /// <paramref name="flags"/> has O_CREAT) and checks what was opened: a regular file with one link, owned by a trusted
    /// user, not writable by group or others. O_NONBLOCK keeps a planted fifo from blocking the open; O_TRUNC is applied
    /// only once the checks pass.
    /// </summary>
    public static SafeFileHandle OpenFile(SafeFd directory, string directoryPath, string name, int flags)
    {
        string full = System.IO.Path.Combine(directoryPath, name);
        // O_TRUNC would empty whatever the name leads to before it is checked (a hard link to another file): truncate after.
        bool truncate = (flags & LibC.O_TRUNC) != 0;
        // On success the descriptor moves into the returned handle (SetHandleAsInvalid makes this Dispose a no-op);
        // on any refusal it is closed here.
        using SafeFd fd = Open(directory.Fd, name, (flags & ~LibC.O_TRUNC) | LibC.O_NOFOLLOW | LibC.O_NONBLOCK, full, FileMode);
        StatX st = Stat(fd, full);
        uint type = st.Mode & LibC.S_IFMT;
        if (type != LibC.S_IFREG)
        {
            throw new UnsafePathException(full, PathProblem.NotRegularFile, $"{full} is not a regular file (refused)");
        }

        CheckOwnerAndMode(full, st, "file");
        if (st.Nlink > 1)
        {
            throw new UnsafePathException(full, PathProblem.HardLinked, $"{full} has {st.Nlink} hard links; the daemon writes only files of its own (refused)");
        }

        if (truncate && LibC.ftruncate(fd.Fd, 0) != 0)
        {
            Errno e = ErrnoExtensions.LastPInvoke();
            throw new UnsafePathException(full, PathProblem.Failed, $"cannot truncate {full}: {e}");
        }

        // Regular files ignore O_NONBLOCK; clear it anyway so nothing downstream sees a surprising flag.
        _ = LibC.fcntl(fd.Fd, 4 /* F_SETFL */, flags & LibC.O_APPEND);
        var handle = new SafeFileHandle(fd.DangerousGetHandle(), ownsHandle: true);
        fd.SetHandleAsInvalid();
        return handle;
    }

    /// <summary>
    /// Removes group/other write from the regular files directly in <paramref name="directory"/> that a trusted user owns
    /// and that have one link (what an earlier version created 0666 under a zero umask); symlinks and anything else are
    /// left for <see cref="OpenFile"/> to refuse. <paramref name="tightened"/> is told (path, old mode, new mode).
    /// </summary>
    public static void TightenLeftoverFiles(SafeFd directory, string directoryPath, Action<string, uint, uint> tightened)
    {
        foreach (string path in Directory.EnumerateFiles(directoryPath))
        {
            string name = System.IO.Path.GetFileName(path);
            int fd = OpenAt(directory.Fd, name, LibC.O_RDONLY | LibC.O_NOFOLLOW | LibC.O_NONBLOCK | LibC.O_NOCTTY, 0, out _);
            if (fd < 0)
            {
                continue; // a symlink (ELOOP) or gone: OpenFile refuses or creates it later
            }

            using var file = new SafeFd(fd);
            StatX st = Stat(file, path);
            uint mode = st.Mode & 0xFFFu;
            if ((st.Mode & LibC.S_IFMT) == LibC.S_IFREG && st.Nlink == 1 && IsTrustedOwner(st.Uid) && (mode & GroupOrOtherWrite) != 0
                && LibC.fchmod(file.Fd, mode & ~0x3Fu) == 0)
            {
                tightened(path, mode, mode & ~0x3Fu); // 0600: what the daemon creates
            }
        }
    }

    /// <summary>
    /// A state file opened for appending (created 0600), for the incident store, the event journal and the runtime-written
    /// marks; <paramref name="access"/> ReadWrite also lets its owner read back what is there (writes still append).
    /// </summary>
    public static FileStream OpenAppendStream(string directoryPath, string name, int bufferSize, FileAccess access = FileAccess.Write)
    {
        using SafeFd dir = OpenDirectory(directoryPath, create: true);
        int mode = access == FileAccess.Write ? LibC.O_WRONLY : LibC.O_RDWR;
#pragma warning disable CA2000 // the handle moves into the returned stream; the catch below closes it on every failure
        SafeFileHandle file = OpenFile(dir, directoryPath, name, mode | LibC.O_APPEND | LibC.O_CREAT);
#pragma warning restore CA2000
        try
        {
            var stream = new FileStream(file, access, bufferSize);
            stream.Seek(0, SeekOrigin.End); // O_APPEND writes at the end anyway; keep Position truthful
            return stream;
        }
        catch
        {
            file.Dispose(); // the stream never took it (or failed on it): the descriptor is ours to close
            throw;
        }
    }

    /// <summary>A trusted user owns the daemon's files: root, or the user the daemon runs as.</summary>
    public static bool IsTrustedOwner(uint uid) => uid == 0 || uid == LibC.geteuid();

    private static SafeFd OpenComponent(SafeFd parent, string name, string full, bool create)
    {
        int rawFlags = LibC.O_PATH | LibC.O_NOFOLLOW;
        int fd = OpenAt(parent.Fd, name, rawFlags, 0, out Errno error);
        if (fd < 0 && error == Errno.ENOENT && create)
        {
            if (MkdirAt(parent.Fd, name, DirectoryMode, out error) != 0 && error != Errno.EEXIST)
            {
                throw new UnsafePathException(full, PathProblem.Failed, $"cannot create {full}: {error}");
            }

            fd = OpenAt(parent.Fd, name, rawFlags, 0, out error);
            if (fd >= 0 && error == Errno.OK)
            {
                // mkdirat applied the umask; the mode is the daemon's decision, not the environment's.
                SetMode(parent, name, full, DirectoryMode);
            }
        }

        if (fd < 0)
        {
            throw error == Errno.ENOTCONN
                ? new UnsafePathException(full, PathProblem.NotConnected, $"{full} is a dead FUSE mount (ENOTCONN)")
                : new UnsafePathException(full, PathProblem.Failed, $"cannot open {full}: {error}");
        }

        return new SafeFd(fd);
    }

    private static void CheckDirectory(SafeFd parent, string name, string full, StatX st, bool last, Func<string, uint, uint?>? tightenTo, Action<string, uint, uint>? tightened)
    {
        uint type = st.Mode & LibC.S_IFMT;
        if (type == LibC.S_IFLNK)
        {
            throw new UnsafePathException(full, PathProblem.Symlink, $"{full} is a symbolic link; the daemon follows none on its own paths (give the real path{RealTarget(full)})");
        }

        if (type != LibC.S_IFDIR)
        {
            throw new UnsafePathException(full, PathProblem.NotDirectory, $"{full} is not a directory");
        }

        uint mode = st.Mode & 0xFFFu;
        bool stickyCrossing = !last && (mode & LibC.S_ISVTX) != 0;
        if (!IsTrustedOwner(st.Uid))
        {
            throw new UnsafePathException(full, PathProblem.ForeignOwner, $"{full} is owned by uid {st.Uid}, not by root (refused: its owner could redirect the daemon)");
        }

        if ((mode & GroupOrOtherWrite) == 0 || stickyCrossing)
        {
            return;
        }

        if (tightenTo?.Invoke(full, mode) is uint tighter && (tighter & GroupOrOtherWrite) == 0)
        {
            SetMode(parent, name, full, tighter);
            tightened?.Invoke(full, mode, tighter);
            return;
        }

        throw new UnsafePathException(full, PathProblem.WritableByOthers,
            $"{full} is writable by group or others (mode {Octal(mode)}; refused: anyone could plant files there); check its content, then chmod go-w it");
    }

    private static void CheckOwnerAndMode(string full, StatX st, string what)
    {
        if (!IsTrustedOwner(st.Uid))
        {
            throw new UnsafePathException(full, PathProblem.ForeignOwner, $"{full} is owned by uid {st.Uid}, not by root (refused)");
        }

        uint mode = st.Mode & 0xFFFu;
        if ((mode & GroupOrOtherWrite) != 0)
        {
            throw new UnsafePathException(full, PathProblem.WritableByOthers,
                $"{full} is a {what} writable by group or others (mode {Octal(mode)}; refused: its content cannot be trusted); check it, then chmod go-w it");
        }
    }

    /// <summary>Sets a directory's mode through a real (non-O_PATH) descriptor opened without following symlinks.</summary>
    private static void SetMode(SafeFd parent, string name, string full, uint mode)
    {
        int fd = OpenAt(parent.Fd, name, LibC.O_RDONLY | LibC.O_DIRECTORY | LibC.O_NOFOLLOW, 0, out Errno error);
        if (fd < 0)
        {
            throw new UnsafePathException(full, PathProblem.Failed, $"cannot open {full} to set its mode: {error}");
        }

        using var dir = new SafeFd(fd);
        if (LibC.fchmod(dir.Fd, mode) != 0)
        {
            Errno e = ErrnoExtensions.LastPInvoke();
            throw new UnsafePathException(full, PathProblem.Failed, $"cannot chmod {full}: {e}");
        }
    }

    private static SafeFd Open(int dirFd, string name, int flags, string full, uint mode = 0)
    {
        int fd = OpenAt(dirFd, name, flags, mode, out Errno error);
        if (fd < 0)
        {
            throw error switch
            {
                Errno.ELOOP => new UnsafePathException(full, PathProblem.Symlink, $"{full} is a symbolic link (refused)"),
                Errno.ENXIO => new UnsafePathException(full, PathProblem.NotRegularFile, $"{full} is a fifo or socket (refused)"),
                Errno.ENOTCONN => new UnsafePathException(full, PathProblem.NotConnected, $"{full} is a dead FUSE mount (ENOTCONN)"),
                _ => new UnsafePathException(full, PathProblem.Failed, $"cannot open {full}: {error}"),
            };
        }

        return new SafeFd(fd);
    }

    private static int OpenAt(int dirFd, string name, int flags, uint mode, out Errno error)
    {
        byte[] z = NulTerminated(name);
        int fd;
        fixed (byte* p = z)
        {
            fd = LibC.openat(dirFd < 0 ? LibC.AT_FDCWD : dirFd, p, flags | LibC.O_CLOEXEC, mode);
            error = fd < 0 ? ErrnoExtensions.LastPInvoke() : Errno.OK;
        }

        return fd;
    }

    private static int MkdirAt(int dirFd, string name, uint mode, out Errno error)
    {
        byte[] z = NulTerminated(name);
        fixed (byte* p = z)
        {
            int rc = LibC.mkdirat(dirFd, p, mode);
            error = rc != 0 ? ErrnoExtensions.LastPInvoke() : Errno.OK;
            return rc;
        }
    }

    private static StatX Stat(SafeFd fd, string full)
    {
        StatX st;
        byte empty = 0;
        if (LibC.statx(fd.Fd, &empty, LibC.AT_EMPTY_PATH | LibC.AT_SYMLINK_NOFOLLOW, LibC.STATX_BASIC_STATS, &st) != 0)
        {
            Errno e = ErrnoExtensions.LastPInvoke();
            throw e == Errno.ENOTCONN
                ? new UnsafePathException(full, PathProblem.NotConnected, $"{full} is a dead FUSE mount (ENOTCONN)")
                : new UnsafePathException(full, PathProblem.Failed, $"cannot stat {full}: {e}");
        }

        return st;
    }

    private static string RealTarget(string path)
    {
        string? real = LibC.RealPath(path);
        return real != null && real != path ? ": " + real : "";
    }

    private static byte[] NulTerminated(string s)
    {
        byte[] z = new byte[Encoding.UTF8.GetByteCount(s) + 1];
        Encoding.UTF8.GetBytes(s, z);
        return z;
    }

    private static string Octal(uint mode) => "0" + Convert.ToString(mode, 8).PadLeft(3, '0');
}
