namespace InSpatialFs.Fuse;

/// <summary>How a FUSE filesystem is mounted (see fuse-kernel-protocol.md §1).</summary>
public sealed record FuseMountOptions
{
    /// <summary>The source shown in /proc/mounts.</summary>
    public string FsName { get; init; } = "inspatialfs";

    /// <summary>The fstype becomes "fuse.&lt;Subtype&gt;"; null or empty gives plain "fuse".</summary>
    public string? Subtype { get; init; } = "inspatialfs";

    public bool ReadOnly { get; init; }

    public bool NoExec { get; init; }

    public bool NoAtime { get; init; }

    /// <summary>Lets users other than the mounter in (as non-root needs user_allow_other in /etc/fuse.conf).</summary>
    public bool AllowOther { get; init; } = true;

    /// <summary>The kernel checks mode bits itself. Without it a root daemon would let anyone read anything.</summary>
    public bool DefaultPermissions { get; init; } = true;

    /// <summary>max_read: the largest READ the kernel sends (match the server's max_write).</summary>
    public uint MaxRead { get; init; } = 1 << 20;

    /// <summary>Mount through fusermount3 even when running as root.</summary>
    public bool UseFusermount { get; init; }

    public string FusermountPath { get; init; } = "fusermount3";

    /// <summary>Rejects names that could smuggle extra options into a comma-separated option string.</summary>
    internal void Validate()
    {
        CheckToken(FsName, nameof(FsName));
        if (!string.IsNullOrEmpty(Subtype))
        {
            CheckToken(Subtype, nameof(Subtype));
        }

        if (MaxRead < 4096)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxRead), MaxRead, "max_read must be at least 4096");
        }
    }

    private static void CheckToken(string value, string name)
    {
        if (string.IsNullOrEmpty(value) || value.Length > 255)
        {
            throw new ArgumentException($"{name} must be 1..255 characters", name);
        }

        foreach (char c in value)
        {
            bool ok = char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' or '/' or ':' or '@' or '+';
            if (!ok)
            {
                throw new ArgumentException($"{name} may contain only letters, digits and . _ - / : @ + (got '{value}')", name);
            }
        }
    }
}
