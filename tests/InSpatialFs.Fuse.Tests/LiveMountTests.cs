using System.Text;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Fuse.Transport;
using InSpatialFs.Interop;
using InSpatialFs.TestKit;

namespace InSpatialFs.Fuse.Tests;

/// <summary>The real kernel: a tiny read-only file system mounted on /dev/fuse and used by ordinary programs.</summary>
[NonParallelizable]
[Category("Mount")]
public sealed class LiveMountTests
{
    /// <summary>"/" with a file "hello" and an empty directory "dir"; everything read-only.</summary>
    private sealed class HelloFileSystem : FuseFileSystemBase
    {
        public const ulong HelloNode = 2, DirNode = 3;
        public static readonly byte[] Content = "hello world\n"u8.ToArray();

        public int Initializations;

        public override void Initialized(FuseConnectionInfo connection) => Interlocked.Increment(ref Initializations);

        private static FuseAttr AttrOf(ulong node) => node switch
        {
            FuseConstants.RootId => new FuseAttr { Ino = 1, Mode = LibC.S_IFDIR | 0x1ED, Nlink = 3 },
            HelloNode => new FuseAttr { Ino = 2, Mode = LibC.S_IFREG | 0x124, Nlink = 1, Size = (ulong)Content.Length, Blocks = 1, Mtime = 1_700_000_000 },
            _ => new FuseAttr { Ino = 3, Mode = LibC.S_IFDIR | 0x1ED, Nlink = 2 },
        };

        private static bool Exists(ulong node) => node is FuseConstants.RootId or HelloNode or DirNode;

        public override Errno Lookup(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, out FuseEntryOut entry)
        {
            entry = default;
            ulong node = parent != FuseConstants.RootId ? 0 : name.SequenceEqual("hello"u8) ? HelloNode : name.SequenceEqual("dir"u8) ? DirNode : 0;
            if (node == 0)
            {
                return Errno.ENOENT;
            }

            entry = new FuseEntryOut { NodeId = node, Generation = 1, EntryValid = 1, AttrValid = 1, Attr = AttrOf(node) };
            return Errno.OK;
        }

        public override Errno GetAttr(FuseRequest request, ulong nodeId, ulong? fh, out FuseAttrOut attr)
        {
            attr = new FuseAttrOut { AttrValid = 1, Attr = AttrOf(nodeId) };
            return Exists(nodeId) ? Errno.OK : Errno.ENOENT;
        }

        public override Errno Open(FuseRequest request, ulong nodeId, int flags, uint openFlags, out FuseOpenOut open)
        {
            open = new FuseOpenOut { Fh = 10 };
            return (flags & LibC.O_ACCMODE) != LibC.O_RDONLY ? Errno.EROFS : nodeId == HelloNode ? Errno.OK : Errno.EISDIR;
        }

        public override Errno Read(FuseRequest request, ulong nodeId, ulong fh, long offset, Span<byte> buffer, out int bytesRead)
        {
            ReadOnlySpan<byte> rest = offset < Content.Length ? Content.AsSpan((int)offset) : default;
            bytesRead = Math.Min(rest.Length, buffer.Length);
            rest[..bytesRead].CopyTo(buffer);
            return Errno.OK;
        }

        public override Errno OpenDir(FuseRequest request, ulong nodeId, int flags, out FuseOpenOut open)
        {
            open = new FuseOpenOut { Fh = 20 };
            return nodeId is FuseConstants.RootId or DirNode ? Errno.OK : Errno.ENOTDIR;
        }

        public override Errno ReadDir(FuseRequest request, ulong nodeId, ulong fh, long offset, bool plus, ref DirentWriter writer)
        {
            (string Name, ulong Node)[] entries = nodeId == FuseConstants.RootId
                ? [(".", 1), ("..", 1), ("hello", HelloNode), ("dir", DirNode)]
                : [(".", DirNode), ("..", 1)];
            for (long i = offset; i < entries.Length; i++)
            {
                (string name, ulong node) = entries[i];
                byte[] bytes = Encoding.UTF8.GetBytes(name);
                bool dots = name is "." or "..";
                bool added = plus
                    ? writer.TryAddPlus(dots ? new FuseEntryOut { Attr = AttrOf(node) } : new FuseEntryOut { NodeId = node, Generation = 1, EntryValid = 1, AttrValid = 1, Attr = AttrOf(node) }, bytes, i + 1)
                    : writer.TryAdd(bytes, AttrOf(node).Ino, AttrOf(node).Mode, i + 1);
                if (!added)
                {
                    break;
                }
            }

            return Errno.OK;
        }

        public override Errno Release(FuseRequest request, ulong nodeId, ulong fh, int flags) => Errno.OK;

