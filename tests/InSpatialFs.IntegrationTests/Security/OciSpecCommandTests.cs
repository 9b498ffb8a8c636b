using System.Text.Json.Nodes;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Security;

/// <summary>`bin/inspatialfs oci-spec`: the fragment for a level, shaped by a config's level and resources. (Runc accepting the merged config is in MaximumIsolationContainerTests.)</summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class OciSpecCommandTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp()
    {
        if (!File.Exists(DaemonProcess.Binary))
        {
            Assert.Ignore($"{DaemonProcess.Binary} is missing (run `make build`)");
        }

        _dir = Directory.CreateTempSubdirectory("inspatialfs-oci-").FullName;
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private static ShellResult OciSpec(string arguments) => Shell.Run($"'{DaemonProcess.Binary}' oci-spec {arguments}", TimeSpan.FromSeconds(60));

    [Test]
    public void The_configs_level_and_memory_limit_shape_the_fragment()
    {
        string config = Path.Combine(_dir, "web.yaml");
        Directory.CreateDirectory(Path.Combine(_dir, "image"));
        File.WriteAllText(config, $"""
            name: web
            mountpoint: {_dir}/mnt
            mounts:
              - {"{"} path: /, source: {_dir}/image {"}"}
            isolation: enhanced
            resources: {"{"} memory: 256MiB {"}"}
            """);
        ShellResult r = OciSpec($"--config '{config}'");
        Assert.That(r.ExitCode, Is.Zero, r.ToString());
        JsonNode fragment = JsonNode.Parse(r.StdOut)!;
        Assert.That(fragment["annotations"]!["io.inspatialfs.isolation"]!.ToString(), Is.EqualTo("enhanced"));
        Assert.That(fragment["linux"]!["resources"]!["memory"]!["limit"]!.GetValue<long>(), Is.EqualTo(256L << 20));

        ShellResult overridden = OciSpec($"--config '{config}' --isolation maximum");
        Assert.That(JsonNode.Parse(overridden.StdOut)!["annotations"]!["io.inspatialfs.isolation"]!.ToString(), Is.EqualTo("maximum"), "--isolation wins over the config");
    }

    [Test]
    public void A_bad_config_or_runtime_config_is_a_usage_error_naming_the_file()
    {
        string config = Path.Combine(_dir, "bad.yaml");
        File.WriteAllText(config, "isolation: paranoid\n");
        ShellResult bad = OciSpec($"--config '{config}'");
        Assert.That((bad.ExitCode, bad.StdOut), Is.EqualTo((2, "")));
        Assert.That(bad.StdErr, Does.Contain(config));

        string runtime = Path.Combine(_dir, "config.json");
        File.WriteAllText(runtime, "[1, 2]");
        ShellResult notAnObject = OciSpec($"--isolation standard --merge '{runtime}'");
        Assert.That(notAnObject.ExitCode, Is.EqualTo(2));
        Assert.That(notAnObject.StdErr, Does.Contain(runtime));
        Assert.That(OciSpec("--isolation lax").ExitCode, Is.EqualTo(2), "an unknown level");
    }
}
