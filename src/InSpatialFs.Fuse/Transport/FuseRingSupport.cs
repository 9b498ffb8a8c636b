namespace InSpatialFs.Fuse.Transport;

/// <summary>Whether this kernel will offer FUSE over io_uring to a new connection (checked before mounting).</summary>
public static class FuseRingSupport
{
    /// <summary>The fuse module's switch (0644, root's): the kernel offers FUSE_OVER_IO_URING at INIT only while it is Y.</summary>
    public const string SwitchPath = "/sys/module/fuse/parameters/enable_uring";

    /// <summary>Null when a new mount can use io_uring; else why not, with what to do about it.</summary>
    public static string? Unavailable()
    {
        string value;
        try
        {
            value = File.ReadAllText(SwitchPath).Trim();
        }
        catch (FileNotFoundException)
        {
            return $"this kernel has no FUSE over io_uring ({SwitchPath} is missing: built without CONFIG_FUSE_IO_URING, or older than 6.14)";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"cannot read {SwitchPath}: {e.Message}";
        }

        return value is "Y" or "1"
            ? null
            : $"FUSE over io_uring is off in this kernel ({SwitchPath} is {value}); as root, 'echo Y > {SwitchPath}' turns it on for new mounts";
    }
}