        public override Errno ReleaseDir(FuseRequest request, ulong nodeId, ulong fh) => Errno.OK;

        public override Errno Flush(FuseRequest request, ulong nodeId, ulong fh) => Errno.OK;

        public override Errno Access(FuseRequest request, ulong nodeId, int mask) => Errno.OK;

        public override Errno GetXattr(FuseRequest request, ulong nodeId, ReadOnlySpan<byte> name, Span<byte> buffer, out int size)
        {
            size = 0;
            return Errno.ENODATA;
        }

        public override Errno ListXattr(FuseRequest request, ulong nodeId, Span<byte> buffer, out int size)
        {
            size = 0;
            return Errno.OK;
        }

        public override Errno StatFs(FuseRequest request, ulong nodeId, out FuseKstatfs stat)
        {
            stat = new FuseKstatfs { Blocks = 100, Bfree = 0, Bsize = 4096, Frsize = 4096, NameLen = 255, Files = 3 };
            return Errno.OK;
        }

        public override Errno Create(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, int flags, uint mode, uint umask, out FuseEntryOut entry, out FuseOpenOut open)
        {
            entry = default;
            open = default;
            return Errno.EROFS;
        }

        public override Errno MkDir(FuseRequest request, ulong parent, ReadOnlySpan<byte> name, uint mode, uint umask, out FuseEntryOut entry)
        {
            entry = default;
            return Errno.EROFS;
        }
    }

    [SetUp]
    public void RequireKernel() => TestMount.RequireRootAndFuse();

    [Test]
    public void Ls_cat_and_stat_work_on_a_mounted_read_only_file_system()
    {
        var fs = new HelloFileSystem();
        using var mount = TestMount.Start(fs, new FuseMountOptions { FsName = "hello-test", Subtype = "hellofs" });

        (int lsExit, string ls, string lsErr) = TestMount.Run("ls", "-la", mount.Path);
        Assert.That(lsExit, Is.Zero, lsErr);
        Assert.That(ls, Does.Contain(" hello\n").And.Contain(" dir\n"));
        Assert.That(ls, Does.Match(@"-r--r--r--\s+1\s+root\s+root\s+12 .* hello"));

        (int catExit, string cat, string catErr) = TestMount.Run("cat", Path.Combine(mount.Path, "hello"));
        Assert.That((catExit, cat), Is.EqualTo((0, "hello world\n")), catErr);

        (int statExit, string stat, _) = TestMount.Run("stat", "-c", "%s %F %a %i", Path.Combine(mount.Path, "hello"));
        Assert.That((statExit, stat.Trim()), Is.EqualTo((0, "12 regular file 444 2")));
        (_, string dirStat, _) = TestMount.Run("stat", "-c", "%F", Path.Combine(mount.Path, "dir"));
        Assert.That(dirStat.Trim(), Is.EqualTo("directory"));

        (int missingExit, _, string missingErr) = TestMount.Run("stat", Path.Combine(mount.Path, "missing"));
        Assert.That(missingExit, Is.Not.Zero);
        Assert.That(missingErr, Does.Contain("No such file"));

        (int touchExit, _, string touchErr) = TestMount.Run("touch", Path.Combine(mount.Path, "new"));
        Assert.That(touchExit, Is.Not.Zero);
        Assert.That(touchErr, Does.Contain("Read-only file system"));

        string mounts = File.ReadAllText("/proc/mounts");
        Assert.That(mounts, Does.Contain($"hello-test {mount.Path} fuse.hellofs"));
        Assert.That(fs.Initializations, Is.EqualTo(1));
        FuseConnectionInfo info = mount.Server.Connection!;
        Assert.That((info.NegotiatedMinor, info.MaxWrite), Is.EqualTo((Math.Min(info.KernelMinor, 45u), 1u << 20)));
        Assert.That(info.PassthroughEnabled, Is.EqualTo((info.KernelFlags & (ulong)FuseInitFlags.Passthrough) != 0));
    }

    [Test]
    public void Umount_from_outside_ends_the_server_cleanly()
    {
        using var mount = TestMount.Start(new HelloFileSystem());
        (int catExit, string cat, _) = TestMount.Run("cat", Path.Combine(mount.Path, "hello"));
        Assert.That((catExit, cat), Is.EqualTo((0, "hello world\n")));

        (int exit, _, string err) = TestMount.Run("umount", mount.Path);
        Assert.That(exit, Is.Zero, err);
        Assert.That(mount.Server.Completion.Wait(TimeSpan.FromSeconds(10)), Is.True, "the readers stopped on ENODEV");
        Assert.That(mount.Server.Completion.IsCompletedSuccessfully, Is.True);
    }

