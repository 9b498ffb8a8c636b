using InSpatialFs.Interop;

namespace InSpatialFs.Storage.Posix;

/// <summary>
/// Which renameat2 flags a backend accepts. The combinations are do_renameat2's (fs/namei.c): unknown bits, and
/// RENAME_EXCHANGE together with RENAME_NOREPLACE or RENAME_WHITEOUT, are EINVAL before any name is looked up.
/// RENAME_WHITEOUT alone is valid to the kernel, but no backend here stores whiteouts (the overlay mount kind makes its
/// own, in its own format), so it gets EINVAL too: what a kernel filesystem without whiteout support answers from its
/// ->rename (e.g. fuse_rename2 passes it on and servers without support return EINVAL).
/// </summary>
public static class RenameFlags
{
    public const uint NoReplace = LibC.RENAME_NOREPLACE;
    public const uint Exchange = LibC.RENAME_EXCHANGE;
    public const uint Whiteout = LibC.RENAME_WHITEOUT;

    /// <summary>OK for 0, RENAME_NOREPLACE and RENAME_EXCHANGE; EINVAL for everything else.</summary>
    public static Errno Check(uint flags)
    {
        if ((flags & ~(NoReplace | Exchange | Whiteout)) != 0)
        {
            return Errno.EINVAL; // unknown bits
        }

        if ((flags & Exchange) != 0 && (flags & (NoReplace | Whiteout)) != 0)
        {
            return Errno.EINVAL; // an exchange replaces by definition and leaves nothing behind
        }

        return (flags & Whiteout) != 0 ? Errno.EINVAL : Errno.OK;
    }

    /// <summary>True when the flags are valid to the kernel (whiteouts included), whatever a backend supports.</summary>
    public static bool IsValidForKernel(uint flags) =>
        (flags & ~(NoReplace | Exchange | Whiteout)) == 0 && !((flags & Exchange) != 0 && (flags & (NoReplace | Whiteout)) != 0);
}
