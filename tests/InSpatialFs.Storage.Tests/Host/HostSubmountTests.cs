using System.Diagnostics;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using static InSpatialFs.Storage.Tests.Host.HostSandbox;

namespace InSpatialFs.Storage.Tests.Host;

/// <summary>A filesystem mounted inside the source: its nodes reopen from handles through a descriptor on that mount.</summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class HostSubmountTests
{
    private HostSandbox _box = null!;
    private string _mountpoint = "";

    [SetUp]
    public void SetUp()
    {
        _box = new HostSandbox(cache: 4);
        _mountpoint = _box.Src("sub");
        Directory.CreateDirectory(_mountpoint);
        using var p = Process.Start("mount", ["-t", "tmpfs", "-o", "size=4m", "isfs-test", _mountpoint]);
        p.WaitForExit();
        if (p.ExitCode != 0) Assert.Ignore("cannot mount tmpfs here");
    }

    [TearDown]
    public void TearDown()
    {
        _box.Fs.Dispose();
        using (var p = Process.Start("umount", ["-l", _mountpoint])) p.WaitForExit();
        _box.Dispose();
    }

    [Test]
    public void Nodes_on_a_submount_survive_descriptor_eviction()
    {
        File.WriteAllText(Path.Combine(_mountpoint, "inner"), "on-tmpfs");
        ulong sub = _box.Lookup(_box.Fs.RootIno, "sub");
        Assert.That(_box.Fs.Lookup(sub, B("inner"), out FuseAttr inner), Is.EqualTo(Errno.OK));
        Assert.That(_box.Fs.Retain(inner.Ino), Is.True); // held through the evictions, as the kernel would
        for (int i = 0; i < 20; i++) File.WriteAllText(_box.Src($"e{i}"), "");
        for (int i = 0; i < 20; i++) _box.Lookup(_box.Fs.RootIno, $"e{i}"); // evict everything
        Assert.That(_box.Fs.CachedDescriptorCount, Is.LessThanOrEqualTo(4));
        Assert.That(_box.Fs.GetAttr(inner.Ino, out _), Is.EqualTo(Errno.OK), "getattr after eviction");
        Assert.That(_box.Fs.GetAttr(sub, out _), Is.EqualTo(Errno.OK), "getattr of the submount root after eviction");
        Assert.That(_box.ReadAll(inner.Ino), Is.EqualTo("on-tmpfs"));
        Assert.That(_box.Fs.Lookup(sub, B("inner"), out FuseAttr again), Is.EqualTo(Errno.OK));
        Assert.That(again.Ino, Is.EqualTo(inner.Ino));
    }
}
