using InSpatialFs.Interop;
using InSpatialFs.Storage.Posix;
using InSpatialFs.TestKit.Posix;

namespace InSpatialFs.Storage.Tests.Contract;

/// <summary>
/// The control for the contract: the tables of Storage/Posix checked against the running kernel on a plain temp
/// directory, so the core cannot drift from what a kernel filesystem answers without a test failing here.
/// </summary>
[TestFixture]
public sealed class KernelReferenceTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(Path.GetTempPath(), "isfs-kernel-ref-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
        LibC.EnsureThreadUmaskZero();
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private string P(string name) => Path.Combine(_dir, name);

    [Test]
    public void The_kernel_serves_every_fallocate_mode_the_core_accepts_and_refuses_every_one_it_calls_invalid()
    {
        string path = P("f");
        Assert.That(PosixCalls.Open(path, LibC.O_RDWR | LibC.O_CREAT, 0x1A4, out int fd), Is.EqualTo(Errno.OK));
        try
        {
            if (PosixCalls.Fallocate(fd, FallocateMode.ZeroRange, 0, 4096) == Errno.EOPNOTSUPP)
            {
                Assert.Ignore("the temp directory's filesystem has no ZERO_RANGE (tmpfs); the reference is ext4");
            }

            var accepted = new List<int>();
            foreach (int mode in Enumerable.Range(0, 0x100).Append(0x100).Append(0x4000_0000))
            {
                Assert.That(PosixCalls.PWrite(fd, new byte[65536], 0), Is.EqualTo(Errno.OK));
                Errno kernel = PosixCalls.Fallocate(fd, mode, 4096, 8192);
                if (FallocateMode.Check(mode, 4096, 8192) == Errno.OK)
                {
                    Assert.That(kernel, Is.EqualTo(Errno.OK), $"mode 0x{mode:x}: the core accepts it");
                    accepted.Add(mode);
                }
                else if (!FallocateMode.IsValidForKernel(mode))
                {
                    Assert.That(kernel, Is.EqualTo(Errno.EOPNOTSUPP), $"mode 0x{mode:x}: the core calls it invalid");
                }
            }

            Assert.That(accepted, Is.EquivalentTo(new[] { 0, 1, 3, 0x10, 0x11 }), "the five modes FUSE forwards");
            foreach ((int mode, long offset, long length) in new[] { (0, -1L, 10L), (0, 0L, 0L), (FallocateMode.PunchHole, 0L, 0L), (0x100, -1L, 1L) })
            {
                Assert.That(FallocateMode.Check(mode, offset, length), Is.EqualTo(PosixCalls.Fallocate(fd, mode, offset, length)),
                    $"range check of mode 0x{mode:x} at {offset}+{length}");
            }
        }
        finally
        {
            PosixCalls.Close(fd);
        }
    }

    [Test]
    public void The_kernel_refuses_the_rename_flags_the_core_calls_invalid()
    {
        File.WriteAllText(P("a"), "a");
        File.WriteAllText(P("b"), "b");
        uint[] all = [0, 1, 2, 3, 4, 5, 6, 7, 8, 0x10, 0x8000_0000];
        foreach (uint flags in all.Where(f => !RenameFlags.IsValidForKernel(f)))
        {
            Assert.That(PosixCalls.Rename(P("a"), P("b"), flags), Is.EqualTo(Errno.EINVAL), $"flags 0x{flags:x}");
            Assert.That(RenameFlags.Check(flags), Is.EqualTo(Errno.EINVAL));
        }

        Assert.That(RenameFlags.IsValidForKernel(RenameFlags.Whiteout), Is.True, "valid to the kernel; refused by the core for want of whiteouts");
        Assert.That(PosixCalls.Rename(P("a"), P("b"), RenameFlags.Exchange), Is.EqualTo(Errno.OK), "the positive control");
        Assert.That(File.ReadAllText(P("a")), Is.EqualTo("b"));
    }

    [TestCase("")]
    [TestCase("user.")]
    [TestCase("trusted.")]
    [TestCase("user")]
    [TestCase("foo.bar")]
    [TestCase("system.foo")]
    [TestCase("user.ok")]
    [TestCase("trusted.ok")]
    [TestCase("user.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")]
    [Category("Mount")]
    public void The_kernel_gives_the_cores_errno_for_an_xattr_name(string name)
    {
        string path = P("f");
        File.WriteAllText(path, "");
        Errno core = XattrName.Check(System.Text.Encoding.UTF8.GetBytes(name), out XattrNamespace ns);
        if (core == Errno.OK && ns == XattrNamespace.System)
        {
            core = Errno.EOPNOTSUPP; // the backends serve no system.* attribute; the kernel knows no system.foo either
        }

        Assert.That(PosixCalls.SetXattr(path, name, "v"u8, 0), Is.EqualTo(core));
    }

    [Test]
    public void The_kernel_keeps_user_xattrs_off_symlinks_as_the_core_does()
    {
        File.WriteAllText(P("f"), "");
        File.CreateSymbolicLink(P("l"), "f");
        Assert.Multiple(() =>
        {
            Assert.That(PosixCalls.SetXattr(P("l"), "user.x", "v"u8, 0), Is.EqualTo(XattrName.CheckNode(XattrNamespace.User, LibC.S_IFLNK, write: true)));
            Assert.That(PosixCalls.GetXattr(P("l"), "user.x", new byte[4], out _), Is.EqualTo(XattrName.CheckNode(XattrNamespace.User, LibC.S_IFLNK, write: false)));
            Assert.That(PosixCalls.SetXattr(P("f"), "user.x", "v"u8, 0), Is.EqualTo(Errno.OK), "the positive control");
        });
    }

    [Test]
    [Category("Mount")]
    public void The_kernel_masks_mkdir_and_passes_on_a_setgid_directory_as_the_core_does()
    {
        Assert.That(PosixCalls.Mkdir(P("all"), 0xFFF), Is.EqualTo(Errno.OK));
        Assert.That(PosixCalls.Lstat(P("all"), out var all), Is.EqualTo(Errno.OK));
        Assert.That(all.Mode & 0xFFF, Is.EqualTo(SetIdBits.NewNodePermissions(LibC.S_IFDIR, 0xFFF, 0x1ED)));

        Assert.That(PosixCalls.Mkdir(P("shared"), 0x1FF), Is.EqualTo(Errno.OK));
        Assert.That(PosixCalls.Lchown(P("shared"), 0, 55), Is.EqualTo(Errno.OK));
        Assert.That(PosixCalls.Chmod(P("shared"), 0x5FF), Is.EqualTo(Errno.OK));
        Assert.That(PosixCalls.Mkdir(P("shared/sub"), 0x1ED), Is.EqualTo(Errno.OK));
        Assert.That(PosixCalls.Lstat(P("shared/sub"), out var sub), Is.EqualTo(Errno.OK));
        Assert.That(sub.Mode & 0xFFF, Is.EqualTo(SetIdBits.NewNodePermissions(LibC.S_IFDIR, 0x1ED, LibC.S_IFDIR | 0x5FF)));
        Assert.That(sub.Gid, Is.EqualTo(SetIdBits.NewNodeGid(LibC.S_IFDIR | 0x5FF, 55, 0)));
    }

    [TestCase(0xDEDu, LibC.S_IFREG)] // 06755
    [TestCase(0xDE5u, LibC.S_IFREG)] // 06745: no group execute
    [TestCase(0x9EDu, LibC.S_IFREG)] // 04755
    [TestCase(0xDFFu, LibC.S_IFIFO)]
    [TestCase(0xDFFu, LibC.S_IFDIR)]
    [Category("Mount")]
    public void A_root_chown_drops_the_bits_the_core_says(uint perm, uint type)
    {
        string path = P("n");
        Errno made = type switch
        {
            LibC.S_IFDIR => PosixCalls.Mkdir(path, 0x1ED),
            _ => PosixCalls.Mknod(path, type | 0x1A4, 0),
        };
        Assert.That(made, Is.EqualTo(Errno.OK));
        Assert.That(PosixCalls.Chmod(path, perm), Is.EqualTo(Errno.OK));
        Assert.That(PosixCalls.Lchown(path, 1000, 1000), Is.EqualTo(Errno.OK));
        Assert.That(PosixCalls.Lstat(path, out var st), Is.EqualTo(Errno.OK));
        uint expected = SetIdBits.ClearedByChown(type) ? perm & ~SetIdBits.ToClear(perm) : perm;
        Assert.That(st.Mode & 0xFFF, Is.EqualTo(expected));
    }
}
