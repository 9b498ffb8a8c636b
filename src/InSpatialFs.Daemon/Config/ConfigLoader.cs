using System.Globalization;
using InSpatialFs.Security;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Identity;
using InSpatialFs.Storage.Mounts;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace InSpatialFs.Daemon.Config;

/// <summary>
/// Loads an instance config from YAML through YamlDotNet's representation model, so every node keeps its
/// line:column and every refusal names file:line:column. Nothing is defaulted silently that could change what is
/// exposed: unknown keys, missing or non-existent sources, relative or non-normalized paths, duplicate mount
/// paths, bad sizes and bad enum values are all refused.
/// </summary>
public static partial class ConfigLoader
{
    private static readonly string[] TopKeys =
        ["name", "mountpoint", "control", "mounts", "isolation", "paths", "resources", "exec", "controls", "response", "state_dir", "container", "rules", "outputs", "host_users", "incidents", "events", "metrics_listen", "io_uring"];
    private static readonly string[] MountKeys = ["path", "source", "readonly", "direct", "memory", "overlay"];
    private static readonly string[] OverlayKeys = ["lower", "upper", "work"];
    private static readonly string[] MemoryKeys = ["size"];
    private static readonly string[] PathsKeys = ["forbidden", "readonly", "allowed"];
    private static readonly string[] ResourceKeys = ["memory", "disk", "inodes", "open_files", "ops_per_second", "bytes_per_second"];
    private static readonly string[] ExecKeys = ["runtime_written"];
    private static readonly string[] ControlsKeys =
    [
        "refuse_setuid", "refuse_devices", "refuse_fifos_sockets", "refuse_security_xattrs", "refuse_all_xattr_writes",
        "restrict_hardlinks", "restrict_symlinks", "allow_direct", "exec_runtime_written",
    ];
    private static readonly string[] ResponseKeys = ["suspend_on"];
    private static readonly string[] ContainerKeys = ["cgroup", "init_pid"];
    private static readonly string[] HostUsersKeys = ["root", "others"];
    private static readonly string[] IncidentsKeys = ["rate", "max_burst", "rotate_bytes", "keep"];
    private static readonly string[] EventsKeys = ["journal", "rotate_bytes", "keep"];
    private static readonly string[] RulesKeys = ["files", "builtins"];

    /// <summary>
    /// Every key the loader accepts, as dotted paths ("resources.disk", "mounts[].memory.size"); a key with sub-keys is
    /// listed by its leaves. A test holds each of them to a test that shows its effect.
    /// </summary>
    public static IReadOnlyList<string> AcceptedKeys()
    {
        var nested = new Dictionary<string, string[]>(StringComparer.Ordinal)
        {
            ["mounts"] = MountKeys, ["paths"] = PathsKeys, ["resources"] = ResourceKeys, ["exec"] = ExecKeys, ["controls"] = ControlsKeys,
            ["response"] = ResponseKeys, ["container"] = ContainerKeys, ["rules"] = RulesKeys, ["host_users"] = HostUsersKeys,
            ["incidents"] = IncidentsKeys, ["events"] = EventsKeys,
        };
        var keys = new List<string>();
        foreach (string top in TopKeys)
        {
            if (!nested.TryGetValue(top, out string[]? children))
            {
                keys.Add(top);
                continue;
            }

            string prefix = top == "mounts" ? "mounts[]." : top + ".";
            foreach (string child in children)
            {
                if (top == "mounts" && child == "memory") keys.AddRange(MemoryKeys.Select(k => prefix + "memory." + k));
                else if (top == "mounts" && child == "overlay") keys.AddRange(OverlayKeys.Select(k => prefix + "overlay." + k));
                else keys.Add(prefix + child);
            }
        }

        return keys;
    }

    /// <summary>
    /// The key tables the reader checks against, by section ("" is the top level, "mounts[]" one mount): what the JSON
    /// Schema (<see cref="ConfigSchema"/>) and the README test are generated from, so neither can drift from the reader.
    /// </summary>
    internal static IReadOnlyList<(string Section, string[] Keys)> KeyTables() =>
    [
        ("", TopKeys), ("mounts[]", MountKeys), ("mounts[].memory", MemoryKeys), ("mounts[].overlay", OverlayKeys), ("paths", PathsKeys),
        ("resources", ResourceKeys), ("exec", ExecKeys), ("controls", ControlsKeys), ("response", ResponseKeys), ("container", ContainerKeys),
        ("rules", RulesKeys), ("outputs", OutputsKeys), ("outputs.retry", RetryKeys), ("outputs.file", FileOutputKeys),
        ("outputs.syslog", SyslogKeys), ("outputs.http", HttpKeys), ("outputs.otlp", OtlpKeys), ("host_users", HostUsersKeys),
        ("incidents", IncidentsKeys), ("events", EventsKeys),
    ];

