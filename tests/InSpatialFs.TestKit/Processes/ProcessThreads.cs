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

    private static string CpusOf(string task) =>
        File.ReadAllLines(Path.Combine(task, "status")).First(l => l.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal)).Split(':', 2)[1].Trim();
}
