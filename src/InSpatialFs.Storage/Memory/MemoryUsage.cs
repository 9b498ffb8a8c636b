namespace InSpatialFs.Storage.Memory;

/// <summary>A snapshot of what a <see cref="MemoryFileSystem"/> uses against its limits (for status files).</summary>
/// <param name="BytesUsed">File pages, symlink targets, xattrs and a fixed overhead per node.</param>
/// <param name="BytesLimit">The configured size.</param>
/// <param name="InodesUsed">Live nodes, including the root and unlinked nodes still referenced.</param>
/// <param name="InodesLimit">The configured inode limit.</param>
public readonly record struct MemoryUsage(long BytesUsed, long BytesLimit, long InodesUsed, long InodesLimit);
