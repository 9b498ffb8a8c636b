using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using InSpatialFs.TestKit.Containers;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Containers;

/// <summary>Runs a script in a runc container on an instance's rootfs and reads the instance's status, for the rule end-to-end tests.</summary>
internal static class ContainerScripts
{
    /// <summary>Docker's default capability set (runc spec's is smaller): mknod and chown are the container's to try.</summary>
    private static readonly string[] DockerCapabilities =
    [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID",
        "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SETFCAP",
    ];

    /// <summary>Writes <paramref name="script"/> as /script.sh and runs it with /bin/sh in a container placed in <paramref name="cgroup"/>.</summary>
    public static ShellResult Run(ContainerRootfs rootfs, string cgroup, string script)
    {
        File.WriteAllText(Path.Combine(rootfs.Image, "script.sh"), script);
        using RuncBundle bundle = RuncBundle.Create(rootfs.MountPoint, ["/bin/sh", "/script.sh"], config =>
        {
            config["linux"]!.AsObject()["cgroupsPath"] = cgroup;
            var caps = new JsonArray([.. DockerCapabilities.Select(c => JsonValue.Create(c))]);
            JsonObject capabilities = config["process"]!["capabilities"]!.AsObject();
            foreach (string set in new[] { "bounding", "effective", "permitted" })
            {
                capabilities[set] = caps.DeepClone();
            }
        });
        return bundle.Run(TimeSpan.FromMinutes(1));
    }

    /// <summary>The status control file as key → value (the first value of repeated keys).</summary>
    public static Dictionary<string, string> Status(string controlDirectory)
    {
        var status = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string line in File.ReadAllLines(Path.Combine(controlDirectory, "status")))
        {
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0 && !line.StartsWith(' '))
            {
                status.TryAdd(line[..colon], line[(colon + 1)..].Trim());
            }
        }

        return status;
    }

    /// <summary>Waits until the analyser has processed every recorded event (analysis is asynchronous); no event may be dropped.</summary>
    public static void WaitForAnalysis(string controlDirectory)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            Dictionary<string, string> s = Status(controlDirectory);
            long recorded = long.Parse(s["events_recorded"], CultureInfo.InvariantCulture);
            long processed = long.Parse(s["events_processed"], CultureInfo.InvariantCulture);
            Assert.That(s["events_dropped"], Is.EqualTo("0"), "no event may be dropped, or the comparison means nothing");
            if (processed >= recorded)
            {
                return;
            }

            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(30)), $"analysis did not catch up: {processed}/{recorded}");
            Thread.Sleep(50);
        }
    }
}
