namespace InSpatialFs.Interop;

/// <summary>Linux errno values (x86_64). Operations return these; exceptions never cross a dispatcher.</summary>
public enum Errno
{
    OK = 0,
    EPERM = 1,
    ENOENT = 2,
    ESRCH = 3,
    EINTR = 4,
    EIO = 5,
    ENXIO = 6,
    E2BIG = 7,
    EBADF = 9,
    EAGAIN = 11,
    ENOMEM = 12,
    EACCES = 13,
    EFAULT = 14,
    EBUSY = 16,
    EEXIST = 17,
    EXDEV = 18,
    ENODEV = 19,
    ENOTDIR = 20,
    EISDIR = 21,
    EINVAL = 22,
    ENFILE = 23,
    EMFILE = 24,
    ENOTTY = 25,
    ETXTBSY = 26,
    EFBIG = 27,
    ENOSPC = 28,
    ESPIPE = 29,
    EROFS = 30,
    EMLINK = 31,
    EPIPE = 32,
    ERANGE = 34,
    EDEADLK = 35,
    ENAMETOOLONG = 36,
    ENOLCK = 37,
    ENOSYS = 38,
    ENOTEMPTY = 39,
    ELOOP = 40,
    ENODATA = 61,
    EPROTO = 71,
    EOVERFLOW = 75,
    EBADFD = 77,
    ENOTSOCK = 88,
    EMSGSIZE = 90,
    EOPNOTSUPP = 95,
    ENOTSUP = 95,
    ECONNABORTED = 103,
    ENOTCONN = 107,
    ECANCELED = 125,
    ETIMEDOUT = 110,
    ESTALE = 116,
    EDQUOT = 122,
}

public static class ErrnoExtensions
{
    /// <summary>Reads the errno of the last P/Invoke. Call it on the very next line after the call.</summary>
    public static Errno LastPInvoke() => (Errno)System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
}
