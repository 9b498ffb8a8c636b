using System.Runtime.InteropServices;
using InSpatialFs.Daemon.Config;
using InSpatialFs.Daemon.Control;
using InSpatialFs.Daemon.Hosting;
using InSpatialFs.Daemon.Outputs;
using InSpatialFs.Fuse;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Fuse.Transport;
using InSpatialFs.Interop;
using InSpatialFs.Proxy;
using InSpatialFs.Proxy.Direct;
using InSpatialFs.Security;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Identity;
using InSpatialFs.Security.Outputs;
using InSpatialFs.Security.Policy;
using InSpatialFs.Security.Rules;
using InSpatialFs.Storage;
using InSpatialFs.Storage.Host;
using InSpatialFs.Storage.Memory;
using InSpatialFs.Storage.Mounts;
using InSpatialFs.Storage.Overlay;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.Daemon.Runtime;

// What an instance is made of, built from its config: the mount table and backends, the rule engine, the security options.
internal sealed partial class Instance
{
    private MountTable BuildMounts(bool adopting)
    {
        var entries = new List<MountEntry>();
        foreach (MountConfig m in _config.Mounts)
        {
            IFileSystemBackend backend;
            MountKind kind;
            if (m.Kind == MountSourceKind.Memory)
            {
                long size = m.MemorySize ?? 1L << 30;
                if (_config.Resources.Memory is long cap)
                {
                    size = Math.Min(size, cap);
                }

                backend = adopting ? AdoptMemory(m, size) : new MemoryFileSystem(size, inodeLimit: _config.Resources.Inodes ?? 0);
                kind = MountKind.Memory;
            }
            else if (m.Kind == MountSourceKind.Overlay)
            {
                try
                {
                    // DirectFS on an overlay: read-only opens of lower files and opens of upper files go to the kernel.
#pragma warning disable CA2000 // added to _owned below, disposed with the instance; a failed constructor owns nothing
                    backend = new OverlayFileSystem(m.Overlay!, Logs.CreateLogger("InSpatialFs.Storage.Overlay"), directLower: m.Direct, directUpper: m.Direct);
#pragma warning restore CA2000
                }
                catch (IOException e)
                {
                    throw new InstanceStartException($"mount {m.Path}: {e.Message}", e);
                }

                kind = MountKind.Overlay;
            }
            else
            {
                try
                {
#pragma warning disable CA2000 // added to _owned below, disposed with the instance; a failed constructor owns nothing
                    backend = new HostFileSystem(m.Source!, m.ReadOnly, Logs.CreateLogger("InSpatialFs.Storage.Host"), direct: m.Direct);
#pragma warning restore CA2000
                }
                catch (IOException e)
                {
                    throw new InstanceStartException($"mount {m.Path}: {e.Message}", e);
                }

                kind = m.Direct ? MountKind.Direct : MountKind.Host;
            }

            _owned.Add(backend);
            entries.Add(new MountEntry(m.Path, backend, m.ReadOnly, m.Direct, kind));
        }

        return MountTable.Create(entries);
    }

    private RuleEngine LoadRules()
    {
        try
        {
            // A server never runs the built-in rules' embedded tests (`rules test` and the test suite do): leaving them
            // unread halves the text it parses at every start, and keeps their sample events out of its memory.
            return RuleEngine.Create(RuleFiles, new RuleEngineOptions
            {
                IncludeBuiltIns = _config.Rules.BuiltIns, AppendOutput = _config.Outputs.Append, BuiltInTests = false,
            });
        }
        catch (RuleLoadException e)
        {
            throw new InstanceStartException("rules do not load: " + string.Join("; ", e.Diagnostics.Select(d => d.ToString())), e);
        }
    }

    /// <summary>The security profile of a config: its controls:, exec:, paths and resources, then the --relax flags.</summary>
    internal static SecurityOptions BuildSecurityOptions(InstanceConfig config, IReadOnlyList<string> relax) => Relaxations.Apply(relax, new SecurityOptions
    {
        Level = config.Isolation,
        RefuseSetuid = config.Controls.RefuseSetuid,
        RefuseDevices = config.Controls.RefuseDevices,
        RefuseFifosSockets = config.Controls.RefuseFifosSockets,
        RefuseSecurityXattrs = config.Controls.RefuseSecurityXattrs,
        RefuseAllXattrWrites = config.Controls.RefuseAllXattrWrites,
        RestrictHardlinks = config.Controls.RestrictHardlinks,
        RestrictSymlinks = config.Controls.RestrictSymlinks,
        AllowDirect = config.Controls.AllowDirect,
        Forbidden = config.Paths.Forbidden,
        ReadOnly = config.Paths.ReadOnly,
        Allowed = config.Paths.Allowed,
        RuntimeWrittenExec = config.Exec.RuntimeWritten switch
        {
            InSpatialFs.Daemon.Config.RuntimeWrittenExec.Deny => InSpatialFs.Security.Policy.RuntimeWrittenExec.Deny,
            InSpatialFs.Daemon.Config.RuntimeWrittenExec.Allow => InSpatialFs.Security.Policy.RuntimeWrittenExec.Allow,
            InSpatialFs.Daemon.Config.RuntimeWrittenExec.Alert => InSpatialFs.Security.Policy.RuntimeWrittenExec.Alert,
            _ => null,
        },
        Resources = new ResourceLimits
        {
            MemoryBytes = config.Resources.Memory,
            DiskBytes = config.Resources.Disk,
            Inodes = config.Resources.Inodes,
            OpenFiles = config.Resources.OpenFiles is long f ? (int)Math.Min(f, int.MaxValue) : null,
            OpsPerSecond = config.Resources.OpsPerSecond,
            BytesPerSecond = config.Resources.BytesPerSecond,
        },
        SuspendOn = config.Response.SuspendOn,
        StateDir = config.StateDir,
        JournalEvents = config.Events.Journal,
        JournalRotateBytes = config.Events.RotateBytes ?? SecurityOptions.DefaultJournalRotateBytes,
        JournalKeep = config.Events.Keep ?? SecurityOptions.DefaultJournalKeep,
        ContainerCgroup = config.Container.Cgroup,
        ContainerName = config.Name,
        Mountpoint = config.Mountpoint,
        Membership = new InSpatialFs.Security.Identity.MembershipOptions
        {
            InitPid = config.Container.InitPid,
            HostRoot = config.HostUsers.Root,
            HostUsers = config.HostUsers.Others,
        },
        Incidents = IncidentLimits(config.Incidents),
    });

    private static InSpatialFs.Security.Incidents.IncidentOptions IncidentLimits(IncidentsConfig c)
    {
        var d = new InSpatialFs.Security.Incidents.IncidentOptions();
        return d with { RatePerSecond = c.Rate ?? d.RatePerSecond, MaxBurst = c.MaxBurst ?? d.MaxBurst, RotateBytes = c.RotateBytes ?? d.RotateBytes, Keep = c.Keep ?? d.Keep };
    }
}
