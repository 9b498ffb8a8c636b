using InSpatialFs.Security.Events;

namespace InSpatialFs.Security.Policy;

/// <summary>
/// The privilege, code and resource controls in force: the isolation level's defaults merged with the
/// profile. Built once at start; read on the request path.
/// </summary>
public sealed record EffectiveControls
{
    public IsolationLevel Level { get; init; }
    public bool RefuseSetuid { get; init; }
    public bool RefuseDevices { get; init; }
    public bool RefuseFifosSockets { get; init; }
    public bool RefuseSecurityXattrs { get; init; }
    public bool RefuseAllXattrWrites { get; init; }
    public bool RestrictHardlinks { get; init; }
    public bool RestrictSymlinks { get; init; }
    public RuntimeWrittenExec RuntimeWrittenExec { get; init; }
    public bool AllowDirect { get; init; }
    /// <summary>Severity at or above which the container is suspended; null = only on an explicit suspend action.</summary>
    public Severity? SuspendOn { get; init; }
    public ResourceLimits Resources { get; init; } = new();
    /// <summary>One line per explicit relaxation of the level; printed at start and shown in the control files.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];

    /// <summary>Defaults that enhanced and maximum switch on when the profile leaves a resource unset.</summary>
    public static readonly ResourceLimits EnhancedResourceDefaults = new()
    {
        OpenFiles = 4096,
        OpsPerSecond = 200_000,
        BytesPerSecond = 1L << 30,
    };

    /// <summary>The level's defaults (ARCHITECTURE.md, "Isolation levels").</summary>
    public static EffectiveControls Defaults(IsolationLevel level) => level switch
    {
        IsolationLevel.Standard => new EffectiveControls
        {
            Level = level,
            RefuseSetuid = true,
            RefuseDevices = true,
            RefuseSecurityXattrs = true,
            AllowDirect = true,
            RuntimeWrittenExec = RuntimeWrittenExec.Allow,
        },
        IsolationLevel.Enhanced => new EffectiveControls
        {
            Level = level,
            RefuseSetuid = true,
            RefuseDevices = true,
            RefuseSecurityXattrs = true,
            RestrictHardlinks = true,
            RestrictSymlinks = true,
            AllowDirect = true, // read-only opens only (see SecurityManager)
            RuntimeWrittenExec = RuntimeWrittenExec.Allow,
            Resources = EnhancedResourceDefaults,
        },
        _ => new EffectiveControls
        {
            Level = IsolationLevel.Maximum,
            RefuseSetuid = true,
            RefuseDevices = true,
            RefuseFifosSockets = true,
            RefuseSecurityXattrs = true,
            RefuseAllXattrWrites = true,
            RestrictHardlinks = true,
            RestrictSymlinks = true,
            AllowDirect = false,
            RuntimeWrittenExec = RuntimeWrittenExec.Deny,
            SuspendOn = Severity.High,
            Resources = EnhancedResourceDefaults,
        },
    };

    /// <summary>Merges a profile into its level's defaults, collecting a warning for each relaxation.</summary>
    public static EffectiveControls Resolve(SecurityOptions o)
    {
        EffectiveControls d = Defaults(o.Level);
        var warnings = new List<string>();
        string level = FsEventJson.LevelName(o.Level);

        bool Refusal(bool? setting, bool levelDefault, string key)
        {
            if (setting is bool v)
            {
                if (levelDefault && !v) warnings.Add($"relaxation: {key}=false under isolation {level} (the level refuses it)");
                return v;
            }

            return levelDefault;
        }

        RuntimeWrittenExec exec = o.RuntimeWrittenExec ?? d.RuntimeWrittenExec;
        if (exec != RuntimeWrittenExec.Deny && d.RuntimeWrittenExec == RuntimeWrittenExec.Deny)
        {
            warnings.Add($"relaxation: exec.runtime_written={exec.ToString().ToLowerInvariant()} under isolation {level} (the level denies exec of files written at run time)");
        }

        bool allowDirect = o.AllowDirect ?? d.AllowDirect;
        if (allowDirect && !d.AllowDirect)
        {
            warnings.Add($"relaxation: DirectFS allowed under isolation {level} (read-only opens only; their data bypasses mediation)");
        }

        Severity? suspendOn = o.NeverSuspend ? null : o.SuspendOn ?? d.SuspendOn;
        if (d.SuspendOn is Severity ds && (suspendOn is null || suspendOn > ds))
        {
            warnings.Add($"relaxation: response.suspend_on={(suspendOn?.ToString().ToLowerInvariant() ?? "never")} under isolation {level} (the level suspends on {ds.ToString().ToLowerInvariant()})");
        }

        ResourceLimits r = MergeResources(o.Resources, d.Resources, level, warnings);

        return new EffectiveControls
        {
            Level = o.Level,
            RefuseSetuid = Refusal(o.RefuseSetuid, d.RefuseSetuid, "refuse_setuid"),
            RefuseDevices = Refusal(o.RefuseDevices, d.RefuseDevices, "refuse_devices"),
            RefuseFifosSockets = Refusal(o.RefuseFifosSockets, d.RefuseFifosSockets, "refuse_fifos_sockets"),
            RefuseSecurityXattrs = Refusal(o.RefuseSecurityXattrs, d.RefuseSecurityXattrs, "refuse_security_xattrs"),
            RefuseAllXattrWrites = Refusal(o.RefuseAllXattrWrites, d.RefuseAllXattrWrites, "refuse_all_xattr_writes"),
            RestrictHardlinks = Refusal(o.RestrictHardlinks, d.RestrictHardlinks, "restrict_hardlinks"),
            RestrictSymlinks = Refusal(o.RestrictSymlinks, d.RestrictSymlinks, "restrict_symlinks"),
            RuntimeWrittenExec = exec,
            AllowDirect = allowDirect,
            SuspendOn = suspendOn,
            Resources = r,
            Warnings = warnings,
        };
    }

    private static ResourceLimits MergeResources(ResourceLimits p, ResourceLimits d, string level, List<string> warnings)
    {
        // A profile's own limit always applies; a limit above the level's default is a relaxation.
        T? Pick<T>(T? set, T? def, string key)
            where T : struct, IComparable<T>
        {
            if (set is T s)
            {
                if (def is T dv && s.CompareTo(dv) > 0) warnings.Add($"relaxation: resources.{key}={s} above the {level} default {dv}");
                return s;
            }

            return def;
        }

        return new ResourceLimits
        {
            MemoryBytes = Pick(p.MemoryBytes, d.MemoryBytes, "memory"),
            DiskBytes = Pick(p.DiskBytes, d.DiskBytes, "disk"),
            Inodes = Pick(p.Inodes, d.Inodes, "inodes"),
            OpenFiles = Pick(p.OpenFiles, d.OpenFiles, "open_files"),
            OpsPerSecond = Pick(p.OpsPerSecond, d.OpsPerSecond, "ops_per_second"),
            BytesPerSecond = Pick(p.BytesPerSecond, d.BytesPerSecond, "bytes_per_second"),
            Cpus = p.Cpus ?? d.Cpus,
            Pids = p.Pids ?? d.Pids,
        };
    }
}
