using System.Diagnostics;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Host;
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
        for (int i = 0; i < 20; i++) _box.Fs.GetAttr(_box.Lookup(_box.Fs.RootIno, $"e{i}"), out _); // evict everything
        Assert.That(_box.Fs.CachedDescriptorCount, Is.LessThanOrEqualTo(4));
        Assert.That(_box.Fs.GetAttr(inner.Ino, out _), Is.EqualTo(Errno.OK), "getattr after eviction");
        Assert.That(_box.Fs.GetAttr(sub, out _), Is.EqualTo(Errno.OK), "getattr of the submount root after eviction");
        Assert.That(_box.ReadAll(inner.Ino), Is.EqualTo("on-tmpfs"));
        Assert.That(_box.Fs.Lookup(sub, B("inner"), out FuseAttr again), Is.EqualTo(Errno.OK));
        Assert.That(again.Ino, Is.EqualTo(inner.Ino));
    }

    [Test]
    public unsafe void A_handle_on_ext4_or_tmpfs_gives_the_inode_number_statx_gives_and_no_other_layout_is_guessed()
    {
        string onTmpfs = Path.Combine(_mountpoint, "f");
        string onSource = _box.Src("f");
        File.WriteAllText(onTmpfs, "");
        File.WriteAllText(onSource, "");
        foreach (string path in new[] { onTmpfs, onSource, _mountpoint })
        {
            (long magic, byte[] handle, ulong ino) = HandleOf(path);
            Assert.That(magic, Is.AnyOf(HandleInodes.Ext4Magic, HandleInodes.TmpfsMagic), $"{path}: the sandbox is on ext4 or tmpfs here");
            Assert.That(HandleInodes.TryInodeOf(magic, handle, out ulong decoded), Is.True, path);
            Assert.That(decoded, Is.EqualTo(ino), path);
            Assert.That(HandleInodes.TryInodeOf(0x58465342 /* XFS */, handle, out _), Is.False, "a filesystem not checked here is not decoded");
            Assert.That(HandleInodes.TryInodeOf(magic, handle.AsSpan(0, handle.Length - 1), out _), Is.False, "a length that disagrees");
        }

        Assert.That(HandleOf(onTmpfs).Magic, Is.EqualTo(HandleInodes.TmpfsMagic));
    }

    private static unsafe (long Magic, byte[] Handle, ulong Ino) HandleOf(string path)
    {
        byte* buf = stackalloc byte[8 + LibC.MAX_HANDLE_SZ];
        *(uint*)buf = LibC.MAX_HANDLE_SZ;
        int mountId;
        byte[] name = System.Text.Encoding.UTF8.GetBytes(path + "\0");
        StatX st;
        StatFsBuf fs;
        fixed (byte* n = name)
        {
            Assert.That(LibC.name_to_handle_at(LibC.AT_FDCWD, n, buf, &mountId, 0), Is.Zero, path);
            Assert.That(LibC.statx(LibC.AT_FDCWD, n, LibC.AT_SYMLINK_NOFOLLOW, LibC.STATX_BASIC_STATS, &st), Is.Zero, path);
        }

        Assert.That(LibC.statfs(path, &fs), Is.Zero, path);
        return (fs.Type, new ReadOnlySpan<byte>(buf, 8 + (int)*(uint*)buf).ToArray(), st.Ino);
    }
}
