namespace InSpatialFs.Security.Identity;

/// <summary>Linux capability numbers and names (linux/capability.h), for thread.cap_* as Falco prints them.</summary>
internal static class Capabilities
{
    private static readonly string[] ByBit =
    [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
        "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
        "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
    ];

    // Processes share a handful of sets (a root shell's full set, an unprivileged one's empty set, a container's bounded
    // one): each new process would otherwise build the same three strings again. Bounded, as the masks are the callers'.
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<ulong, string> Known = new();
    private const int KnownMax = 256;

    /// <summary>The names of the set bits, space separated (empty for none).</summary>
    public static string Names(ulong set)
    {
        if (set == 0) return "";
        if (Known.TryGetValue(set, out string? names)) return names;
        names = string.Join(' ', Enumerable.Range(0, ByBit.Length).Where(b => (set & (1UL << b)) != 0).Select(b => ByBit[b]));
        if (Known.Count < KnownMax) Known.TryAdd(set, names);
        return names;
    }
}
