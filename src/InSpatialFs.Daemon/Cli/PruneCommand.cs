using System.CommandLine;
using System.Globalization;
using InSpatialFs.Daemon.Config;
using InSpatialFs.Daemon.Runtime;
using InSpatialFs.Interop;

namespace InSpatialFs.Daemon.Cli;

/// <summary>
/// `inspatialfs prune`: removes the state directories of instances that no longer run (<see cref="StatePruner"/>).
/// Prints one line per directory removed (or, with --dry-run, to be removed), and with --verbose one per directory
/// kept and why; then a summary. Exit codes: 0 done, 1 a directory could not be removed (the others still were),
/// 2 usage.
/// </summary>
internal static class PruneCommand
{
    public static readonly TimeSpan DefaultRetention = TimeSpan.FromDays(7);

    public static Command Create()
    {
        var olderThan = new Option<string>("--older-than")
        {
            Description = "Remove a stopped instance's state once nothing in it changed for this long: N followed by s, m, h or d " +
                "(default 7d; 0 removes every stopped instance's state). State whose overlay layer the engine removed goes regardless.",
            DefaultValueFactory = _ => "7d",
        };
        var root = new Option<string>("--state-root")
        {
            Description = "The directory holding one state directory per instance.",
            DefaultValueFactory = _ => InstanceConfig.StateRoot,
        };
        var dryRun = new Option<bool>("--dry-run") { Description = "Say what would be removed; remove nothing." };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Also list what is kept and why." };
        var command = new Command(
            "prune",
            "Remove the state directories (journal, incidents, marks, log) of instances that no longer run. Each instance " +
            "keeps its directory after it stops, so that a restart of the same name finds its record; a directory goes " +
            "when no instance holds it and either its overlay layer was removed (podman rm, image removal) or nothing in it " +
            "changed for --older-than. A running instance's directory is never touched. Run it from a timer " +
            "(inspatialfs-prune.timer, daily) or by hand.")
        { olderThan, root, dryRun, verbose };
        command.SetAction(p => Run(p.GetValue(root)!, p.GetValue(olderThan)!, p.GetValue(dryRun), p.GetValue(verbose), DateTimeOffset.UtcNow, Console.Out, Console.Error));
        return command;
    }

    internal static int Run(string stateRoot, string olderThan, bool dryRun, bool verbose, DateTimeOffset now, TextWriter output, TextWriter errors)
    {
        if (ParseRetention(olderThan) is not TimeSpan retention)
        {
            errors.WriteLine($"inspatialfs prune: --older-than '{olderThan}' is not a duration (N followed by s, m, h or d, e.g. 7d)");
            return ExitCodes.UsageError;
        }

        if (!Path.IsPathFullyQualified(stateRoot))
        {
            errors.WriteLine($"inspatialfs prune: --state-root '{stateRoot}' is not an absolute path");
            return ExitCodes.UsageError;
        }

        List<PruneEntry> entries;
        try
        {
            entries = StatePruner.Prune(Path.TrimEndingDirectorySeparator(stateRoot), retention, dryRun, now);
        }
        catch (UnsafePathException e) when (e.Problem == PathProblem.Failed && !Directory.Exists(stateRoot))
        {
            output.WriteLine($"nothing to prune: {stateRoot} does not exist");
            return ExitCodes.Ok;
        }
        catch (IOException e)
        {
            errors.WriteLine($"inspatialfs prune: {e.Message}");
            return ExitCodes.RuntimeFailure;
        }

        foreach (PruneEntry e in entries)
        {
            string line = e.Outcome switch
            {
                PruneOutcome.Removed => $"removed {e.Name} ({Size(e.Bytes)}): {e.Reason}",
                PruneOutcome.WouldRemove => $"would remove {e.Name} ({Size(e.Bytes)}): {e.Reason}",
                PruneOutcome.Failed => $"failed {e.Name}: {e.Reason}",
                _ => verbose ? $"kept {e.Name}: {e.Reason}" : "",
            };
            if (line.Length > 0)
            {
                (e.Outcome == PruneOutcome.Failed ? errors : output).WriteLine(TerminalSafe(line));
            }
        }

        int gone = entries.Count(e => e.Outcome is PruneOutcome.Removed or PruneOutcome.WouldRemove);
        long bytes = entries.Where(e => e.Outcome is PruneOutcome.Removed or PruneOutcome.WouldRemove).Sum(e => e.Bytes);
        int failed = entries.Count(e => e.Outcome == PruneOutcome.Failed);
        output.WriteLine(
            $"{(dryRun ? "would remove" : "removed")} {gone} state {(gone == 1 ? "directory" : "directories")} ({Size(bytes)}); kept " +
            $"{entries.Count(e => e.Outcome == PruneOutcome.Running)} running, {entries.Count(e => e.Outcome == PruneOutcome.Recent)} recent, " +
            $"{entries.Count(e => e.Outcome == PruneOutcome.NotInstanceState)} not instance state; {failed} failed");
        return failed == 0 ? ExitCodes.Ok : ExitCodes.RuntimeFailure;
    }

    /// <summary>"7d", "12h", "30m", "45s" or "0"; null for anything else.</summary>
    internal static TimeSpan? ParseRetention(string text)
    {
        text = text.Trim();
        if (text == "0")
        {
            return TimeSpan.Zero;
        }

        if (text.Length < 2 || !long.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out long n) || n > 100_000)
        {
            return null;
        }

        return text[^1] switch
        {
            's' => TimeSpan.FromSeconds(n),
            'm' => TimeSpan.FromMinutes(n),
            'h' => TimeSpan.FromHours(n),
            'd' => TimeSpan.FromDays(n),
            _ => null,
        };
    }

    private static string Size(long bytes) =>
        bytes >= 1 << 30 ? $"{bytes / (double)(1 << 30):0.0} GiB" : bytes >= 1 << 20 ? $"{bytes / (double)(1 << 20):0.0} MiB" : $"{bytes / 1024.0:0.0} KiB";

    /// <summary>Directory names come from the disk: control characters are shown escaped, not sent to the terminal.</summary>
    private static string TerminalSafe(string line) => Hosting.TerminalText.Escape(line);
}
