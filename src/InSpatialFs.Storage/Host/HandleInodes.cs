using System.Buffers.Binary;

namespace InSpatialFs.Storage.Host;

/// <summary>
/// The inode number inside a file handle, for the filesystems whose handle layout the kernel fixes and that have one
/// inode number space per mount, checked on this kernel: ext2/3/4 (FILEID_INO32_GEN: inode, generation) and tmpfs
/// (type 1 with three words: generation, inode low, inode high). A lookup that takes a
/// handle by name compares it with the statx it made of the same name just before: equal, the handle names that
/// inode (a live inode's number is unique on its filesystem); different, the name was replaced in between. Any other
/// filesystem (XFS, not checked here; btrfs, whose subvolumes share inode numbers under one mount; overlayfs; FUSE) is
/// not decoded, and its handle is proven by the first descriptor opened from it instead. A mount is decoded only after
/// its own root's handle decoded to the root's inode number (<see cref="HostFileSystem"/>), so a layout a later kernel
/// changed turns decoding off rather than wrong.
/// </summary>
internal static class HandleInodes
{
    public const long Ext4Magic = 0xEF53, TmpfsMagic = 0x01021994;

    private const int FileIdIno32Gen = 1;

    /// <summary>
    /// The inode number in <paramref name="handle"/> (struct file_handle: 4 bytes of length, 4 of type, then the bytes)
    /// taken on a filesystem of type <paramref name="fsMagic"/>; false for a layout not known here.
    /// </summary>
    public static bool TryInodeOf(long fsMagic, ReadOnlySpan<byte> handle, out ulong ino)
    {
        ino = 0;
        if (handle.Length < 8) return false;
        int length = BinaryPrimitives.ReadInt32LittleEndian(handle);
        int type = BinaryPrimitives.ReadInt32LittleEndian(handle[4..]);
        ReadOnlySpan<byte> f = handle[8..];
        if (length != f.Length) return false;
        switch (fsMagic)
        {
            case Ext4Magic when type == FileIdIno32Gen && length == 8:
                ino = BinaryPrimitives.ReadUInt32LittleEndian(f);
                return true;
            case TmpfsMagic when type == FileIdIno32Gen && length == 12:
                ino = BinaryPrimitives.ReadUInt32LittleEndian(f[4..]) | ((ulong)BinaryPrimitives.ReadUInt32LittleEndian(f[8..]) << 32);
                return true;
            default:
                return false;
        }
    }
}
