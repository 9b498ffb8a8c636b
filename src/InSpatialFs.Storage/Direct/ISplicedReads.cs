using InSpatialFs.Interop;

namespace InSpatialFs.Storage.Direct;

/// <summary>
/// Optional for an open file that is a host descriptor: its READs may be served by splice(2) (the DirectFS fallback
/// when kernel passthrough is unavailable). The file only names its descriptor; the proxy leases it into a value the
/// protocol server splices from, so storage never sees the server's pipe.
/// </summary>
public interface ISplicedReads
{
    /// <summary>The open file's own descriptor (closed once the file is released: a lease on it then fails).</summary>
    SafeFd SpliceDescriptor { get; }
}
