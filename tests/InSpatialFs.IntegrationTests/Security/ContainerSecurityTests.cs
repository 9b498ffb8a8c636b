using System.Text.Json.Nodes;
using InSpatialFs.IntegrationTests.Containers;
using InSpatialFs.TestKit.Containers;
using InSpatialFs.TestKit.Processes;
using static InSpatialFs.IntegrationTests.Security.ControlFiles;

namespace InSpatialFs.IntegrationTests.Security;

/// <summary>The maximum-level policy the container fixtures share: the image's system directories read-only, /tmp and /work writable.</summary>
internal static class ContainerPolicy
{
    public static string Maximum(string suspendOn) => $$"""
        isolation: maximum
        response: { suspend_on: {{suspendOn}} }
        paths:
          forbidden: [/etc/secret]
          readonly: [/bin/**, /sbin/**, /usr/**, /etc/**, /proc, /sys, /dev]
          allowed: [/tmp/**, /work/**]
        """;

    public static ContainerRootfs Start(string suspendOn)
    {
        string? why = RuncBundle.WhyCannotRun();
        if (why != null)
        {
            Assert.Ignore(why);
        }

        ContainerRootfs rootfs = ContainerRootfs.Start(Maximum(suspendOn), directUsr: false);
        WaitUntilServing(rootfs.ControlDirectory, rootfs.Daemon);
        Directory.CreateDirectory(Path.Combine(rootfs.Image, "work"));
        File.WriteAllText(Path.Combine(rootfs.Image, "etc", "secret"), "TOP-SECRET\n");
        return rootfs;
    }

    public static string InstanceName(ContainerRootfs rootfs) => Status(rootfs.ControlDirectory)["name"];
}

/// <summary>
/// Issue 4, "Tests": a runc container under maximum isolation. Suspension is raised to critical here so the
/// container runs to completion and the errnos are visible; <see cref="ContainerSuspendTests"/> covers suspension.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class MaximumIsolationContainerTests
{
    private ContainerRootfs _rootfs = null!;

    [OneTimeSetUp]
    public void Mount() => _rootfs = ContainerPolicy.Start("critical");

    [OneTimeTearDown]
    public void Unmount() => _rootfs?.Dispose();

    private ShellResult RunInContainer(string script)
    {
        using RuncBundle bundle = RuncBundle.Create(_rootfs.MountPoint, ["/bin/sh", "-c", script]);
        return bundle.Run(TimeSpan.FromSeconds(60));
    }

    [Test]
    public void A_file_written_to_tmp_cannot_be_executed()
    {
        ShellResult run = RunInContainer("""
            cp /bin/busybox /tmp/dropped && chmod 0755 /tmp/dropped && echo copied
            /tmp/dropped echo ran-the-dropped-file
            echo "exec=$?"
            /bin/busybox echo image-binary-runs
            """);
        Assert.That(run.ExitCode, Is.Zero, run + "\n" + _rootfs.Daemon.Output);
        Assert.That(run.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(new[] { "copied", "exec=126", "image-binary-runs" }), run.ToString());
        Assert.That(run.StdErr, Does.Contain("/tmp/dropped: Operation not permitted"));

        JsonObject incident = WaitForIncident(_rootfs.ControlDirectory,
            i => Str(i, "source") == "privilege:exec_runtime_written" && Str(i["evidence"]?[0], "fs.path") == "/tmp/dropped", "exec of /tmp/dropped");
        Assert.That(Str(incident, "container"), Is.EqualTo(ContainerPolicy.InstanceName(_rootfs)), "the caller is recognised as a container process");
        Assert.That(Str(incident, "severity"), Is.EqualTo("high"));
        Assert.That(Str(incident["evidence"]?[0], "evt.is_exec"), Is.EqualTo("true"));
    }

    [Test]
    public void Chmod_u_plus_s_is_refused_with_EPERM()
    {
        ShellResult run = RunInContainer("""
            echo '#!/bin/sh' > /work/tool && echo created
            chmod u+s /work/tool; echo "chmod=$?"
            chmod 0700 /work/tool; echo "plain=$?"
            """);
        Assert.That(run.ExitCode, Is.Zero, run.ToString());
        Assert.That(run.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(new[] { "created", "chmod=1", "plain=0" }), run.ToString());
        Assert.That(run.StdErr, Does.Contain("Operation not permitted"));
        Assert.That(Shell.Run($"stat -c %A '{_rootfs.Image}/work/tool'").StdOut.Trim(), Is.EqualTo("-rwx------"), "no setuid bit reached the host file");

        JsonObject incident = WaitForIncident(_rootfs.ControlDirectory,
            i => Str(i, "source") == "privilege:setuid" && Str(i["evidence"]?[0], "fs.path") == "/work/tool", "chmod u+s of /work/tool");
        Assert.That((Str(incident, "process"), Str(incident, "container")), Is.EqualTo(("chmod", ContainerPolicy.InstanceName(_rootfs))));
        Assert.That(Str(incident, "response"), Is.EqualTo("deny"), "suspend_on is critical in this fixture");
    }

    [Test]
    public void Runc_accepts_the_merged_oci_spec_of_the_level_and_the_container_runs_under_it()
    {
        using RuncBundle bundle = RuncBundle.Create(_rootfs.MountPoint, ["/bin/sh", "-c", """
            grep -E '^(NoNewPrivs|Seccomp|CapEff):' /proc/self/status
            ls /sys/class/net
            echo done
            """]);
        ShellResult merged = Shell.Run($"'{DaemonProcess.Binary}' oci-spec --isolation maximum --merge '{bundle.ConfigPath}' > '{bundle.ConfigPath}.merged' && mv '{bundle.ConfigPath}.merged' '{bundle.ConfigPath}'",
            TimeSpan.FromSeconds(60));
        Assert.That(merged.ExitCode, Is.Zero, merged.ToString());
        JsonObject config = JsonNode.Parse(File.ReadAllText(bundle.ConfigPath))!.AsObject();
        Assert.That(config["annotations"]?["io.inspatialfs.isolation"]?.ToString(), Is.EqualTo("maximum"));
        Assert.That(config["root"]?["path"]?.ToString(), Is.EqualTo(_rootfs.MountPoint), "the bundle's own keys survive the merge");

        ShellResult run = bundle.Run(TimeSpan.FromSeconds(60));
        Assert.That(run.ExitCode, Is.Zero, run.ToString());
        string[] lines = run.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => string.Join(' ', l.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))).ToArray();
        Assert.That(lines, Is.EqualTo(new[] { "CapEff: 0000000000000000", "NoNewPrivs: 1", "Seccomp: 2", "lo", "done" }),
            "no capabilities, no_new_privs, a seccomp filter, and a network namespace of its own: " + run);
    }
}

