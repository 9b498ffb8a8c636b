using System.IO.Hashing;
using System.Security.Cryptography;
using System.Text;

namespace InSpatialFs.Daemon.Hosting;

/// <summary>
/// What a memory mount is kept under across server restarts: the descriptor-store name of its private tmpfs
/// (<c>memory-data.KEY</c>) and its journal's file name in the state directory (<c>memory-KEY.log</c>). KEY is a hash of
/// the mount path (store names are short ASCII), so the names stay the same for the same config.
/// </summary>
internal static class MemoryKeepNames
{
    /// <summary>
    /// KEY is XxHash3 (64 bits, 16 hex digits) of the path's UTF-8: the names only have to tell the mount paths of one
    /// config apart. (SHA-256 did the same job until 2026-12, and made every memory instance load libcrypto: 3.4 MiB of
    /// its idle RSS.)
    /// </summary>
    public static (string Volume, string Journal) For(string path) =>
        Named(Convert.ToHexStringLower(BitConverter.GetBytes(XxHash3.HashToUInt64(Encoding.UTF8.GetBytes(path)))));

    /// <summary>
    /// The names servers before 2026-12 used (KEY: the first 16 hex digits of SHA-256): a server upgraded under a live
    /// mount finds its predecessor's memory mounts by them. Only called then, so only then is libcrypto loaded.
    /// </summary>
    public static (string Volume, string Journal) Legacy(string path) =>
        Named(Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(path)))[..16]);

    private static (string Volume, string Journal) Named(string key) => ($"memory-data.{key}", $"memory-{key}.log");
}
