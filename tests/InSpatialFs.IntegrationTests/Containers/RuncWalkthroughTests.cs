using System.Text.Json.Nodes;
using InSpatialFs.IntegrationTests.Security;
using InSpatialFs.TestKit.Containers;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Containers;

/// <summary>
/// The README's "Running a runc container" walk-through, command for command (only the paths differ): config validate,
/// mount, `runc spec`, `oci-spec --config --merge`, a jq edit of the process, `runc run`, `ctl summary`. The merged
/// config needs no hand edit of root.path or linux.cgroupsPath (issue 17).
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class RuncWalkthroughTests
{
    private string _work = "";
    private string _name = "";
    private DaemonProcess? _daemon;

    [SetUp]
    public void Prepare()
    {
        string? why = RuncBundle.WhyCannotRun() ?? (Shell.Has("jq") ? null : "jq is not installed (make deps installs it)");
        if (why != null)
        {
            Assert.Ignore(why);
        }

        _work = Path.Combine("/var/tmp", "inspatialfs-walk-" + Guid.NewGuid().ToString("N")[..8]);
        _name = "demo-" + Path.GetFileName(_work)[^8..];
        Directory.CreateDirectory(_work);
    }

    [TearDown]
    public void Cleanup()
    {
        Shell.Run($"runc delete -f {_name} 2>/dev/null");
        _daemon?.Dispose();
        Mounts.ForceUnmount(_work + "/control");
        Mounts.ForceUnmount(_work + "/rootfs");
        Shell.Run($"rmdir /sys/fs/cgroup/inspatialfs/{_name} 2>/dev/null; rmdir /sys/fs/cgroup/inspatialfs 2>/dev/null; rm -rf '{_work}'");
    }

    [Test]
    public void The_readme_walkthrough_runs_a_container_on_the_mount_in_its_cgroup_and_records_its_denial()
    {
        string w = _work;
        Shell.Check($"'{DaemonProcess.RepoRoot}/scripts/make-rootfs.sh' '{w}/image'", TimeSpan.FromMinutes(3));
        Shell.Check($"echo 'root:x:0:0::/root:/bin/sh' > '{w}/image/etc/shadow'");
        string config = Path.Combine(w, "demo.yaml");
        File.WriteAllText(config, $$"""
            name: {{_name}}
            mountpoint: {{w}}/rootfs
            control: {{w}}/control
            state_dir: {{w}}/state
            mounts:
              - { path: /, source: {{w}}/image }
              - { path: /tmp, memory: { size: 64MiB } }
            paths: { forbidden: [/etc/shadow] }
            container: { cgroup: /inspatialfs/{{_name}} }
            """);
        string bin = DaemonProcess.Binary;
        ShellResult valid = Shell.Run($"'{bin}' config validate '{config}'");
        Assert.That(valid.ExitCode, Is.Zero, valid.ToString());

        _daemon = DaemonProcess.Start(w + "/rootfs", ["--config", config], appendMountPoint: false);
        ControlFiles.WaitUntilServing(w + "/control", _daemon);

        Shell.Check($"""
            set -e
            mkdir -p '{w}/bundle' && cd '{w}/bundle'
            runc spec
            '{bin}' oci-spec --config '{config}' --merge config.json > config.merged.json
            jq '.process.terminal = false | .process.args = ["sh", "-c", "echo hello > /tmp/greeting; cat /tmp/greeting; cat /etc/shadow || echo denied"]' config.merged.json > config.json
            """);
        JsonNode merged = JsonNode.Parse(File.ReadAllText(Path.Combine(w, "bundle", "config.json")))!;
        Assert.That(merged["root"]!["path"]!.GetValue<string>(), Is.EqualTo(w + "/rootfs"), "root.path is the mountpoint");
        Assert.That(merged["linux"]!["cgroupsPath"]!.GetValue<string>(), Is.EqualTo("/inspatialfs/" + _name), "cgroupsPath is container.cgroup");

        ShellResult run = Shell.Run($"cd '{w}/bundle' && runc run {_name}", TimeSpan.FromMinutes(2));
        Assert.That(run.ExitCode, Is.Zero, run.ToString());
        Assert.That(run.StdOut, Does.Contain("hello").And.Contain("denied"), "the container ran on the mount; the forbidden read was refused");
        Assert.That(run.StdOut, Does.Not.Contain("root:x:0:0"));

        JsonObject incident = ControlFiles.WaitForIncident(w + "/control", i => i["source"]?.ToString() == "forbidden:/etc/shadow", "for the container's read");
        Assert.That(incident.ContainsKey("container"), Is.True, "the reader was a container member (by its cgroup): " + incident.ToJsonString());
        ShellResult summary = Shell.Run($"'{bin}' ctl '{w}/control' summary");
        Assert.That(summary.ExitCode, Is.Zero, summary.ToString());
        Assert.That(summary.StdOut, Does.Contain("forbidden:/etc/shadow"));
    }
}
