using InSpatialFs.IntegrationTests.Containers;
using InSpatialFs.TestKit.Containers;
using InSpatialFs.TestKit.Processes;
using static InSpatialFs.IntegrationTests.Security.ControlFiles;

namespace InSpatialFs.IntegrationTests.PolicyIntegrity;

/// <summary>
/// Issue 11, "Set-id safety": container root (uid 0 without CAP_FSETID, runc's default) overwrites a setuid-root file on
/// a writable DirectFS mount. Kernel passthrough would write it with the daemon's credentials and keep the bit, so
/// any host user reaching the image would run the container's code as root.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class SetIdSafetyTests
{
    private ContainerRootfs _rootfs = null!;
    private string _data = "";

    [OneTimeSetUp]
    public void Mount()
    {
        if (RuncBundle.WhyCannotRun() is string why) Assert.Ignore(why);
        string work = Path.Combine("/var/tmp", "inspatialfs-setid-" + Guid.NewGuid().ToString("N")[..8]);
        _data = Path.Combine(work, "data");
        Directory.CreateDirectory(_data);
        _rootfs = ContainerRootfs.Start($$"""
            isolation: standard
            """, extraMounts: $"  - {{ path: /data, source: {_data}, direct: true }}");
        WaitUntilServing(_rootfs.ControlDirectory, _rootfs.Daemon);
    }

    [OneTimeTearDown]
    public void Unmount()
    {
        _rootfs?.Dispose();
        Shell.Run($"rm -rf '{Path.GetDirectoryName(_data)}'");
    }

    private string HostMode(string name) => Shell.Check($"stat -c %a '{_data}/{name}'").Trim();

    [Test]
    public void Under_refuse_setuid_a_container_write_drops_the_bit_even_with_CAP_FSETID()
    {
        // The kernel keeps set-id bits for a writer with CAP_FSETID (Docker's set, and the standard OCI fragment, grant it).
        // refuse_setuid promises the container cannot leave a set-id file of its own content: the bit goes at its open.
        foreach (string name in new[] { "fsetid-cat", "fsetid-append", "fsetid-trunc" })
        {
            File.WriteAllText(Path.Combine(_data, name), "original\n");
        }

        Shell.Check($"cd '{_data}' && chmod 4755 fsetid-cat fsetid-append && chmod 2755 fsetid-trunc");
        using RuncBundle bundle = RuncBundle.Create(_rootfs.MountPoint, ["/bin/sh", "-c", """
            grep CapEff /proc/self/status
            cat /bin/busybox > /data/fsetid-cat; echo "cat=$?"
            echo payload >> /data/fsetid-append; echo "append=$?"
            truncate -s 0 /data/fsetid-trunc; echo "trunc=$?"
            """], config =>
        {
            var caps = new System.Text.Json.Nodes.JsonArray([.. new[] { "CAP_FSETID", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER" }.Select(c => System.Text.Json.Nodes.JsonValue.Create(c))]);
            System.Text.Json.Nodes.JsonObject capabilities = config["process"]!["capabilities"]!.AsObject();
            foreach (string set in new[] { "bounding", "effective", "permitted" }) capabilities[set] = caps.DeepClone();
        });
        ShellResult run = bundle.Run(TimeSpan.FromSeconds(60));
        string capEff = run.StdOut.Split('\n').Single(l => l.StartsWith("CapEff:", StringComparison.Ordinal))[7..].Trim();
        Assert.That(Convert.ToUInt64(capEff, 16) & (1UL << 4), Is.Not.Zero, "precondition: this container root has CAP_FSETID");
        Assert.That(run.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.SupersetOf(new[] { "cat=0", "append=0", "trunc=0" }), run.ToString());
        Assert.That(HostMode("fsetid-cat"), Is.EqualTo("755"), "an overwrite");
        Assert.That(HostMode("fsetid-append"), Is.EqualTo("755"), "an append");
        Assert.That(HostMode("fsetid-trunc"), Is.EqualTo("755"), "a truncate by path (setgid with group execute)");
        Assert.That(File.ReadAllText(Path.Combine(_data, "fsetid-append")), Is.EqualTo("original\npayload\n"), "the writes themselves went through");
    }

    [Test]
    public void Overwriting_a_setuid_root_file_on_a_direct_mount_clears_the_bit_on_the_host()
    {
        foreach (string name in new[] { "suid-cat", "suid-trunc", "suid-falloc", "suid-falloc-root", "sgid-x", "plain" })
        {
            File.WriteAllText(Path.Combine(_data, name), "original\n");
        }

        Shell.Check($"cd '{_data}' && chmod 4755 suid-cat suid-trunc suid-falloc suid-falloc-root && chmod 2755 sgid-x && chmod 0755 plain");
        using RuncBundle bundle = RuncBundle.Create(_rootfs.MountPoint, ["/bin/sh", "-c", """
            grep CapEff /proc/self/status
            cat /bin/busybox > /data/suid-cat; echo "cat=$?"
            : > /data/suid-trunc; echo "trunc=$?"
            fallocate -l 65536 /data/suid-falloc; echo "falloc=$?"
            echo payload >> /data/sgid-x; echo "append=$?"
            echo payload > /data/plain; echo "plain=$?"
            """]);
        ShellResult run = bundle.Run(TimeSpan.FromSeconds(60));
        string capEff = run.StdOut.Split('\n').Single(l => l.StartsWith("CapEff:", StringComparison.Ordinal))[7..].Trim();
        Assert.That(Convert.ToUInt64(capEff, 16) & (1UL << 4), Is.Zero, "precondition: container root has no CAP_FSETID");
        Assert.That(run.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.SupersetOf(new[] { "cat=0", "trunc=0", "falloc=0", "append=0", "plain=0" }), run.ToString());

        Assert.That(HostMode("suid-cat"), Is.EqualTo("755"), "the setuid bit went with the overwrite");
        Assert.That(HostMode("suid-trunc"), Is.EqualTo("755"), "O_TRUNC by a caller without CAP_FSETID clears it too");
        Assert.That(HostMode("suid-falloc"), Is.EqualTo("755"), "fallocate changes the file too (a local filesystem drops the bit)");
        Assert.That(new FileInfo(Path.Combine(_data, "suid-falloc")).Length, Is.EqualTo(65536), "the fallocate itself went through");
        Shell.Check($"fallocate -l 65536 '{_rootfs.MountPoint}/data/suid-falloc-root'");
        Assert.That(HostMode("suid-falloc-root"), Is.EqualTo("4755"), "positive control: a caller with CAP_FSETID (host root) keeps it, as on a local filesystem");
        Assert.That(HostMode("sgid-x"), Is.EqualTo("755"), "setgid with group execute goes as well");
        Assert.That(HostMode("plain"), Is.EqualTo("755"), "positive control: ordinary modes are untouched");
        Assert.That(new FileInfo(Path.Combine(_data, "suid-cat")).Length, Is.EqualTo(new FileInfo("/bin/busybox").Length), "the write itself went through");
        Assert.That(File.ReadAllText(Path.Combine(_data, "plain")), Is.EqualTo("payload\n"));
    }
}