/// <summary>
/// Issue 4, "Tests": with suspend_on high, a forbidden read by a container process freezes the container's cgroup
/// (runc reports it paused, the v1 freezer FROZEN) until an operator resumes it; a host process touching the same
/// mount is denied and blocked, never frozen.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class ContainerSuspendTests
{
    private ContainerRootfs _rootfs = null!;

    [OneTimeSetUp]
    public void Mount() => _rootfs = ContainerPolicy.Start("high");

    [OneTimeTearDown]
    public void Unmount() => _rootfs?.Dispose();

    [TearDown]
    public void LiftResponses() => Ctl(_rootfs.ControlDirectory, "resume");

    [Test]
    public void A_forbidden_read_suspends_the_container_until_it_is_resumed()
    {
        // After the refused read the script waits (without touching anything the policy refuses) until the test
        // writes /work/go, which it does only once it has seen the container paused.
        File.Delete(Path.Combine(_rootfs.Image, "work", "go"));
        using RuncBundle bundle = RuncBundle.Create(_rootfs.MountPoint, ["/bin/sh", "-c", """
            echo start
            cat /etc/secret
            echo "cat=$?"
            until { read go < /work/go; } 2>/dev/null; do usleep 20000; done
            echo "go=$go"
            echo done
            """]);
        Task<ShellResult> run = Task.Run(() => bundle.Run(TimeSpan.FromSeconds(90)));
        try
        {
            Assert.That(Eventually(() => bundle.State() == "paused" || run.IsCompleted, TimeSpan.FromSeconds(30)), Is.True, "runc state never reported paused");
            Assert.That(bundle.State(), Is.EqualTo("paused"), () => "the container finished without being suspended: " + (run.IsCompleted ? run.Result.ToString() : ""));
            int pid = bundle.Pid() ?? throw new AssertionException("no container pid");
            string freezer = FreezerStateFile(pid);
            Assert.That(File.ReadAllText(freezer).Trim(), Is.EqualTo("FROZEN"), freezer);

            Dictionary<string, string> status = Status(_rootfs.ControlDirectory);
            Assert.That(status["state"], Is.EqualTo("suspended"));
            string name = ContainerPolicy.InstanceName(_rootfs);
            JsonObject incident = WaitForIncident(_rootfs.ControlDirectory, i => Str(i, "source") == "forbidden:/etc/secret" && Str(i, "container") == name, "the container's forbidden read");
            Assert.That(Str(incident, "response"), Is.EqualTo("deny, suspend"));
            Assert.That(run.IsCompleted, Is.False, "a frozen container cannot finish");

            ShellResult resume = Ctl(_rootfs.ControlDirectory, "resume");
            Assert.That(resume.ExitCode, Is.Zero, resume.ToString());
            // The freezer may pass through THAWING on a loaded machine; the container waits for /work/go, so its cgroup is still there.
            Assert.That(Eventually(() => File.ReadAllText(freezer).Trim() == "THAWED", TimeSpan.FromSeconds(10)), Is.True,
                () => "freezer state after resume: " + File.ReadAllText(freezer).Trim());
            Assert.That(bundle.State(), Is.EqualTo("running"));
            File.WriteAllText(Path.Combine(_rootfs.Image, "work", "go"), "go\n");

            Assert.That(run.Wait(TimeSpan.FromSeconds(60)), Is.True, "the container did not finish after resume");
            ShellResult result = run.Result;
            Assert.That(result.ExitCode, Is.Zero, result.ToString());
            Assert.That(result.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(new[] { "start", "cat=1", "go=go", "done" }), result.ToString());
            Assert.That(bundle.State() is null or "stopped", Is.True);
            Assert.That(Status(_rootfs.ControlDirectory)["state"], Is.EqualTo("running"));
        }
        finally
        {
            File.WriteAllText(Path.Combine(_rootfs.Image, "work", "go"), "go\n");
            Ctl(_rootfs.ControlDirectory, "resume");
            run.Wait(TimeSpan.FromSeconds(60));
        }
    }

    [Test]
    public void A_host_process_denied_on_the_mount_is_blocked_but_never_frozen()
    {
        int me = Environment.ProcessId;
        int outputBefore = _rootfs.Daemon.Output.Length;
        string secret = Path.Combine(_rootfs.MountPoint, "etc", "secret");
        Assert.That(TestKit.Posix.PosixCalls.Open(secret, 0, 0, out _), Is.EqualTo(Interop.Errno.EACCES), "the test process itself reads the forbidden file");

        // The kernel reports the calling thread's id: one of this process's tasks.
        JsonObject incident = WaitForIncident(_rootfs.ControlDirectory,
            i => Str(i, "source") == "forbidden:/etc/secret" && Directory.Exists($"/proc/{me}/task/{Str(i, "pid")}"), "the test process's read");
        Assert.That(Str(incident, "response"), Is.EqualTo("deny, block-process (host process: suspend refused)"));
        Assert.That(incident.ContainsKey("container"), Is.False, "a host process is not the container");

        Dictionary<string, string> status = Status(_rootfs.ControlDirectory);
        Assert.That((status["state"], status["blocked_processes"]), Is.EqualTo(("running", "1")), "blocked, not suspended");
        foreach (string state in FreezerStatesAround(me))
        {
            Assert.That(state, Is.Not.EqualTo("FROZEN").And.Not.EqualTo("1"), "a cgroup holding the test process was frozen");
        }

        Assert.That(_rootfs.Daemon.Output[outputBefore..], Does.Not.Contain("container suspended"));

        // Blocked: every further op of this process fails, until resume lifts the block.
        string hosts = Path.Combine(_rootfs.MountPoint, "etc", "hosts");
        Assert.That(TestKit.Posix.PosixCalls.Open(hosts, 0, 0, out _), Is.EqualTo(Interop.Errno.EPERM));
        Assert.That(Ctl(_rootfs.ControlDirectory, "resume").ExitCode, Is.Zero);
        Assert.That(TestKit.Posix.PosixCalls.Open(hosts, 0, 0, out int fd), Is.EqualTo(Interop.Errno.OK));
        TestKit.Posix.PosixCalls.Close(fd);
    }

    /// <summary>freezer.state of the v1 freezer cgroup of <paramref name="pid"/>.</summary>
    private static string FreezerStateFile(int pid)
    {
        string path = File.ReadAllLines($"/proc/{pid}/cgroup").Select(l => l.Split(':', 3)).First(p => p[1].Split(',').Contains("freezer"))[2];
        return Path.Combine("/sys/fs/cgroup/freezer", path.TrimStart('/'), "freezer.state");
    }

    /// <summary>The freeze state of every cgroup (v1 freezer and v2) that holds <paramref name="pid"/>, from its own up to the root.</summary>
    private static IEnumerable<string> FreezerStatesAround(int pid)
    {
        foreach (string[] line in File.ReadAllLines($"/proc/{pid}/cgroup").Select(l => l.Split(':', 3)))
        {
            (string root, string file) = line[1].Split(',').Contains("freezer") ? ("/sys/fs/cgroup/freezer", "freezer.state")
                : line[0] == "0" ? (File.Exists("/sys/fs/cgroup/cgroup.controllers") ? "/sys/fs/cgroup" : "/sys/fs/cgroup/unified", "cgroup.freeze")
                : ("", "");
            if (root.Length == 0)
            {
                continue;
            }

            for (string? dir = line[2]; dir != null; dir = dir == "/" ? null : Path.GetDirectoryName(dir))
            {
                string state = Path.Combine(root, dir.TrimStart('/'), file);
                if (File.Exists(state))
                {
                    yield return File.ReadAllText(state).Trim();
                }
            }
        }
    }
}
