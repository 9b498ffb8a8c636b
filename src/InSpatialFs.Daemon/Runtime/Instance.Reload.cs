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
            if (_options.ReloadConfig is { } reread)
            {
                try
                {
                    paths = reread().Paths;
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
                + (dropped ? "; kernel caches dropped" : "; kernel caches still being dropped (30 s passed)");
            _log.LogInformation("policy reloaded: {Result}", message);
            ReturnTransientMemory("reload");
            return Errno.OK;
        }
        finally
        {
            _notifier.Ready($"serving {_config.Mountpoint}");
        }
    }
}
