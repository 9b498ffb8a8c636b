using InSpatialFs.Security.Identity;

namespace InSpatialFs.Security.Policy;

/// <summary>
/// Programs that turn a file they merely read into running code: the dynamic loader (<c>ld.so ./f</c> maps and
/// runs an ELF file it opened for reading) and script interpreters (<c>sh f</c>, <c>python3 f</c>). Exec control
/// by open flags (FMODE_EXEC) cannot see them, so at maximum their read-opens of runtime-written files are refused
/// too. A process is one when any of these names one:
/// <list type="bullet">
/// <item>its comm (what /proc/PID/comm said when the caller was pinned or re-pinned after its exec);</item>
/// <item>the binary it runs (/proc/PID/exe): the kernel names a process after the path it was exec'd by, so a symlink
/// gives an interpreter any comm, but not another image;</item>
/// <item>for busybox, the applet it runs, which busybox takes from argv[0] or, when argv[0] starts with "busybox", from
/// argv[1]: a symlink named <c>busybox2</c> or a shell's <c>exec -a sh /bin/cat</c> chooses those freely.</item>
/// </list>
/// What this cannot see is documented in the README: code fed through a pipe or the command line, a library mapped
/// with dlopen/LD_PRELOAD by an ordinary program, an interpreter binary renamed or hard-linked under another name
/// where the policy lets the container do that.
/// </summary>
public static class CodeLoaders
{
    private static readonly string[] Exact =
    [
        // busybox run by its own name ("busybox sh f") is a shell; its applets run through links carry their own names.
        "busybox", "ld.so", "sh", "ash", "hush", "bash", "dash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish",
        "node", "nodejs", "awk", "gawk", "mawk", "nawk",
        // Recipe runners: the commands a makefile holds run as the file says (busybox's mim is one applet away from sh).
        "make", "gmake", "mim",
    ];

    private static readonly string[] Prefixes = ["ld-linux", "ld-musl", "python", "perl", "ruby", "php", "lua", "tclsh", "wish", "pwsh"];

    /// <summary>The multi-call binary whose applet is chosen by argv (see the class remarks).</summary>
    private const string MultiCall = "busybox";

    /// <summary>Whether <paramref name="caller"/> runs a loader or interpreter (see the class remarks).</summary>
    public static bool IsLoaderOrInterpreter(CallerInfo? caller)
    {
        if (caller is null) return false;
        if (IsLoaderOrInterpreter(caller.Name)) return true;
        return caller.Process is { } p && RunsLoader(p.ExePath, p.Exe, p.Args);
    }

    /// <summary>
    /// Whether the image at <paramref name="exePath"/> (as /proc/PID/exe reads), started with argv[0]
    /// <paramref name="argv0"/> and the arguments <paramref name="args"/> (argv[1..] joined by spaces), runs a loader or
    /// interpreter.
    /// </summary>
    public static bool RunsLoader(string exePath, string argv0, string args)
    {
        string image = BaseName(exePath.EndsWith(" (deleted)", StringComparison.Ordinal) ? exePath[..^10] : exePath);
        if (!image.StartsWith(MultiCall, StringComparison.Ordinal)) return IsLoaderOrInterpreter(image);

        // busybox: the applet is argv[0]'s base name (a login shell's leading '-' dropped), or argv[1] after a name that
        // starts with "busybox".
        string applet = BaseName(argv0).TrimStart('-');
        if (applet.StartsWith(MultiCall, StringComparison.Ordinal))
        {
            int space = args.IndexOf(' ', StringComparison.Ordinal);
            applet = BaseName(space < 0 ? args : args[..space]);
        }

        return IsLoaderOrInterpreter(applet);
    }

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

    private static string BaseName(string path)
    {
        int slash = path.LastIndexOf('/');
        return slash < 0 ? path : path[(slash + 1)..];
    }
}
