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
        ["name", "mountpoint", "control", "mounts", "isolation", "paths", "resources", "exec", "controls", "response", "state_dir", "container", "rules", "outputs", "host_users", "incidents", "metrics_listen"];
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
            ["incidents"] = IncidentsKeys,
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
        ("incidents", IncidentsKeys),
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
                MetricsListen = Optional(root, "metrics_listen") is { } ml ? MetricsListen(ml) : null,
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
            return new Storage.Overlay.OverlayLayers(lower, upper, work);
        }

        private PathsConfig Paths(YamlNode node)
        {
            var map = Mapping(node, "paths");
            CheckKeys(map, "paths", PathsKeys);
            return new PathsConfig(
                Optional(map, "forbidden") is { } f ? PatternList(f, "paths.forbidden") : [],
                Optional(map, "readonly") is { } r ? PatternList(r, "paths.readonly") : [],
                Optional(map, "allowed") is { } a ? PatternList(a, "paths.allowed") : []);
        }

        private IReadOnlyList<string> PatternList(YamlNode node, string what)
        {
            var list = new List<string>();
            foreach (YamlNode item in List(node, what))
            {
                string pattern = Scalar(item, what);
                if (!pattern.StartsWith('/')) throw Fail(item, $"{what}: pattern '{pattern}' must be an absolute namespace path");
                if (pattern.Split('/').Any(part => part is "." or ".."))
                    throw Fail(item, $"{what}: pattern '{pattern}' must be normalized (no '.' or '..')");
                list.Add(pattern);
            }
            return list;
        }

        private ResourcesConfig Resources(YamlNode node)
        {
            var map = Mapping(node, "resources");
            CheckKeys(map, "resources", ResourceKeys);
            return new ResourcesConfig
            {
                Memory = Optional(map, "memory") is { } m ? Size(m, "resources.memory") : null,
                Disk = Optional(map, "disk") is { } d ? Size(d, "resources.disk") : null,
                Inodes = Optional(map, "inodes") is { } i ? Count(i, "resources.inodes") : null,
                OpenFiles = Optional(map, "open_files") is { } o ? Count(o, "resources.open_files") : null,
                OpsPerSecond = Optional(map, "ops_per_second") is { } ops ? Count(ops, "resources.ops_per_second") : null,
                BytesPerSecond = Optional(map, "bytes_per_second") is { } b ? Size(b, "resources.bytes_per_second") : null,
            };
        }

        private ExecConfig Exec(YamlNode node)
        {
            var map = Mapping(node, "exec");
            CheckKeys(map, "exec", ExecKeys);
            return new ExecConfig
            {
                RuntimeWritten = Optional(map, "runtime_written") is { } rw ? RuntimeWrittenChoice(rw, "exec.runtime_written") : RuntimeWrittenExec.Default,
            };
        }

        /// <summary>`controls:` — each privilege control of the isolation levels; false relaxes (with a warning), true tightens.</summary>
        private ControlsConfig Controls(YamlNode node, ExecConfig exec)
        {
            var map = Mapping(node, "controls");
            CheckKeys(map, "controls", ControlsKeys);
            bool? Flag(string key) => Optional(map, key) is { } v ? Bool(v, "controls." + key) : null;
            RuntimeWrittenExec? rw = null;
            if (Optional(map, "exec_runtime_written") is { } rwNode)
            {
                if (exec.RuntimeWritten != RuntimeWrittenExec.Default)
                    throw Fail(rwNode, "controls.exec_runtime_written and exec.runtime_written are the same setting; give one");
                rw = RuntimeWrittenChoice(rwNode, "controls.exec_runtime_written");
            }
            return new ControlsConfig
            {
                RefuseSetuid = Flag("refuse_setuid"),
                RefuseDevices = Flag("refuse_devices"),
                RefuseFifosSockets = Flag("refuse_fifos_sockets"),
                RefuseSecurityXattrs = Flag("refuse_security_xattrs"),
                RefuseAllXattrWrites = Flag("refuse_all_xattr_writes"),
                RestrictHardlinks = Flag("restrict_hardlinks"),
                RestrictSymlinks = Flag("restrict_symlinks"),
                AllowDirect = Flag("allow_direct"),
                ExecRuntimeWritten = rw,
            };
        }

        private RuntimeWrittenExec RuntimeWrittenChoice(YamlNode node, string what) =>
            Enum(node, what, ("allow", RuntimeWrittenExec.Allow), ("alert", RuntimeWrittenExec.Alert), ("deny", RuntimeWrittenExec.Deny));

        private ResponseConfig Response(YamlNode node)
        {
            var map = Mapping(node, "response");
            CheckKeys(map, "response", ResponseKeys);
            return new ResponseConfig
            {
                SuspendOn = Optional(map, "suspend_on") is { } s
                    ? Enum(s, "response.suspend_on", ("info", Severity.Info), ("low", Severity.Low), ("medium", Severity.Medium),
                        ("high", Severity.High), ("critical", Severity.Critical))
                    : null,
            };
        }

        private ContainerConfig Container(YamlNode node)
        {
            var map = Mapping(node, "container");
            CheckKeys(map, "container", ContainerKeys);
            return new ContainerConfig
            {
                Cgroup = Optional(map, "cgroup") is { } c ? HostPath(c, "container.cgroup") : null,
                InitPid = Optional(map, "init_pid") is { } p ? (int)Math.Min(Count(p, "container.init_pid"), int.MaxValue) : null,
            };
        }

        private HostUsersConfig HostUsers(YamlNode node)
        {
            var map = Mapping(node, "host_users");
            CheckKeys(map, "host_users", HostUsersKeys);
            var defaults = new HostUsersConfig();
            return new HostUsersConfig
            {
                Root = Optional(map, "root") is { } r ? HostAccessValue(r, "host_users.root") : defaults.Root,
                Others = Optional(map, "others") is { } o ? HostAccessValue(o, "host_users.others") : defaults.Others,
            };
        }

        private HostAccess HostAccessValue(YamlNode node, string what) => Enum(node, what,
            ("full", HostAccess.Full), ("no-quota-writes", HostAccess.NoQuotaWrites), ("read-only", HostAccess.ReadOnly), ("none", HostAccess.None));

        private IncidentsConfig Incidents(YamlNode node)
        {
            var map = Mapping(node, "incidents");
            CheckKeys(map, "incidents", IncidentsKeys);
            return new IncidentsConfig
            {
                Rate = Optional(map, "rate") is { } r ? PositiveNumber(r, "incidents.rate") : null,
                MaxBurst = Optional(map, "max_burst") is { } b ? (int)Math.Min(Count(b, "incidents.max_burst"), int.MaxValue) : null,
                RotateBytes = Optional(map, "rotate_bytes") is { } s ? Size(s, "incidents.rotate_bytes") : null,
                Keep = Optional(map, "keep") is { } k ? (int)Math.Min(Count(k, "incidents.keep"), 1000) : null,
            };
        }

        /// <summary>`metrics_listen: 127.0.0.1:9464`: an IP address literal and a port (no host names: nothing is resolved at start).</summary>
        private string MetricsListen(YamlNode node)
        {
            string v = Scalar(node, "metrics_listen");
            if (!System.Net.IPEndPoint.TryParse(v, out System.Net.IPEndPoint? endpoint) || endpoint.Port == 0 || !v.Contains(':', StringComparison.Ordinal)
                || (endpoint.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 && !v.StartsWith('[')))
                throw Fail(node, $"metrics_listen: '{v}' is not ADDRESS:PORT (e.g. 127.0.0.1:9464, [::1]:9464) with a port from 1 to 65535");
            return endpoint.ToString();
        }

        private double PositiveNumber(YamlNode node, string what)
        {
            string v = Scalar(node, what);
            if (!double.TryParse(v, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double n) || !(n > 0) || double.IsInfinity(n))
                throw Fail(node, $"{what}: '{v}' is not a positive number");
            return n;
        }

        private RulesConfig Rules(YamlNode node)
        {
            var map = Mapping(node, "rules");
            CheckKeys(map, "rules", RulesKeys);
            bool builtIns = Optional(map, "builtins") is not { } b || Bool(b, "rules.builtins");
            if (Optional(map, "files") is not { } filesNode) return RulesConfig.Empty with { BuiltIns = builtIns };
            string baseDir = Path.GetDirectoryName(Path.GetFullPath(file)) ?? "/";
            var files = new List<string>();
            foreach (YamlNode item in List(filesNode, "rules.files"))
            {
                string f = Scalar(item, "rules.files");
                if (f.Length == 0) throw Fail(item, "rules.files: an empty file name");
                files.Add(Path.IsPathRooted(f) ? f : Path.GetFullPath(Path.Combine(baseDir, f)));
            }
            return new RulesConfig(files) { BuiltIns = builtIns };
        }

        private IsolationLevel Isolation(YamlNode node) => Enum(node, "isolation",
            ("standard", IsolationLevel.Standard), ("enhanced", IsolationLevel.Enhanced), ("maximum", IsolationLevel.Maximum));

        // ---------------------------------------------------------------- node helpers

        private ConfigException Fail(YamlNode node, string reason)
            => new(file, (int)node.Start.Line, (int)node.Start.Column, reason);

        private YamlMappingNode Mapping(YamlNode node, string what)
            => node as YamlMappingNode ?? throw Fail(node, $"{what} must be a mapping of keys to values");

        private YamlSequenceNode List(YamlNode node, string what)
            => node as YamlSequenceNode ?? throw Fail(node, $"{what} must be a list");

        private void CheckKeys(YamlMappingNode map, string where, string[] valid)
        {
            foreach (var (key, _) in map.Children)
            {
                string k = key is YamlScalarNode s ? s.Value ?? "" : "";
                if (key is not YamlScalarNode || Array.IndexOf(valid, k) < 0)
                    throw Fail(key, $"unknown key '{k}' in {where}; valid keys: {string.Join(", ", valid)}");
            }
        }

        private static YamlNode? Optional(YamlMappingNode map, string key)
        {
            foreach (var (k, v) in map.Children)
            {
                if (k is YamlScalarNode s && s.Value == key) return IsNull(v) ? null : v;
            }
            return null;
        }

        private YamlNode Required(YamlMappingNode map, string key, string where)
            => Optional(map, key) ?? throw Fail(map, $"{where} is missing required key '{key}'");

        private static bool IsNull(YamlNode node)
            => node is YamlScalarNode { Style: ScalarStyle.Plain, Value: null or "" or "~" or "null" };

        private string Scalar(YamlNode node, string what)
            => node is YamlScalarNode s ? s.Value ?? "" : throw Fail(node, $"{what} must be a single value");

        private bool Bool(YamlNode node, string what) => Scalar(node, what) switch
        {
            "true" or "yes" or "on" => true,
            "false" or "no" or "off" => false,
            var v => throw Fail(node, $"{what}: '{v}' is not true or false"),
        };

        private long Size(YamlNode node, string what)
        {
            string v = Scalar(node, what);
            if (!SizeParser.TryParse(v, out long bytes) || bytes <= 0) throw Fail(node, $"{what}: '{v}' is not {SizeParser.Help}");
            return bytes;
        }

        private long Count(YamlNode node, string what)
        {
            string v = Scalar(node, what);
            if (!long.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out long n) || n <= 0)
                throw Fail(node, $"{what}: '{v}' is not a positive whole number");
            return n;
        }

        private T Enum<T>(YamlNode node, string what, params (string Name, T Value)[] choices)
        {
            string v = Scalar(node, what);
            foreach (var (n, value) in choices)
            {
                if (n == v) return value;
            }
            throw Fail(node, $"{what}: '{v}' is not one of {string.Join(", ", choices.Select(c => c.Name))}");
        }

        private string HostPath(YamlNode node, string what)
        {
            string v = Scalar(node, what);
            string? problem = MountTable.ValidatePath(v);
            if (problem != null) throw Fail(node, $"{what} '{v}' {problem}");
            return v;
        }
    }

    internal static bool IsAtOrBelow(string path, string dir)
        => dir == "/" || path == dir || path.StartsWith(dir + "/", StringComparison.Ordinal);
}
