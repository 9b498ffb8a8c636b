namespace InSpatialFs.Security.Policy;

/// <summary>
/// Programs that turn a file they merely read into running code: the dynamic loader (<c>ld.so ./f</c> maps and
/// runs an ELF file it opened for reading) and script interpreters (<c>sh f</c>, <c>python3 f</c>). Exec control
/// by open flags (FMODE_EXEC) cannot see them, so at maximum their read-opens of runtime-written files are refused
/// too. Identified by the caller's comm (what /proc/PID/comm said when the caller was pinned or re-pinned after
/// its exec). What this cannot see is documented in the README: code fed through a pipe or the command line, a
/// library mapped with dlopen/LD_PRELOAD by an ordinary program, an interpreter that renames itself.
/// </summary>
public static class CodeLoaders
{
    private static readonly string[] Exact =
    [
        // busybox run by its own name ("busybox sh f") is a shell; its applets run through links carry their own names.
        "busybox", "ld.so", "sh", "ash", "bash", "dash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish",
        "node", "nodejs", "awk", "gawk", "mawk", "nawk",
    ];

    private static readonly string[] Prefixes = ["ld-linux", "ld-musl", "python", "perl", "ruby", "php", "lua", "tclsh", "wish", "pwsh"];

    public static bool IsLoaderOrInterpreter(string? comm)
    {
        if (string.IsNullOrEmpty(comm)) return false;
        foreach (string e in Exact)
        {
            if (comm == e) return true;
        }

        foreach (string p in Prefixes)
        {
            if (comm.StartsWith(p, StringComparison.Ordinal)) return true;
        }

        return false;
    }
}
