using InSpatialFs.Daemon.Config;
using InSpatialFs.Interop;
using InSpatialFs.Proxy;
using InSpatialFs.Security.Identity;
using InSpatialFs.Security.Rules;
using Microsoft.Extensions.Logging;

namespace InSpatialFs.Daemon.Runtime;

// Policy reload and the kernel caches it must drop (issue 14).
internal sealed partial class Instance
{
    /// <summary>The proxy's tuning: --direct-fallback, and --cache-timeout unless a host access level makes long caching unsafe.</summary>
    private ProxyOptions ProxyOptionsFor()
    {
        var proxyOptions = new ProxyOptions { InstanceName = _config.Name, DirectFallback = _options.DirectFallback };
        if (_options.CacheTimeout is TimeSpan cacheTimeout)
        {
            proxyOptions = proxyOptions with { CacheTimeout = cacheTimeout };
        }

        // host_users/host_root `none` refuse lookups to host processes, but the kernel's caches are shared by every caller:
        // a name the container looked up would answer a host process's stat without asking. No long caching then.
        MembershipOptions membership = Security.Options.Membership;
        if (membership.HostRoot == HostAccess.None || membership.HostUsers == HostAccess.None)
        {
            proxyOptions = proxyOptions with { CacheTimeout = TimeSpan.Zero };
        }

        return proxyOptions;
    }

    /// <summary>
    /// What changed in the config file beyond paths: and takes a restart (reload applies paths: only, and the rule files
    /// the instance started with): said in the reply, so an edit is not believed in force when it is not.
    /// </summary>
    private string NotReloaded(InstanceConfig now)
    {
        var changed = new List<string>();
        if (!now.Rules.Files.SequenceEqual(_config.Rules.Files) || now.Rules.BuiltIns != _config.Rules.BuiltIns) changed.Add("rules");
        if (now.Isolation != _config.Isolation) changed.Add("isolation");
        if (now.Controls != _config.Controls) changed.Add("controls");
        if (now.Resources != _config.Resources) changed.Add("resources");
        if (now.Exec != _config.Exec) changed.Add("exec");
        if (now.Response != _config.Response) changed.Add("response");
        if (!now.Mounts.Select(Shape).SequenceEqual(_config.Mounts.Select(Shape))) changed.Add("mounts");
        return changed.Count == 0 ? "" : $"; not applied until a restart: {string.Join(", ", changed)} changed in the config";

        // A mount as text: its overlay's layer lists are lists (compared by reference in the record).
        static string Shape(MountConfig m) => m with { Overlay = null } + (m.Overlay is { } o ? $" {string.Join(':', o.Lower)} {o.Upper} {o.Work}" : "");
    }

    /// <summary>
    /// SIGHUP and the `reload` command: re-read the config file's `paths:` (when started from one) and the rule files,
    /// validate both fully, swap them in, then drop what the kernel cached before returning, so nothing the new policy
    /// refuses is still answered from a cache. A file that does not load changes nothing.
    /// </summary>
    public Errno ReloadRules(out string message)
    {
        _notifier.Reloading();
        try
        {
            PathsConfig? paths = null;
            string notReloaded = "";
            if (_options.ReloadConfig is { } reread)
            {
                try
                {
                    InstanceConfig now = reread();
                    paths = now.Paths;
                    notReloaded = NotReloaded(now);
                }
                catch (Exception e) when (e is ConfigException or IOException or UnauthorizedAccessException)
                {
                    message = "config not reloaded (running policy unchanged): " + e.Message;
                    _log.LogWarning("{Message}", message);
                    return Errno.EINVAL;
                }
            }

            RuleLoadResult result = Rules.Reload(RuleFiles);
            if (!result.Succeeded)
            {
                message = string.Join("; ", result.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).Select(d => d.ToString()));
                _log.LogWarning("rules not reloaded (running rules unchanged): {Errors}", message);
                return Errno.EINVAL;
            }

            if (paths != null)
            {
                Security.ReplacePaths(paths.Forbidden, paths.ReadOnly, paths.Allowed);
                _config = _config with { Paths = paths };
            }

            // The new policy may refuse what the kernel has cached (names, attributes, listings, file data): drop it all
            // before the command returns.
            bool dropped = Proxy.InvalidateKernelCaches("policy reloaded", TimeSpan.FromSeconds(30));
            message = $"{result.RuleSet!.Count} rules loaded" + (paths != null ? ", paths reloaded" : "")
                + (dropped ? "; kernel caches dropped" : "; kernel caches still being dropped (30 s passed)") + notReloaded;
            _log.LogInformation("policy reloaded: {Result}", message);
            if (notReloaded.Length > 0) _log.LogWarning("reload: {NotReloaded}", notReloaded.TrimStart(';', ' '));
            ReturnTransientMemory("reload");
            return Errno.OK;
        }
        finally
        {
            _notifier.Ready($"serving {_config.Mountpoint}");
        }
    }
}
