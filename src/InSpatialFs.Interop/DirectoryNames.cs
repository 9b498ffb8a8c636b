namespace InSpatialFs.Interop;

/// <summary>
/// Every name in a directory we hold a descriptor of, for the sweeps made once at start-up (stale copy-up files, data
/// files no node claims): a fresh descriptor of "." beneath it (an O_PATH or mount descriptor works too), read whole
/// with getdents64. Not for the request path: it allocates a name per entry.
/// </summary>
public static unsafe class DirectoryNames
{
    /// <summary>The entries' names without "." and ".." (and without a terminating NUL); empty when the directory cannot be opened.</summary>
    public static List<byte[]> Read(int directoryFd)
    {
        var names = new List<byte[]>();
        int dir;
        fixed (byte* dot = ".\0"u8)
        {
            dir = LibC.openat(directoryFd, dot, LibC.O_RDONLY | LibC.O_DIRECTORY | LibC.O_CLOEXEC, 0);
        }

        if (dir < 0)
        {
            return names;
        }

        try
        {
            byte[] buffer = new byte[32 * 1024];
            fixed (byte* b = buffer)
            {
                nint n;
                while ((n = LibC.getdents64(dir, b, buffer.Length)) > 0)
                {
                    // struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, then the NUL-terminated name.
                    for (int pos = 0; pos + 19 < n;)
                    {
                        ushort recordLength = *(ushort*)(b + pos + 16);
                        var name = new ReadOnlySpan<byte>(b + pos + 19, recordLength - 19);
                        int end = name.IndexOf((byte)0);
                        name = end >= 0 ? name[..end] : name;
                        if (!name.SequenceEqual("."u8) && !name.SequenceEqual(".."u8))
                        {
                            names.Add(name.ToArray());
                        }

                        pos += recordLength;
                    }
                }
            }
        }
        finally
        {
            LibC.close(dir);
        }

        return names;
    }
}
