namespace InSpatialFs.TestKit.Processes;

/// <summary>A process's threads as /proc shows them: each one's name and the CPUs it may run on.</summary>
public static class ProcessThreads
{
    /// <summary>Cpus_allowed_list of thread <paramref name="tid"/> of <paramref name="pid"/> ("0-1", "3").</summary>
    public static string Cpus(int pid, int tid) => CpusOf($"/proc/{pid}/task/{tid}");

    /// <summary>Every thread's name (comm) and Cpus_allowed_list.</summary>
    public static (string Name, string Cpus)[] Of(int pid) =>
        Directory.GetDirectories($"/proc/{pid}/task").Select(t => (File.ReadAllText(Path.Combine(t, "comm")).Trim(), CpusOf(t))).ToArray();

    /// <summary>"name: cpus" of every thread, for assertion messages.</summary>
    public static string Describe(int pid) => string.Join(", ", Of(pid).Select(t => $"{t.Name}: {t.Cpus}"));

    /// <summary>
    /// Context switches (voluntary and not) of every thread of <paramref name="pid"/> named <paramref name="name"/>, added
    /// up: 0 when there is none. How often an idle thread wakes.
    /// </summary>
    public static long ContextSwitches(int pid, string name)
    {
        long n = 0;
        foreach (string task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
        {
            try
            {
                if (File.ReadAllText(Path.Combine(task, "comm")).TrimEnd('\n') != name) continue;
                n += File.ReadLines(Path.Combine(task, "status")).Where(l => l.Contains("ctxt_switches:", StringComparison.Ordinal))
                    .Sum(l => long.Parse(l[(l.IndexOf(':') + 1)..].Trim(), System.Globalization.CultureInfo.InvariantCulture));
            }
            catch (IOException)
            {
                // the thread ended meanwhile
            }
        }

        return n;
    }

    private static string CpusOf(string task) =>
        File.ReadAllLines(Path.Combine(task, "status")).First(l => l.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal)).Split(':', 2)[1].Trim();
}
