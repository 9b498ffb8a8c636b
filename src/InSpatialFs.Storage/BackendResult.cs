using InSpatialFs.Interop;

namespace InSpatialFs.Storage;

/// <summary>
/// Results a backend returns that are no kernel errno. The proxy turns each into an event and a kernel errno at the
/// end of the operation, so none reaches the kernel (were one to, the protocol server answers EIO: the kernel rejects
/// a reply outside (-512, 0)).
/// </summary>
public static class BackendResult
{
    /// <summary>
    /// A host name refused because it would leave the served tree: a "..", a '/' inside a name, or openat2 beneath the
    /// parent answering EXDEV (or ELOOP for a path lookup). The proxy records an escape event with the caller's pid and
    /// the full namespace path, and answers EACCES.
    /// </summary>
    public const Errno EscapeRefused = (Errno)0x1001;
}
