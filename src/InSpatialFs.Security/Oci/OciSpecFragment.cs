using System.Text.Json;
using System.Text.Json.Nodes;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Policy;

namespace InSpatialFs.Security.Oci;

/// <summary>
/// What only the runtime can enforce, as an OCI runtime-spec fragment for a level: namespaces (network
/// included), cgroup limits from <c>resources:</c>, no_new_privs, reduced capabilities and a seccomp
/// filter that allows by default and refuses mount, ptrace, kexec and friends with EPERM.
/// <see cref="MergeInto"/> lays it over a full config (e.g. one from <c>runc spec</c>).
/// </summary>
public static class OciSpecFragment
{
    /// <summary>Syscalls refused at every level.</summary>
    public static readonly IReadOnlyList<string> DeniedSyscalls =
    [
        "mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsmount", "fsconfig", "fspick",
        "ptrace", "process_vm_readv", "process_vm_writev", "kexec_load", "kexec_file_load", "open_by_handle_at",
        "name_to_handle_at", "init_module", "finit_module", "delete_module", "bpf", "perf_event_open",
        "reboot", "swapon", "swapoff", "acct", "setns", "unshare", "keyctl", "add_key", "request_key",
    ];

    /// <summary>Further syscalls refused at enhanced and maximum.</summary>
    public static readonly IReadOnlyList<string> DeniedSyscallsEnhanced = ["userfaultfd", "personality", "quotactl", "lookup_dcookie"];

    /// <summary>Further syscalls refused at maximum: device and special-file creation, io_uring (bypasses seccomp per op).</summary>
    public static readonly IReadOnlyList<string> DeniedSyscallsMaximum = ["mknod", "mknodat", "io_uring_setup", "io_uring_enter", "io_uring_register"];

    /// <summary>Capabilities kept per level (everything else is dropped from every set).</summary>
    public static IReadOnlyList<string> Capabilities(IsolationLevel level) => level switch
    {
        IsolationLevel.Standard =>
        [
            "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_SETGID", "CAP_SETUID",
            "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_AUDIT_WRITE",
        ],
        IsolationLevel.Enhanced => ["CAP_CHOWN", "CAP_FOWNER", "CAP_SETGID", "CAP_SETUID", "CAP_NET_BIND_SERVICE", "CAP_KILL"],
        _ => [],
    };

    public static string Generate(IsolationLevel level, ResourceLimits resources) =>
        Build(level, resources).ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    public static JsonObject Build(IsolationLevel level, ResourceLimits resources)
    {
        ArgumentNullException.ThrowIfNull(resources);
        JsonArray caps = new([.. Capabilities(level).Select(c => (JsonNode)JsonValue.Create(c)!)]);
        JsonArray Copy() => (JsonArray)caps.DeepClone();

        var namespaces = new JsonArray();
        foreach (string ns in new[] { "pid", "network", "ipc", "uts", "mount", "cgroup" })
        {
            namespaces.Add((JsonNode)new JsonObject { ["type"] = ns });
        }

        var linuxResources = new JsonObject();
        if (resources.MemoryBytes is long mem) linuxResources["memory"] = new JsonObject { ["limit"] = mem, ["swap"] = mem };
        if (resources.Cpus is double cpus)
        {
            const long period = 100_000;
            linuxResources["cpu"] = new JsonObject { ["quota"] = (long)(cpus * period), ["period"] = period };
        }

        long pids = resources.Pids ?? (level == IsolationLevel.Standard ? 4096 : 1024);
        linuxResources["pids"] = new JsonObject { ["limit"] = pids };

        IEnumerable<string> denied = DeniedSyscalls;
        if (level >= IsolationLevel.Enhanced) denied = denied.Concat(DeniedSyscallsEnhanced);
        if (level == IsolationLevel.Maximum) denied = denied.Concat(DeniedSyscallsMaximum);

        var seccomp = new JsonObject
        {
            ["defaultAction"] = "SCMP_ACT_ALLOW",
            ["architectures"] = new JsonArray("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64"),
            ["syscalls"] = new JsonArray(new JsonObject
            {
                ["names"] = new JsonArray([.. denied.Select(n => (JsonNode)JsonValue.Create(n)!)]),
                ["action"] = "SCMP_ACT_ERRNO",
                ["errnoRet"] = 1, // EPERM
            }),
        };

        var linux = new JsonObject
        {
            ["namespaces"] = namespaces,
            ["resources"] = linuxResources,
            ["seccomp"] = seccomp,
            ["maskedPaths"] = new JsonArray("/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"),
            ["readonlyPaths"] = new JsonArray("/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"),
        };

        return new JsonObject
        {
            ["process"] = new JsonObject
            {
                ["noNewPrivileges"] = true,
                ["capabilities"] = new JsonObject
                {
                    ["bounding"] = Copy(),
                    ["effective"] = Copy(),
                    ["permitted"] = Copy(),
                    ["inheritable"] = new JsonArray(),
                    ["ambient"] = new JsonArray(),
                },
            },
            ["linux"] = linux,
            ["annotations"] = new JsonObject { ["io.inspatialfs.isolation"] = FsEventJson.LevelName(level) },
        };
    }

    /// <summary>Deep-merges the fragment into a full config: objects merge key by key, everything else (arrays included) is replaced.</summary>
    public static JsonObject MergeInto(JsonObject config, JsonObject fragment)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(fragment);
        foreach ((string key, JsonNode? value) in fragment)
        {
            if (value is JsonObject fo && config[key] is JsonObject co)
            {
                MergeInto(co, fo);
            }
            else
            {
                config[key] = value?.DeepClone();
            }
        }

        return config;
    }
}
