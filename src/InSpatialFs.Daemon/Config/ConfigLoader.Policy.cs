using System.Globalization;
using InSpatialFs.Security;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Identity;
using InSpatialFs.Storage.Mounts;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace InSpatialFs.Daemon.Config;

/// <summary>The policy sections: paths, resources, exec, controls, response, container, host users, incidents, metrics, rules, isolation.</summary>
public static partial class ConfigLoader
{
    private sealed partial class Reader
    {
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

        private EventsConfig Events(YamlNode node)
        {
            var map = Mapping(node, "events");
            CheckKeys(map, "events", EventsKeys);
            return new EventsConfig
            {
                Journal = Optional(map, "journal") is not { } j || Bool(j, "events.journal"),
                RotateBytes = Optional(map, "rotate_bytes") is { } s ? Size(s, "events.rotate_bytes") : null,
                Keep = Optional(map, "keep") is { } k ? (int)Math.Min(Count(k, "events.keep"), 1000) : null,
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
    }
}
