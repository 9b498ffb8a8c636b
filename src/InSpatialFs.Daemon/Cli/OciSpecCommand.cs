using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using InSpatialFs.Daemon.Config;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Oci;
using InSpatialFs.Security.Policy;

namespace InSpatialFs.Daemon.Cli;

/// <summary>
/// `inspatialfs oci-spec --isolation LEVEL [--config FILE] [--merge config.json]`: what only the container runtime
/// can enforce (network namespace, cgroup limits from `resources:`, no_new_privs, capabilities, seccomp) as an
/// OCI runtime-spec fragment on stdout; with --merge, the given runtime config with the fragment laid over it.
/// </summary>
internal static class OciSpecCommand
{
    public static Command Create()
    {
        var isolation = new Option<string?>("--isolation") { Description = "Isolation level: standard, enhanced or maximum (default: the config's, else standard)." };
        isolation.AcceptOnlyFromAmong("standard", "enhanced", "maximum");
        var config = new Option<string?>("--config") { Description = "Instance config (YAML): its isolation level and resources (memory) shape the fragment." };
        var merge = new Option<string?>("--merge") { Description = "A full OCI runtime config (e.g. from `runc spec`): print it with the fragment merged in (with --config: root.path is the mountpoint and linux.cgroupsPath the config's container.cgroup)." };
        var command = new Command("oci-spec", "Print the OCI runtime-spec fragment for an isolation level (namespaces, cgroup limits, no_new_privs, capabilities, seccomp).")
        {
            isolation, config, merge,
        };
        command.SetAction(p => Run(p.GetValue(isolation), p.GetValue(config), p.GetValue(merge)));
        return command;
    }

    internal static int Run(string? isolation, string? configFile, string? mergeFile)
    {
        IsolationLevel level;
        ResourceLimits resources = new();
        InstanceConfig? instance = null;
        try
        {
            level = isolation is null ? IsolationLevel.Standard : FsEventJson.ParseLevel(isolation);
            if (configFile != null)
            {
                instance = ConfigLoader.LoadFile(configFile);
                level = isolation is null ? instance.Isolation : level;
                resources = new ResourceLimits { MemoryBytes = instance.Resources.Memory };
            }
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine("inspatialfs oci-spec: " + e.Message);
            return ExitCodes.UsageError;
        }

        JsonObject fragment = OciSpecFragment.Build(level, resources);
        if (instance != null)
        {
            AddInstance(fragment, instance);
        }
        if (mergeFile == null)
        {
            Console.Out.WriteLine(fragment.ToJsonString(Indented));
            return ExitCodes.Ok;
        }

        JsonObject runtimeConfig;
        try
        {
            runtimeConfig = JsonNode.Parse(File.ReadAllText(mergeFile)) as JsonObject
                ?? throw new JsonException("the document is not a JSON object");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            Console.Error.WriteLine($"inspatialfs oci-spec: cannot use {mergeFile} as a runtime config: {e.Message}");
            return ExitCodes.UsageError;
        }

        Console.Out.WriteLine(OciSpecFragment.MergeInto(runtimeConfig, fragment).ToJsonString(Indented));
        return ExitCodes.Ok;
    }

    /// <summary>
    /// With --config, the instance ties the container to itself: root.path is the mountpoint (the container's root is
    /// the InSpatialFs mount) and linux.cgroupsPath the config's container.cgroup (the same cgroup path, as in
    /// /proc/PID/cgroup, which membership and suspend use), so `runc run` needs no hand edits. Without container.cgroup
    /// the runtime picks a cgroup the daemon does not know: said on stderr.
    /// </summary>
    internal static void AddInstance(JsonObject fragment, InstanceConfig instance)
    {
        fragment["root"] = new JsonObject { ["path"] = instance.Mountpoint, ["readonly"] = false };
        if (instance.Container.Cgroup is { } cgroup)
        {
            ((JsonObject)fragment["linux"]!)["cgroupsPath"] = cgroup;
        }
        else
        {
            Console.Error.WriteLine($"inspatialfs oci-spec: {instance.Origin} has no container.cgroup: linux.cgroupsPath is left to the runtime, " +
                "and suspend and cgroup membership need it (e.g. container: {{ cgroup: /inspatialfs/NAME }})");
        }
    }

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };
}
