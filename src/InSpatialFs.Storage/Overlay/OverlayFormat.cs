using System.Text;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;

namespace InSpatialFs.Storage.Overlay;

/// <summary>
/// The kernel overlayfs on-disk format, as containers/storage and the kernel read and write it.
/// Read: a whiteout is a character device 0/0, or a zero-size regular file carrying <c>trusted.overlay.whiteout</c>
/// (or <c>user.overlay.whiteout</c>) in a directory marked <c>*.overlay.whiteouts</c> (kernel 6.7 "xattr whiteouts"),
/// or, in lower layers, an aufs-style <c>.wh.NAME</c> file (fuse-overlayfs reads those); an opaque directory carries
/// <c>trusted.overlay.opaque=y</c> (or the <c>user.</c> forms) or holds <c>.wh..wh..opq</c>.
/// Written: what the kernel writes as root: 0/0 character devices and <c>trusted.overlay.opaque=y</c>.
/// </summary>
internal static class OverlayFormat
{
    public static readonly byte[] OpaqueXattr = "trusted.overlay.opaque"u8.ToArray();
    public static readonly byte[][] OpaqueXattrs = ["trusted.overlay.opaque"u8.ToArray(), "user.overlay.opaque"u8.ToArray(), "user.fuseoverlayfs.opaque"u8.ToArray()];
    public static readonly byte[][] WhiteoutXattrs = ["trusted.overlay.whiteout"u8.ToArray(), "user.overlay.whiteout"u8.ToArray()];
    public static readonly byte[][] WhiteoutsMarkerXattrs = ["trusted.overlay.whiteouts"u8.ToArray(), "user.overlay.whiteouts"u8.ToArray()];
    public static readonly byte[] AufsPrefix = ".wh."u8.ToArray();
    public static readonly byte[] AufsOpaque = ".wh..wh..opq"u8.ToArray();

    /// <summary>
    /// Ours, on each copy the overlay makes: the identity of the lower object copied (<see cref="OriginValue"/>), so that
    /// a server taking over a live mount knows the copy of a node its predecessor journaled while the name still led to
    /// the lower object (a kill between the copy-up and the reply). Under trusted.overlay. it is the format's own: never
    /// shown to the container, never copied, and not a name the kernel's overlayfs reads.
    /// </summary>
    public static ReadOnlySpan<byte> OriginXattr => OriginXattrZ[..^1];

    /// <summary><see cref="OriginXattr"/> NUL-terminated, for the system call.</summary>
    internal static ReadOnlySpan<byte> OriginXattrZ => "trusted.overlay.isfs.origin\0"u8;

    /// <summary>The value of <see cref="OriginXattr"/>: device, inode (8 bytes each) and generation (4), little-endian.</summary>
    public static byte[] OriginValue(in InodeIdentity lower)
    {
        byte[] value = new byte[20];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(value, lower.Device);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(value.AsSpan(8), lower.Inode);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(value.AsSpan(16), lower.Generation);
        return value;
    }

    /// <summary>Extended attributes of the format itself: never shown to the container, never set by it.</summary>
    public static bool IsPrivateXattr(ReadOnlySpan<byte> name) =>
        name.StartsWith("trusted.overlay."u8) || name.StartsWith("user.overlay."u8) || name.StartsWith("user.fuseoverlayfs."u8);

    /// <summary>A 0/0 character device: the whiteout the kernel makes.</summary>
    public static bool IsDeviceWhiteout(in FuseAttr attr) => (attr.Mode & LibC.S_IFMT) == LibC.S_IFCHR && attr.Rdev == 0;

    public static bool IsAufsName(ReadOnlySpan<byte> name) => name.StartsWith(AufsPrefix);

    /// <summary>True when <paramref name="ino"/> of <paramref name="layer"/> carries one of <paramref name="names"/> with value "y" (or any value for markers).</summary>
    public static bool HasXattr(IFileSystemBackend layer, ulong ino, byte[][] names, bool valueMustBeY)
    {
        Span<byte> value = stackalloc byte[8];
        foreach (byte[] name in names)
        {
            if (layer.GetXattr(ino, name, value, out int size) == Errno.OK && (!valueMustBeY || (size >= 1 && value[0] == (byte)'y')))
            {
                return true;
            }
        }

        return false;
    }

    public static byte[] AufsWhiteoutName(ReadOnlySpan<byte> name)
    {
        byte[] wh = new byte[AufsPrefix.Length + name.Length];
        AufsPrefix.CopyTo(wh, 0);
        name.CopyTo(wh.AsSpan(AufsPrefix.Length));
        return wh;
    }

    public static string Show(ReadOnlySpan<byte> name) => Encoding.UTF8.GetString(name);
}
