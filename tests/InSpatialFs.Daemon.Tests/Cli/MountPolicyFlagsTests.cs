using InSpatialFs.Daemon.Cli;
using InSpatialFs.Daemon.Config;
using InSpatialFs.Security;

namespace InSpatialFs.Daemon.Tests.Cli;

/// <summary>The quick form's flag twins of resources:, exec: and response: (issue 4).</summary>
public sealed class MountPolicyFlagsTests
{
    private static MountRequest Quick(params string[] resources) => new()
    {
        Memory = true,
        MountPoint = "/tmp/isfs-flags-test",
        Resources = resources,
    };

    [Test]
    public void Resource_flags_fill_the_same_config_as_the_resources_block()
    {
        InstanceConfig c = MountRunner.BuildConfig(Quick("memory=256MiB", "disk=1GiB", "inodes=100000", "open_files=4096", "ops_per_second=20000", "bytes_per_second=200MiB")
            with { ExecRuntimeWritten = "deny", SuspendOn = "high" });
        Assert.That(c.Resources, Is.EqualTo(new ResourcesConfig
        {
            Memory = 256L << 20, Disk = 1L << 30, Inodes = 100000, OpenFiles = 4096, OpsPerSecond = 20000, BytesPerSecond = 200L << 20,
        }));
        Assert.That(c.Exec.RuntimeWritten, Is.EqualTo(RuntimeWrittenExec.Deny));
        Assert.That(c.Response.SuspendOn, Is.EqualTo(Severity.High));
    }

    [TestCase("disk")]
    [TestCase("disk=")]
    [TestCase("disk=-5")]
    [TestCase("cpu=2")]
    [TestCase("inodes=many")]
    public void Bad_resource_flags_are_usage_errors(string item)
    {
        Assert.That(() => MountRunner.BuildConfig(Quick(item)), Throws.TypeOf<ConfigException>().With.Message.Contains("--resource"));
    }

    [Test]
    public void Policy_flags_cannot_be_mixed_with_a_config_file()
    {
        var r = new MountRequest { ConfigFile = "/nonexistent.yaml", Resources = ["disk=1GiB"] };
        Assert.That(() => MountRunner.BuildConfig(r), Throws.TypeOf<ConfigException>().With.Message.Contains("--resource"));
    }
}

/// <summary>Numeric mount flags: a value that is no number, or out of range, is a usage error (exit 2), never a crash.</summary>
public sealed class MountNumericFlagsTests
{
    [TestCase("--cache-timeout", "abc", "abc")]
    [TestCase("--cache-timeout", "-1", "--cache-timeout: seconds, 0 or more")]
    [TestCase("--readers", "0", "--readers: a number of threads, 1 or more")]
    [TestCase("--readers", "-3", "--readers: a number of threads, 1 or more")]
    public void A_bad_number_is_a_usage_error(string flag, string value, string expected)
    {
        if (!File.Exists(InSpatialFs.TestKit.Processes.DaemonProcess.Binary)) Assert.Ignore("run `make build` first");
        string mountpoint = Path.Combine(Path.GetTempPath(), "isfs-numeric-" + Guid.NewGuid().ToString("N")[..8]);
        var r = InSpatialFs.TestKit.Processes.Shell.Run($"'{InSpatialFs.TestKit.Processes.DaemonProcess.Binary}' mount --memory {flag} {value} '{mountpoint}'", TimeSpan.FromMinutes(1));
        Assert.That(r.ExitCode, Is.EqualTo(2), r.ToString());
        Assert.That(r.StdErr, Does.Contain(expected).And.Not.Contain("Unhandled exception"), r.ToString());
        Assert.That(Directory.Exists(mountpoint), Is.False, "nothing was mounted or made");
    }
}