    [Test]
    public void Stop_unmounts_and_ends_the_server()
    {
        using var mount = TestMount.Start(new HelloFileSystem(), serverOptions: new ProtocolServerOptions { ReaderThreads = 3 });
        Assert.That(TestMount.Run("cat", Path.Combine(mount.Path, "hello")).ExitCode, Is.Zero);
        mount.Server.Stop();
        Assert.That(mount.Server.Completion.Wait(TimeSpan.FromSeconds(10)), Is.True);
        Assert.That(File.ReadAllText("/proc/mounts"), Does.Not.Contain(" " + mount.Path + " "));
    }

    [Test]
    public void Mounting_through_fusermount3_hands_the_device_over_a_unix_socket()
    {
        if (!File.Exists("/usr/bin/fusermount3") && !File.Exists("/bin/fusermount3"))
        {
            Assert.Ignore("fusermount3 is not installed (apt-get install fuse3)");
        }

        using var mount = TestMount.Start(new HelloFileSystem(), new FuseMountOptions { UseFusermount = true, FsName = "viafusermount" });
        Assert.That(mount.Mount.ViaFusermount, Is.True);
        (int exit, string cat, string err) = TestMount.Run("cat", Path.Combine(mount.Path, "hello"));
        Assert.That((exit, cat), Is.EqualTo((0, "hello world\n")), err);
        Assert.That(mount.Mount.Unmount(), Is.EqualTo(Errno.OK));
        Assert.That(mount.Server.Completion.Wait(TimeSpan.FromSeconds(10)), Is.True);
    }

    [Test]
    public void Notifications_reach_the_kernel()
    {
        var fs = new HelloFileSystem();
        using var mount = TestMount.Start(fs);
        Assert.That(TestMount.Run("stat", Path.Combine(mount.Path, "hello")).ExitCode, Is.Zero);
        IFuseNotifier notifier = mount.Server.Connection!.Notifier!;
        Assert.That(notifier.InvalidateEntry(FuseConstants.RootId, "hello"u8), Is.EqualTo(Errno.OK));
        Assert.That(notifier.InvalidateInode(HelloFileSystem.DirNode, -1, 0), Is.AnyOf(Errno.OK, Errno.ENOENT));
        Assert.That(notifier.InvalidateEntry(FuseConstants.RootId, "never-looked-up"u8), Is.EqualTo(Errno.ENOENT));
    }

    [Test]
    public void Backing_files_register_and_close_through_the_device_ioctls_when_passthrough_was_negotiated()
    {
        using var mount = TestMount.Start(new HelloFileSystem());
        Assert.That(TestMount.Run("stat", mount.Path).ExitCode, Is.Zero); // INIT has been answered
        FuseConnectionInfo info = mount.Server.Connection!;
        if (!info.PassthroughEnabled)
        {
            Assert.Ignore("this kernel did not offer FUSE_PASSTHROUGH");
        }

        string file = Path.GetTempFileName();
        try
        {
            Assert.That(LibC.OpenFd(file, LibC.O_RDONLY, 0, out SafeFd fd), Is.EqualTo(Errno.OK));
            using (fd)
            {
                Assert.That(info.Backing!.Open(fd, out int id), Is.EqualTo(Errno.OK));
                Assert.That(id, Is.GreaterThan(0));
                Assert.That(info.Backing.Close(id), Is.EqualTo(Errno.OK));
                Assert.That(info.Backing.Close(id), Is.EqualTo(Errno.ENOENT), "a closed id is gone");
            }

            Assert.That(LibC.OpenFd("/tmp", LibC.O_RDONLY | LibC.O_DIRECTORY, 0, out SafeFd dir), Is.EqualTo(Errno.OK));
            using (dir)
            {
                Assert.That(info.Backing.Open(dir, out _), Is.EqualTo(Errno.EISDIR).Or.EqualTo(Errno.EINVAL), "directories cannot be passed through");
            }
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Test]
    public void Four_readers_serve_parallel_processes_and_each_reply_reaches_its_caller()
    {
        using var mount = TestMount.Start(new HelloFileSystem(), serverOptions: new ProtocolServerOptions { ReaderThreads = 4 });
        string hello = Path.Combine(mount.Path, "hello");
        var results = Enumerable.Range(0, 24).AsParallel().AsOrdered().WithDegreeOfParallelism(8)
            .Select(i => i % 2 == 0 ? TestMount.Run("cat", hello) : TestMount.Run("ls", mount.Path))
            .ToList();
        Assert.That(results.Select(r => r.ExitCode), Is.All.Zero);
        Assert.That(results.Where((_, i) => i % 2 == 0).Select(r => r.Stdout), Is.All.EqualTo("hello world\n"));
        Assert.That(results.Where((_, i) => i % 2 == 1).Select(r => r.Stdout), Is.All.EqualTo("dir\nhello\n"));
    }
}
