namespace InSpatialFs.TestKit.Processes;

/// <summary>
/// Keeps mounted tests on the daemon built from the tree under test: `make build` compiles the tree's source stamp
/// (scripts/source-stamp.sh) into bin/inspatialfs, which prints it on the second line of `--version`; a binary whose
/// stamp differs from the tree's is refused, so a stale bin/ fails the test with the reason instead of testing old code.
/// </summary>
public static class DaemonBinary
{
    private const string StampPrefix = "sources ";
    private static readonly Lock Gate = new();
    private static string? _treeStamp;
    private static (string Path, DateTime Written, long Length)? _checked;

    /// <summary>scripts/source-stamp.sh of the tree under test (computed once per test process).</summary>
    public static string TreeStamp
    {
        get
        {
            lock (Gate)
            {
                return _treeStamp ??= ComputeTreeStamp();
            }
        }
    }

    /// <summary>The stamp <paramref name="binary"/> prints on `--version`, or null when it prints none.</summary>
    public static string? StampOf(string binary)
    {
        ShellResult r = Shell.Run($"'{binary}' --version", TimeSpan.FromSeconds(30));
        return r.StdOut.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith(StampPrefix, StringComparison.Ordinal))?[StampPrefix.Length..];
    }

    /// <summary>Null when <paramref name="binary"/> was built from this tree; otherwise what is wrong and what to run.</summary>
    public static string? WhyStale(string binary)
    {
        string? built = StampOf(binary);
        string tree = TreeStamp;
        if (built == tree)
        {
            return null;
        }

        return $"{binary} was built from other sources (its stamp {built ?? "(none)"}, this tree's {tree}): run make build";
    }

    /// <summary>
    /// Throws when <paramref name="binary"/> exists and was built from other sources. The answer is kept until the file
    /// changes, so a test run asks the binary once.
    /// </summary>
    public static void EnsureCurrent(string binary)
    {
        var file = new FileInfo(binary);
        if (!file.Exists)
        {
            return; // callers report a missing binary themselves (skipped with "run make build")
        }

        (string, DateTime, long) identity = (binary, file.LastWriteTimeUtc, file.Length);
        lock (Gate)
        {
            if (_checked == identity)
            {
                return;
            }
        }

        string? why = WhyStale(binary);
        if (why != null)
        {
            throw new InvalidOperationException(why);
        }

        lock (Gate)
        {
            _checked = identity;
        }
    }

    private static string ComputeTreeStamp()
    {
        string script = Path.Combine(DaemonProcess.RepoRoot, "scripts", "source-stamp.sh");
        ShellResult r = Shell.Run($"'{script}'", TimeSpan.FromSeconds(60));
        string stamp = r.StdOut.Trim();
        if (r.ExitCode != 0 || stamp.Length == 0)
        {
            throw new InvalidOperationException($"{script} failed (exit {r.ExitCode}): {r.StdErr}");
        }

        return stamp;
    }
}
