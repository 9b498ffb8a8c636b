using InSpatialFs.Security.Policy;

namespace InSpatialFs.Daemon.Runtime;

/// <summary>
/// The explicit relaxations an operator may ask for with --relax. Each switches one control of the isolation
/// level off; the security manager reports every one as a warning line at start and in the control files.
/// </summary>
internal static class Relaxations
{
    public static readonly string[] Names = ["setuid", "devices", "fifos-sockets", "xattrs", "hardlinks", "symlinks", "direct", "exec"];

    public static SecurityOptions Apply(IEnumerable<string> relax, SecurityOptions options)
    {
        foreach (string name in relax)
        {
            options = name switch
            {
                "setuid" => options with { RefuseSetuid = false },
                "devices" => options with { RefuseDevices = false },
                "fifos-sockets" => options with { RefuseFifosSockets = false },
                "xattrs" => options with { RefuseSecurityXattrs = false, RefuseAllXattrWrites = false },
                "hardlinks" => options with { RestrictHardlinks = false },
                "symlinks" => options with { RestrictSymlinks = false },
                "direct" => options with { AllowDirect = true },
                "exec" => options with { RuntimeWrittenExec = RuntimeWrittenExec.Allow },
                _ => throw new ArgumentException($"unknown relaxation '{name}' ({string.Join(", ", Names)})", nameof(relax)),
            };
        }

        return options;
    }
}