    /// <summary>Config files larger than this are refused before parsing (a config is a page, not megabytes).</summary>
    public const int MaxFileBytes = 1 << 20;

    public static InstanceConfig LoadFile(string path, ConfigOverrides? overrides = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        string text;
        try
        {
            var info = new FileInfo(path);
            if (info.Exists && info.Length > MaxFileBytes)
                throw new ConfigException(path, 0, 0, $"the config file is {info.Length} bytes; at most {MaxFileBytes} are read");
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException(path, 0, 0, "cannot read the config file: " + e.Message, e);
        }
        return Load(text, path, overrides);
    }

    /// <param name="yaml">The document.</param>
    /// <param name="fileName">Named in errors; relative rule files are resolved against its directory.</param>
    /// <param name="overrides">Command-line values that replace the file's; they pass the same checks.</param>
    public static InstanceConfig Load(string yaml, string fileName, ConfigOverrides? overrides = null)
    {
        ArgumentNullException.ThrowIfNull(yaml);
        ArgumentNullException.ThrowIfNull(fileName);
        if (yaml.Length > MaxFileBytes) throw new ConfigException(fileName, 1, 1, $"the configuration is longer than {MaxFileBytes} characters");
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(yaml));
        }
        catch (YamlException e)
        {
            throw new ConfigException(fileName, (int)e.Start.Line, (int)e.Start.Column, "invalid YAML: " + e.Message, e);
        }
        catch (Exception e) when (e is not ConfigException and not OutOfMemoryException)
        {
            // YamlDotNet reports most faults as YamlException; anything else still becomes a positioned refusal, never a crash.
            throw new ConfigException(fileName, 1, 1, "invalid YAML: " + e.Message, e);
        }
        if (stream.Documents.Count == 0) throw new ConfigException(fileName, 1, 1, "the configuration is empty");
        if (stream.Documents.Count > 1)
        {
            var second = stream.Documents[1].RootNode;
            throw new ConfigException(fileName, (int)second.Start.Line, (int)second.Start.Column, "only one YAML document is allowed");
        }
        return new Reader(fileName, overrides ?? ConfigOverrides.None).Instance(stream.Documents[0].RootNode);
    }

    private sealed partial class Reader(string file, ConfigOverrides flags)
    {
        public InstanceConfig Instance(YamlNode rootNode)
        {
            var root = Mapping(rootNode, "the configuration");
            CheckKeys(root, "the configuration", TopKeys);

            var mountpointNode = flags.Mountpoint == null ? Required(root, "mountpoint", "the configuration") : Optional(root, "mountpoint");
            string mountpoint = flags.Mountpoint != null ? FlagPath(flags.Mountpoint, "MOUNTPOINT") : HostPath(mountpointNode!, "mountpoint");
            YamlNode? nameNode = Optional(root, "name");
            string name = flags.Name != null ? FlagName(flags.Name)
                : nameNode != null ? InstanceName(nameNode)
                : DefaultName(mountpoint, flags.Mountpoint != null ? null : mountpointNode);
            var controlNode = Optional(root, "control");
            string control = flags.Control != null ? FlagPath(flags.Control, "--control")
                : controlNode != null ? HostPath(controlNode, "control") : InstanceConfig.DefaultControl(name);
            var stateNode = Optional(root, "state_dir");
            string stateDir = flags.StateDir != null ? FlagPath(flags.StateDir, "--state-dir")
                : stateNode != null ? HostPath(stateNode, "state_dir") : InstanceConfig.DefaultStateDir(name);

            var mountsNode = Required(root, "mounts", "the configuration");
            var (mounts, sourceNodes) = Mounts(mountsNode);
            if (ConfigRules.FindConflict(mountpoint, control, stateDir, mounts) is { } conflict)
            {
                throw conflict.Field switch
                {
                    LayoutField.Source => Fail(sourceNodes[conflict.MountIndex], conflict.Reason),
                    LayoutField.Control => Blame(flags.Control, "--control", controlNode ?? nameNode ?? mountpointNode ?? root, conflict.Reason),
                    LayoutField.StateDir => Blame(flags.StateDir, "--state-dir", stateNode ?? nameNode ?? mountpointNode ?? root, conflict.Reason),
                    _ => Blame(flags.Mountpoint, "MOUNTPOINT", mountpointNode ?? root, conflict.Reason),
                };
            }

            var exec = Optional(root, "exec") is { } x ? Exec(x) : new ExecConfig();
            var controls = Optional(root, "controls") is { } ctl ? Controls(ctl, exec) : new ControlsConfig();
            return new InstanceConfig
            {
                Origin = file,
                Name = name,
                Mountpoint = mountpoint,
                Control = control,
                StateDir = stateDir,
                Mounts = mounts,
                Isolation = flags.Isolation != null ? FlagIsolation(flags.Isolation)
                    : Optional(root, "isolation") is { } iso ? Isolation(iso) : IsolationLevel.Standard,
                Paths = Optional(root, "paths") is { } p ? Paths(p) : PathsConfig.Empty,
                Resources = Optional(root, "resources") is { } r ? Resources(r) : new ResourcesConfig(),
                Exec = controls.ExecRuntimeWritten is { } rw ? new ExecConfig { RuntimeWritten = rw } : exec,
                Controls = controls,
                Response = Optional(root, "response") is { } rs ? Response(rs) : new ResponseConfig(),
                Container = Optional(root, "container") is { } ct ? Container(ct) : new ContainerConfig(),
                Rules = Optional(root, "rules") is { } ru ? Rules(ru) : RulesConfig.Empty,
                Outputs = Optional(root, "outputs") is { } ou ? Outputs(ou) : OutputsConfig.None,
                HostUsers = Optional(root, "host_users") is { } hu ? HostUsers(hu) : new HostUsersConfig(),
                Incidents = Optional(root, "incidents") is { } inc ? Incidents(inc) : new IncidentsConfig(),
                Events = Optional(root, "events") is { } ev ? Events(ev) : new EventsConfig(),
                MetricsListen = Optional(root, "metrics_listen") is { } ml ? MetricsListen(ml) : null,
                IoUring = Optional(root, "io_uring") is { } iu && Bool(iu, "io_uring"),
            };
        }

        /// <summary>A refusal of a value that came from a flag names the flag; one from the file names its node.</summary>
        private ConfigException Blame(string? flagValue, string flag, YamlNode node, string reason) =>
            flagValue != null ? FlagFail(flag, reason) : Fail(node, reason);

        private static ConfigException FlagFail(string flag, string reason) => new(QuickConfigBuilder.Origin, 0, 0, $"{flag}: {reason}");

        private static string FlagPath(string value, string flag)
        {
            string? problem = MountTable.ValidatePath(value);
            return problem == null ? value : throw FlagFail(flag, $"'{value}' {problem}");
        }

        private static string FlagName(string value) =>
            ConfigRules.NameProblem(value) is { } problem ? throw FlagFail("--name", problem) : value;

        private static IsolationLevel FlagIsolation(string value) => value switch
        {
            "standard" => IsolationLevel.Standard,
            "enhanced" => IsolationLevel.Enhanced,
            "maximum" => IsolationLevel.Maximum,
            _ => throw FlagFail("--isolation", $"'{value}' is not one of standard, enhanced, maximum"),
        };

        private string InstanceName(YamlNode node)
        {
            string name = Scalar(node, "name");
            return ConfigRules.NameProblem(name) is { } problem ? throw Fail(node, problem) : name;
        }

        /// <summary>The mountpoint's base name, held to the same rule as an explicit name.</summary>
        private string DefaultName(string mountpoint, YamlNode? at)
        {
            string baseName = mountpoint == "/" ? "" : mountpoint[(mountpoint.LastIndexOf('/') + 1)..];
            string? problem = baseName.Length == 0 ? "name is required when the mountpoint is /"
                : ConfigRules.NameProblem(baseName) is { } p ? $"the mountpoint's base name is used as the instance name, but {p}; give name:" : null;
            if (problem == null) return baseName;
            throw at != null ? Fail(at, problem) : FlagFail("MOUNTPOINT", problem.Replace("give name:", "give --name", StringComparison.Ordinal));
        }

        private (IReadOnlyList<MountConfig> Mounts, List<YamlNode> SourceNodes) Mounts(YamlNode node)
        {
            if (node is not YamlSequenceNode seq) throw Fail(node, "mounts must be a list of mounts");
            var result = new List<MountConfig>();
            var sourceNodes = new List<YamlNode>();
            var seen = new Dictionary<string, YamlNode>(StringComparer.Ordinal);
            foreach (YamlNode item in seq)
            {
                var map = Mapping(item, "a mount");
                CheckKeys(map, "a mount", MountKeys);
                var pathNode = Required(map, "path", "a mount");
                string path = Scalar(pathNode, "path");
                string? problem = MountTable.ValidatePath(path);
                if (problem != null) throw Fail(pathNode, $"mount path '{path}' {problem}");
                if (seen.TryGetValue(path, out YamlNode? first))
                    throw Fail(pathNode, $"mount path '{path}' is given twice (first at line {first.Start.Line})");
                seen[path] = pathNode;

                bool readOnly = Optional(map, "readonly") is { } ro && Bool(ro, "readonly");
                bool direct = Optional(map, "direct") is { } d && Bool(d, "direct");
                var sourceNode = Optional(map, "source");
                var memoryNode = Optional(map, "memory");
                if (sourceNode != null && memoryNode != null)
                    throw Fail(memoryNode, $"mount '{path}' has both source and memory; give one");
                if (memoryNode != null)
                {
                    if (direct) throw Fail(Optional(map, "direct")!, $"mount '{path}': direct applies to host sources only, not to memory");
                    var mem = Mapping(memoryNode, "memory");
                    CheckKeys(mem, "memory", MemoryKeys);
                    long size = Size(Required(mem, "size", "memory"), "memory.size");
                    result.Add(new MountConfig(path, MountSourceKind.Memory, null, readOnly, false, size));
                    sourceNodes.Add(memoryNode);
                    continue;
                }
                if (Optional(map, "overlay") is { } overlayNode)
                {
                    if (sourceNode != null) throw Fail(overlayNode, $"mount '{path}' has both source and overlay; give one");
                    result.Add(new MountConfig(path, MountSourceKind.Overlay, null, readOnly, direct, null, Overlay(overlayNode, path)));
                    sourceNodes.Add(overlayNode);
                    continue;
                }
                if (sourceNode == null) throw Fail(map, $"mount '{path}' has no source (give source: HOSTDIR, memory: {{ size: ... }} or overlay: {{ lower: [...], upper, work }})");
                string source = HostPath(sourceNode, "source");
                if (!Directory.Exists(source)) throw Fail(sourceNode, $"source directory {source} does not exist");
                result.Add(new MountConfig(path, MountSourceKind.Host, source, readOnly, direct, null));
                sourceNodes.Add(sourceNode);
            }
            if (!seen.ContainsKey("/")) throw Fail(node, MissingRootMount);
            return (result, sourceNodes);
        }

        /// <summary>
        /// Which writable layer overlaps another layer, or null. An upper directory inside a lower one writes the container's
        /// changes into a shared image (and shows them to itself twice); a work directory inside the upper one shows the
        /// container the copies in flight and the hard-link index. Lower layers may overlap one another: they are only read.
        /// </summary>
        private static string? OverlappingLayers(List<string> lower, string? upper, string? work)
        {
            foreach ((string name, string? dir) in new[] { ("upper", upper), ("work", work) })
            {
                if (dir is null) continue;
                foreach (string l in lower)
                {
                    if (ConfigRules.Inside(dir, l) || ConfigRules.Inside(l, dir)) return $"the {name} directory {dir} and the lower directory {l} overlap";
                }
            }

            return upper != null && work != null && (ConfigRules.Inside(work, upper) || ConfigRules.Inside(upper, work))
                ? $"the upper directory {upper} and the work directory {work} overlap"
                : null;
        }

        /// <summary>`overlay: { lower: [DIR, ...], upper: DIR, work: DIR }`: lower directories top first; upper and work together or neither.</summary>
        private Storage.Overlay.OverlayLayers Overlay(YamlNode node, string path)
        {
            var map = Mapping(node, "overlay");
            CheckKeys(map, "overlay", OverlayKeys);
            YamlNode lowerNode = Required(map, "lower", "overlay");
            if (lowerNode is not YamlSequenceNode lowers || lowers.Children.Count == 0) throw Fail(lowerNode, $"overlay of mount '{path}': lower must be a non-empty list of directories");
            var lower = new List<string>();
            foreach (YamlNode l in lowers.Children)
            {
                string dir = HostPath(l, "overlay.lower");
                if (!Directory.Exists(dir)) throw Fail(l, $"lower directory {dir} does not exist");
                lower.Add(dir);
            }

            string? upper = Optional(map, "upper") is { } u ? HostPath(u, "overlay.upper") : null;
            string? work = Optional(map, "work") is { } w ? HostPath(w, "overlay.work") : null;
            if ((upper is null) != (work is null)) throw Fail(node, $"overlay of mount '{path}': upper and work go together (work is where copies are made atomically)");
            if (upper != null && !Directory.Exists(upper)) throw Fail(Optional(map, "upper")!, $"upper directory {upper} does not exist");
            if (work != null && !Directory.Exists(work)) throw Fail(Optional(map, "work")!, $"work directory {work} does not exist");
            if (OverlappingLayers(lower, upper, work) is string overlap)
            {
                throw Fail(node, $"overlay of mount '{path}': {overlap}; the layers must be separate directory trees (the kernel's overlayfs refuses this too)");
            }

            return new Storage.Overlay.OverlayLayers(lower, upper, work);
        }

    }

    internal static bool IsAtOrBelow(string path, string dir)
        => dir == "/" || path == dir || path.StartsWith(dir + "/", StringComparison.Ordinal);
}
