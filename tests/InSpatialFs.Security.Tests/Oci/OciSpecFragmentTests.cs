using System.Diagnostics;
using System.Text.Json.Nodes;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Oci;
using InSpatialFs.Security.Policy;

namespace InSpatialFs.Security.Tests.Oci;

public sealed class OciSpecFragmentTests
{
    private static readonly string[] AlwaysDenied = ["mount", "umount2", "ptrace", "kexec_load", "kexec_file_load", "open_by_handle_at"];
    private static readonly ResourceLimits Limits = new() { MemoryBytes = 256L << 20, Cpus = 0.5, Pids = 64 };

    [TestCase(IsolationLevel.Standard)]
    [TestCase(IsolationLevel.Enhanced)]
    [TestCase(IsolationLevel.Maximum)]
    public void Fragment_carries_namespaces_limits_no_new_privs_and_seccomp(IsolationLevel level)
    {
        JsonObject f = JsonNode.Parse(OciSpecFragment.Generate(level, Limits))!.AsObject();
        Assert.That(f["process"]!["noNewPrivileges"]!.GetValue<bool>(), Is.True);
        Assert.That(f["linux"]!["namespaces"]!.AsArray().Select(n => n!["type"]!.GetValue<string>()), Does.Contain("network").And.Contain("pid"));
        Assert.That(f["linux"]!["resources"]!["memory"]!["limit"]!.GetValue<long>(), Is.EqualTo(256L << 20));
        Assert.That(f["linux"]!["resources"]!["cpu"]!["quota"]!.GetValue<long>(), Is.EqualTo(50_000));
        Assert.That(f["linux"]!["resources"]!["pids"]!["limit"]!.GetValue<long>(), Is.EqualTo(64));
        JsonNode seccomp = f["linux"]!["seccomp"]!;
        Assert.That(seccomp["defaultAction"]!.GetValue<string>(), Is.EqualTo("SCMP_ACT_ALLOW"));
        string[] denied = seccomp["syscalls"]![0]!["names"]!.AsArray().Select(n => n!.GetValue<string>()).ToArray();
        Assert.That(denied, Is.SupersetOf(AlwaysDenied));
        Assert.That(denied.Contains("mknod"), Is.EqualTo(level == IsolationLevel.Maximum));
        Assert.That(f["process"]!["capabilities"]!["bounding"]!.AsArray().Count, Is.EqualTo(OciSpecFragment.Capabilities(level).Count));
    }

    [Test]
    public void Capabilities_shrink_with_the_level()
    {
        Assert.That(OciSpecFragment.Capabilities(IsolationLevel.Standard), Is.SupersetOf(OciSpecFragment.Capabilities(IsolationLevel.Enhanced)));
        Assert.That(OciSpecFragment.Capabilities(IsolationLevel.Maximum), Is.Empty);
        Assert.That(OciSpecFragment.Capabilities(IsolationLevel.Standard), Does.Not.Contain("CAP_SYS_ADMIN"));
    }

    [Test]
    public void Merge_keeps_unrelated_keys_and_replaces_arrays()
    {
        JsonObject config = JsonNode.Parse("""{"root":{"path":"rootfs"},"process":{"args":["sh"],"noNewPrivileges":false},"linux":{"namespaces":[{"type":"pid"}]}}""")!.AsObject();
        OciSpecFragment.MergeInto(config, OciSpecFragment.Build(IsolationLevel.Enhanced, Limits));
        Assert.That(config["root"]!["path"]!.GetValue<string>(), Is.EqualTo("rootfs"));
        Assert.That(config["process"]!["args"]![0]!.GetValue<string>(), Is.EqualTo("sh"));
        Assert.That(config["process"]!["noNewPrivileges"]!.GetValue<bool>(), Is.True);
        Assert.That(config["linux"]!["namespaces"]!.AsArray().Count, Is.EqualTo(6));
    }
}

/// <summary>The merged spec runs a busybox container under runc: the fragment is accepted and enforced.</summary>
[NonParallelizable]
[Category("Mount")]
public sealed class OciSpecUnderRuncTests
{
    private string _bundle = "";
    private string _id = "";

    [SetUp]
    public void SetUp()
    {
        if (!File.Exists("/usr/sbin/runc") && !File.Exists("/usr/bin/runc")) Assert.Ignore("runc not installed (apt-get install runc)");
        if (!File.Exists("/usr/bin/busybox")) Assert.Ignore("busybox not installed (apt-get install busybox-static)");
        _bundle = Directory.CreateTempSubdirectory("inspatialfs-oci-").FullName;
        _id = "inspatialfs-oci-" + Guid.NewGuid().ToString("N")[..8];
        string rootfs = Path.Combine(_bundle, "rootfs");
        foreach (string d in new[] { "bin", "proc", "dev", "sys", "tmp", "mnt" }) Directory.CreateDirectory(Path.Combine(rootfs, d));
        File.Copy("/usr/bin/busybox", Path.Combine(rootfs, "bin", "busybox"));
        File.CreateSymbolicLink(Path.Combine(rootfs, "bin", "sh"), "busybox");
    }

    [TearDown]
    public void TearDown()
    {
        if (_id.Length > 0) Run("runc", ["delete", "--force", _id], out _);
        if (_bundle.Length > 0) Directory.Delete(_bundle, recursive: true);
    }

    private static int Run(string file, string[] args, out string output, string? cwd = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = cwd ?? "/" };
        foreach (string a in args) psi.ArgumentList.Add(a);
        using Process p = Process.Start(psi)!;
        Task<string> err = p.StandardError.ReadToEndAsync();
        output = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(60_000))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} timed out");
        }

        output += err.Result;
        return p.ExitCode;
    }

    [TestCase(IsolationLevel.Standard)]
    [TestCase(IsolationLevel.Maximum)]
    public void Runc_accepts_the_merged_spec_and_enforces_it(IsolationLevel level)
    {
        Assert.That(Run("runc", ["spec"], out string specOut, _bundle), Is.Zero, specOut);
        string configPath = Path.Combine(_bundle, "config.json");
        JsonObject config = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        OciSpecFragment.MergeInto(config, OciSpecFragment.Build(level, new ResourceLimits { MemoryBytes = 64L << 20, Cpus = 1, Pids = 32 }));
        config["process"]!["terminal"] = false;
        config["process"]!["args"] = new JsonArray("/bin/busybox", "sh", "-c",
            "grep NoNewPrivs /proc/self/status; grep CapEff /proc/self/status; /bin/busybox mount -t tmpfs none /mnt && echo MOUNTED || echo MOUNT-REFUSED");
        File.WriteAllText(configPath, config.ToJsonString());

        int rc = Run("runc", ["run", "--bundle", _bundle, _id], out string output);
        TestContext.Out.WriteLine(output);
        Assert.That(rc, Is.Zero, output);
        Assert.That(output, Does.Match(@"NoNewPrivs:\s+1"));
        Assert.That(output, Does.Contain("MOUNT-REFUSED").And.Not.Contain("MOUNTED\n"));
        if (level == IsolationLevel.Maximum) Assert.That(output, Does.Match(@"CapEff:\s+0000000000000000"));
    }
}
