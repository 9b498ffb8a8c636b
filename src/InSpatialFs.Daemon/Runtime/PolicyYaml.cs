using System.Globalization;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Policy;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace InSpatialFs.Daemon.Runtime;

/// <summary>
/// The `policy` control file: the policy the running instance enforces (its level's defaults, the config and any
/// --relax applied), as YAML with the config's key names. Limits that are not set are null.
/// </summary>
internal static class PolicyYaml
{
    public static string Render(Config.InstanceConfig config, EffectiveControls c)
    {
        static YamlScalarNode S(string v) => new(v) { Style = ScalarStyle.Plain };
        static YamlScalarNode Q(string v) => new(v) { Style = ScalarStyle.DoubleQuoted };
        static YamlScalarNode B(bool v) => S(v ? "true" : "false");
        static YamlScalarNode N(double? v) => S(v?.ToString(CultureInfo.InvariantCulture) ?? "null");
        static YamlSequenceNode L(IEnumerable<string> items) => new(items.Select(Q)) { Style = YamlDotNet.Core.Events.SequenceStyle.Flow };

        ResourceLimits r = c.Resources;
        var root = new YamlMappingNode
        {
            { "isolation", S(FsEventJson.LevelName(c.Level)) },
            { "paths", new YamlMappingNode { { "forbidden", L(config.Paths.Forbidden) }, { "readonly", L(config.Paths.ReadOnly) }, { "allowed", L(config.Paths.Allowed) } } },
            {
                "controls", new YamlMappingNode
                {
                    { "refuse_setuid", B(c.RefuseSetuid) }, { "refuse_devices", B(c.RefuseDevices) }, { "refuse_fifos_sockets", B(c.RefuseFifosSockets) },
                    { "refuse_security_xattrs", B(c.RefuseSecurityXattrs) }, { "refuse_all_xattr_writes", B(c.RefuseAllXattrWrites) },
                    { "restrict_hardlinks", B(c.RestrictHardlinks) }, { "restrict_symlinks", B(c.RestrictSymlinks) }, { "allow_direct", B(c.AllowDirect) },
                }
            },
            { "exec", new YamlMappingNode { { "runtime_written", S(c.RuntimeWrittenExec.ToString().ToLowerInvariant()) } } },
            { "response", new YamlMappingNode { { "suspend_on", S(c.SuspendOn?.ToString().ToLowerInvariant() ?? "null") } } },
            {
                "resources", new YamlMappingNode
                {
                    { "memory", N(r.MemoryBytes) }, { "disk", N(r.DiskBytes) }, { "inodes", N(r.Inodes) }, { "open_files", N(r.OpenFiles) },
                    { "ops_per_second", N(r.OpsPerSecond) }, { "bytes_per_second", N(r.BytesPerSecond) },
                }
            },
            { "warnings", new YamlSequenceNode(c.Warnings.Select(Q)) },
        };
        using var writer = new StringWriter(CultureInfo.InvariantCulture);
        writer.Write("# Effective policy: the isolation level's defaults with the config and --relax applied.\n");
        new YamlStream(new YamlDocument(root)).Save(writer, assignAnchors: false);
        string text = writer.ToString();
        return text.EndsWith("...\n", StringComparison.Ordinal) ? text[..^4] : text;
    }
}
