using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using InSpatialFs.Interop;

namespace InSpatialFs.TestKit.Posix;

/// <summary>
/// A POSIX behaviour suite that drives a directory through real syscalls, the way programs do. A concrete
/// fixture supplies <see cref="Root"/> (a plain directory as the control, or a mount point); each test
/// works in a fresh subdirectory <see cref="Dir"/>. The run against a plain directory is the specification.
/// Tests assume they run as root (they chown, mknod and drop to uid 1000 with setpriv); uid 1000 must be
/// able to reach <see cref="Root"/> (a FUSE mount needs allow_other and default_permissions).
/// </summary>
[NonParallelizable]
[Category("Posix")]
public abstract class PosixSuite
{
    /// <summary>The uid/gid the permission tests drop to.</summary>
    protected const uint OtherUid = 1000;

    private const string SetprivPath = "/usr/bin/setpriv";

    /// <summary>A directory to test in; every test creates its own subdirectory below it.</summary>
    protected abstract string Root { get; }

    /// <summary>This test's fresh, empty directory (mode 0755, owned by root).</summary>
    protected string Dir { get; private set; } = "";

    /// <summary>
    /// A directory on a different mount than <see cref="Root"/> for the EXDEV test; null skips it with a reason.
    /// The generic suite cannot know one (it needs two mounts).
    /// </summary>
    protected virtual string? CrossMountDirectory => null;

    /// <summary>Return a reason to opt out of a category (e.g. a backend without device nodes); null runs it.</summary>
    protected virtual string? OptOutReason(PosixCategory category) => null;

    [SetUp]
    public void CreateTestDirectory()
    {
        Dir = Path.Combine(Root, $"{TestContext.CurrentContext.Test.MethodName}-{Guid.NewGuid():N}");
        Expect(PosixCalls.Mkdir(Dir, 0x1ED), "mkdir test directory");
        Expect(PosixCalls.Chmod(Dir, 0x1ED), "chmod test directory");
    }

    [TearDown]
    public void RemoveTestDirectory()
    {
        if (Dir.Length != 0 && Directory.Exists(Dir))
        {
            RemoveTree(Dir);
        }
    }

    // ------------------------------------------------------------------ files

    [Test]
    public void Written_bytes_read_back_and_stat_reports_a_regular_file()
    {
        Requires(PosixCategory.Files);
        var payload = Pattern(100_000, 3);
        string path = P("file");
        File.WriteAllBytes(path, payload);
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(payload));
        var st = Lstat(path);
        Assert.That(st.Type, Is.EqualTo(LibC.S_IFREG));
        Assert.That(st.Size, Is.EqualTo(100_000));
        Assert.That(st.Nlink, Is.EqualTo(1UL));
    }

    [Test]
    public void Exclusive_create_of_an_existing_file_is_EEXIST_and_opening_a_missing_one_is_ENOENT()
    {
        Requires(PosixCategory.Files);
        File.WriteAllText(P("f"), "x");
        Assert.That(PosixCalls.Open(P("f"), LibC.O_CREAT | LibC.O_EXCL | LibC.O_WRONLY, 0x1A4, out _), Is.EqualTo(Errno.EEXIST));
        Assert.That(PosixCalls.Open(P("missing"), LibC.O_RDONLY, 0, out _), Is.EqualTo(Errno.ENOENT));
        Assert.That(PosixCalls.Open(P("missing/deeper"), LibC.O_CREAT | LibC.O_WRONLY, 0x1A4, out _), Is.EqualTo(Errno.ENOENT));
    }

    [Test]
    public void Truncate_shrinks_and_grows_with_zeros()
    {
        Requires(PosixCategory.Files);
        string path = P("f");
        File.WriteAllBytes(path, Pattern(10_000, 1));
        Expect(PosixCalls.Truncate(path, 3000), "truncate down");
        Expect(PosixCalls.Truncate(path, 9000), "truncate up");
        var data = File.ReadAllBytes(path);
        Assert.That(data, Has.Length.EqualTo(9000));
        Assert.That(data[..3000], Is.EqualTo(Pattern(10_000, 1)[..3000]));
        Assert.That(data[3000..], Is.All.EqualTo((byte)0));
    }

    [Test]
    public void Open_with_O_TRUNC_empties_the_file()
    {
        Requires(PosixCategory.Files);
        string path = P("f");
        File.WriteAllBytes(path, Pattern(5000, 2));
        Expect(PosixCalls.Open(path, LibC.O_WRONLY | LibC.O_TRUNC, 0, out int fd), "open O_TRUNC");
        PosixCalls.Close(fd);
        Assert.That(Lstat(path).Size, Is.Zero);
    }

    [Test]
    public void Append_mode_writes_at_the_end()
    {
        Requires(PosixCategory.Files);
        string path = P("log");
        File.WriteAllText(path, "one\n");
        File.AppendAllText(path, "two\n");
        Expect(PosixCalls.Open(path, LibC.O_WRONLY | LibC.O_APPEND, 0, out int fd), "open O_APPEND");
        try
        {
            Expect(PosixCalls.PWrite(fd, "three\n"u8, 0), "write with O_APPEND"); // pwrite on O_APPEND appends on Linux
        }
        finally
        {
            PosixCalls.Close(fd);
        }
        Assert.That(File.ReadAllText(path), Is.EqualTo("one\ntwo\nthree\n"));
    }

    [Test]
    public void An_unlinked_open_file_stays_readable_and_writable()
    {
        Requires(PosixCategory.Files);
        string path = P("f");
        File.WriteAllText(path, "before");
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        File.Delete(path);
        Assert.That(File.Exists(path), Is.False);
        stream.Seek(0, SeekOrigin.End);
        stream.Write("+after"u8);
        stream.Flush(flushToDisk: true);
        stream.Seek(0, SeekOrigin.Begin);
        using var reader = new StreamReader(stream);
        Assert.That(reader.ReadToEnd(), Is.EqualTo("before+after"));
    }

    [Test]
    public void A_write_far_beyond_the_end_leaves_a_hole_that_reads_as_zeros()
    {
        Requires(PosixCategory.Files);
        string path = P("sparse");
        const long far = 1L << 36;
        Expect(PosixCalls.Open(path, LibC.O_CREAT | LibC.O_RDWR, 0x1A4, out int fd), "create");
        try
        {
            Expect(PosixCalls.PWrite(fd, "end"u8, far), "pwrite far");
            var buffer = new byte[4096];
            Expect(PosixCalls.PRead(fd, buffer, 1L << 30, out int read), "pread hole");
            Assert.That(read, Is.EqualTo(4096));
            Assert.That(buffer, Is.All.EqualTo((byte)0));
            Expect(PosixCalls.Fstat(fd, out var st), "fstat");
            Assert.That(st.Size, Is.EqualTo(far + 3));
            Assert.That(st.Blocks, Is.LessThan(1024), "a hole does not occupy space");
        }
        finally
        {
            PosixCalls.Close(fd);
        }
    }

    [Test]
    public void Names_longer_than_255_bytes_are_ENAMETOOLONG()
    {
        Requires(PosixCategory.Files);
        string longName = new('n', 256);
        Assert.That(PosixCalls.Open(P(longName), LibC.O_CREAT | LibC.O_WRONLY, 0x1A4, out _), Is.EqualTo(Errno.ENAMETOOLONG));
        Assert.That(PosixCalls.Mkdir(P(longName), 0x1ED), Is.EqualTo(Errno.ENAMETOOLONG));
        Assert.That(PosixCalls.Lstat(P(longName), out _), Is.EqualTo(Errno.ENAMETOOLONG));
        Expect(PosixCalls.Mkdir(P(new string('n', 255)), 0x1ED), "255-byte name");
    }

    [Test]
    public void Fsync_of_files_and_directories_succeeds()
    {
        Requires(PosixCategory.Files);
        using (var stream = new FileStream(P("f"), FileMode.CreateNew))
        {
            stream.Write(Pattern(10_000, 4));
            stream.Flush(flushToDisk: true);
        }
        Expect(PosixCalls.Open(Dir, LibC.O_RDONLY | LibC.O_DIRECTORY, 0, out int fd), "open directory");
        try
        {
            Expect(PosixCalls.Fsync(fd), "fsync directory");
        }
        finally
        {
            PosixCalls.Close(fd);
        }
        Assert.That(File.ReadAllBytes(P("f")), Is.EqualTo(Pattern(10_000, 4)));
    }

    // ------------------------------------------------------------------ directories

    [Test]
    public void Directory_errors_EEXIST_ENOTEMPTY_ENOTDIR_EISDIR()
    {
        Requires(PosixCategory.Directories);
        Expect(PosixCalls.Mkdir(P("d"), 0x1ED), "mkdir");
        File.WriteAllText(P("d/inner"), "x");
        File.WriteAllText(P("file"), "x");
        Assert.Multiple(() =>
        {
            Assert.That(PosixCalls.Mkdir(P("d"), 0x1ED), Is.EqualTo(Errno.EEXIST), "mkdir existing");
            Assert.That(PosixCalls.Mkdir(P("file"), 0x1ED), Is.EqualTo(Errno.EEXIST), "mkdir over a file");
            Assert.That(PosixCalls.Rmdir(P("d")), Is.EqualTo(Errno.ENOTEMPTY), "rmdir non-empty");
            Assert.That(PosixCalls.Rmdir(P("file")), Is.EqualTo(Errno.ENOTDIR), "rmdir of a file");
            Assert.That(PosixCalls.Unlink(P("d")), Is.EqualTo(Errno.EISDIR), "unlink of a directory");
            Assert.That(PosixCalls.Lstat(P("file/x"), out _), Is.EqualTo(Errno.ENOTDIR), "path through a file");
            Assert.That(PosixCalls.Open(P("d"), LibC.O_WRONLY, 0, out _), Is.EqualTo(Errno.EISDIR), "open a directory for writing");
            Assert.That(PosixCalls.Open(P("file"), LibC.O_RDONLY | LibC.O_DIRECTORY, 0, out _), Is.EqualTo(Errno.ENOTDIR), "O_DIRECTORY on a file");
            Assert.That(PosixCalls.Rmdir(P("missing")), Is.EqualTo(Errno.ENOENT), "rmdir missing");
            Assert.That(PosixCalls.Unlink(P("missing")), Is.EqualTo(Errno.ENOENT), "unlink missing");
        });
    }

    [Test]
    public void Directory_link_count_is_two_plus_subdirectories()
    {
        Requires(PosixCategory.Directories);
        Expect(PosixCalls.Mkdir(P("d"), 0x1ED), "mkdir");
        Assert.That(Lstat(P("d")).Nlink, Is.EqualTo(2UL));
        Expect(PosixCalls.Mkdir(P("d/a"), 0x1ED), "mkdir a");
        Expect(PosixCalls.Mkdir(P("d/b"), 0x1ED), "mkdir b");
        File.WriteAllText(P("d/f"), "");
        Assert.That(Lstat(P("d")).Nlink, Is.EqualTo(4UL));
        Expect(PosixCalls.Rmdir(P("d/a")), "rmdir a");
        Assert.That(Lstat(P("d")).Nlink, Is.EqualTo(3UL));
    }

    [Test]
    public void Listing_shows_every_entry_once()
    {
        Requires(PosixCategory.Directories);
        var expected = Enumerable.Range(0, 300).Select(i => $"entry-{i:D3}").ToList();
        foreach (var name in expected)
        {
            File.WriteAllText(P(name), name);
        }
        var listed = Directory.EnumerateFileSystemEntries(Dir).Select(Path.GetFileName).ToList();
        Assert.That(listed, Is.EquivalentTo(expected));
    }

    [Test]
    public void Deleting_entries_while_listing_removes_everything_in_one_pass()
    {
        Requires(PosixCategory.Directories);
        for (int i = 0; i < 500; i++)
        {
            File.WriteAllText(P($"f{i}"), "");
        }
        var seen = new HashSet<string>();
        foreach (var path in Directory.EnumerateFiles(Dir))
        {
            Assert.That(seen.Add(path), Is.True, $"{path} listed twice");
            File.Delete(path);
        }
        Assert.That(seen, Has.Count.EqualTo(500));
        Assert.That(Directory.EnumerateFileSystemEntries(Dir), Is.Empty);
    }

    [Test]
    public void Entries_created_while_listing_never_duplicate_or_hide_existing_ones()
    {
        Requires(PosixCategory.Directories);
        var originals = Enumerable.Range(0, 3000).Select(i => $"original-{i:D4}-{new string('x', 40)}").ToList();
        foreach (var name in originals)
        {
            File.WriteAllText(P(name), "");
        }
        var seen = new List<string>();
        int added = 0;
        foreach (var path in Directory.EnumerateFiles(Dir))
        {
            seen.Add(Path.GetFileName(path));
            if (seen.Count % 10 == 0 && added < 300)
            {
                File.WriteAllText(P($"added-{added++}"), "");
            }
        }
        Assert.That(seen, Is.Unique);
        Assert.That(seen.Where(n => n.StartsWith("original-", StringComparison.Ordinal)), Is.EquivalentTo(originals));
    }

    [Test]
    public void Symlink_targets_of_4096_bytes_or_more_are_ENAMETOOLONG()
    {
        Requires(PosixCategory.Symlinks);
        Assert.That(PosixCalls.Symlink(new string('t', 4096), P("toolong")), Is.EqualTo(Errno.ENAMETOOLONG));
        Assert.That(PosixCalls.Lstat(P("toolong"), out _), Is.EqualTo(Errno.ENOENT));
    }

    // ------------------------------------------------------------------ symlinks

    [Test]
    public void Symlinks_resolve_and_report_their_target()
    {
        Requires(PosixCategory.Symlinks);
        File.WriteAllText(P("target"), "content");
        Expect(PosixCalls.Symlink("target", P("link")), "symlink");
        Expect(PosixCalls.ReadLink(P("link"), out string target), "readlink");
        Assert.That(target, Is.EqualTo("target"));
        Assert.That(Lstat(P("link")).Type, Is.EqualTo(LibC.S_IFLNK));
        Assert.That(Lstat(P("link")).Size, Is.EqualTo(6));
        Expect(PosixCalls.Stat(P("link"), out var followed), "stat");
        Assert.That(followed.Type, Is.EqualTo(LibC.S_IFREG));
        Assert.That(File.ReadAllText(P("link")), Is.EqualTo("content"));
        Assert.That(PosixCalls.Symlink("elsewhere", P("link")), Is.EqualTo(Errno.EEXIST));
    }

    [Test]
    public void A_symlink_loop_is_ELOOP_and_a_dangling_link_is_ENOENT()
    {
        Requires(PosixCategory.Symlinks);
        Expect(PosixCalls.Symlink("b", P("a")), "symlink a");
        Expect(PosixCalls.Symlink("a", P("b")), "symlink b");
        Expect(PosixCalls.Symlink("nowhere", P("dangling")), "symlink dangling");
        File.WriteAllText(P("file"), "x");
        Expect(PosixCalls.Symlink("file", P("tofile")), "symlink tofile");
        Assert.That(PosixCalls.Open(P("a"), LibC.O_RDONLY, 0, out _), Is.EqualTo(Errno.ELOOP));
        Assert.That(PosixCalls.Stat(P("a"), out _), Is.EqualTo(Errno.ELOOP));
        Assert.That(PosixCalls.Open(P("dangling"), LibC.O_RDONLY, 0, out _), Is.EqualTo(Errno.ENOENT));
        Assert.That(PosixCalls.Open(P("tofile"), LibC.O_RDONLY | LibC.O_NOFOLLOW, 0, out _), Is.EqualTo(Errno.ELOOP));
    }

    // ------------------------------------------------------------------ hard links

    [Test]
    public void Hard_links_share_an_inode_and_count_names()
    {
        Requires(PosixCategory.HardLinks);
        File.WriteAllText(P("a"), "shared");
        Expect(PosixCalls.Mkdir(P("d"), 0x1ED), "mkdir");
        Expect(PosixCalls.Link(P("a"), P("d/b")), "link");
        var a = Lstat(P("a"));
        var b = Lstat(P("d/b"));
        Assert.That(b.Ino, Is.EqualTo(a.Ino));
        Assert.That(a.Nlink, Is.EqualTo(2UL));
        File.AppendAllText(P("d/b"), "!");
        Assert.That(File.ReadAllText(P("a")), Is.EqualTo("shared!"));
        Expect(PosixCalls.Unlink(P("a")), "unlink");
        Assert.That(Lstat(P("d/b")).Nlink, Is.EqualTo(1UL));
        Assert.That(PosixCalls.Link(P("d/b"), P("d/b")), Is.EqualTo(Errno.EEXIST));
        Assert.That(PosixCalls.Link(P("d"), P("dirlink")), Is.EqualTo(Errno.EPERM));
        Assert.That(PosixCalls.Link(P("missing"), P("x")), Is.EqualTo(Errno.ENOENT));
    }

    // ------------------------------------------------------------------ rename

    [Test]
    public void Rename_replaces_files_and_empty_directories()
    {
        Requires(PosixCategory.Rename);
        File.WriteAllText(P("a"), "a");
        File.WriteAllText(P("b"), "b");
        Expect(PosixCalls.Rename(P("a"), P("b")), "file over file");
        Assert.That(File.Exists(P("a")), Is.False);
        Assert.That(File.ReadAllText(P("b")), Is.EqualTo("a"));

        Expect(PosixCalls.Mkdir(P("src"), 0x1ED), "mkdir src");
        File.WriteAllText(P("src/inside"), "i");
        Expect(PosixCalls.Mkdir(P("dst"), 0x1ED), "mkdir dst");
        Expect(PosixCalls.Rename(P("src"), P("dst")), "dir over empty dir");
        Assert.That(File.ReadAllText(P("dst/inside")), Is.EqualTo("i"));
        Assert.That(Directory.Exists(P("src")), Is.False);
    }

    [Test]
    public void Rename_errors_ENOTEMPTY_ENOTDIR_EISDIR_EINVAL_ENOENT()
    {
        Requires(PosixCategory.Rename);
        Expect(PosixCalls.Mkdir(P("dir"), 0x1ED), "mkdir");
        Expect(PosixCalls.Mkdir(P("dir/sub"), 0x1ED), "mkdir sub");
        Expect(PosixCalls.Mkdir(P("full"), 0x1ED), "mkdir full");
        File.WriteAllText(P("full/x"), "");
        File.WriteAllText(P("file"), "");
        Assert.Multiple(() =>
        {
            Assert.That(PosixCalls.Rename(P("dir"), P("full")), Is.EqualTo(Errno.ENOTEMPTY), "dir over non-empty dir");
            Assert.That(PosixCalls.Rename(P("dir"), P("file")), Is.EqualTo(Errno.ENOTDIR), "dir over file");
            Assert.That(PosixCalls.Rename(P("file"), P("dir")), Is.EqualTo(Errno.EISDIR), "file over dir");
            Assert.That(PosixCalls.Rename(P("dir"), P("dir/sub/inner")), Is.EqualTo(Errno.EINVAL), "dir into its own subtree");
            Assert.That(PosixCalls.Rename(P("missing"), P("x")), Is.EqualTo(Errno.ENOENT), "missing source");
            Assert.That(PosixCalls.Rename(P("file"), P("nodir/x")), Is.EqualTo(Errno.ENOENT), "missing target directory");
        });
    }

    [Test]
    public void Rename_moves_a_directory_and_fixes_link_counts()
    {
        Requires(PosixCategory.Rename);
        Expect(PosixCalls.Mkdir(P("p1"), 0x1ED), "mkdir p1");
        Expect(PosixCalls.Mkdir(P("p2"), 0x1ED), "mkdir p2");
        Expect(PosixCalls.Mkdir(P("p1/moving"), 0x1ED), "mkdir moving");
        Expect(PosixCalls.Rename(P("p1/moving"), P("p2/moved")), "rename across directories");
        Assert.That(Lstat(P("p1")).Nlink, Is.EqualTo(2UL));
        Assert.That(Lstat(P("p2")).Nlink, Is.EqualTo(3UL));
        Expect(PosixCalls.Stat(P("p2/moved/.."), out var parent), "stat ..");
        Assert.That(parent.Ino, Is.EqualTo(Lstat(P("p2")).Ino));
    }

    [Test]
    public void Rename_noreplace_refuses_an_existing_target()
    {
        Requires(PosixCategory.RenameFlags);
        File.WriteAllText(P("a"), "a");
        File.WriteAllText(P("b"), "b");
        Assert.That(PosixCalls.Rename(P("a"), P("b"), LibC.RENAME_NOREPLACE), Is.EqualTo(Errno.EEXIST));
        Assert.That(File.ReadAllText(P("b")), Is.EqualTo("b"));
        Expect(PosixCalls.Rename(P("a"), P("c"), LibC.RENAME_NOREPLACE), "noreplace to a free name");
        Assert.That(File.ReadAllText(P("c")), Is.EqualTo("a"));
    }

    [Test]
    public void Rename_exchange_swaps_two_names_atomically()
    {
        Requires(PosixCategory.RenameFlags);
        File.WriteAllText(P("file"), "f");
        Expect(PosixCalls.Mkdir(P("dir"), 0x1ED), "mkdir");
        File.WriteAllText(P("dir/inner"), "i");
        Expect(PosixCalls.Rename(P("file"), P("dir"), LibC.RENAME_EXCHANGE), "exchange");
        Assert.That(File.ReadAllText(P("dir")), Is.EqualTo("f"));
        Assert.That(File.ReadAllText(P("file/inner")), Is.EqualTo("i"));
        Assert.That(PosixCalls.Rename(P("file"), P("missing"), LibC.RENAME_EXCHANGE), Is.EqualTo(Errno.ENOENT));
    }

    [Test]
    public void Rename_to_another_mount_is_EXDEV()
    {
        Requires(PosixCategory.CrossMount);
        string? other = CrossMountDirectory;
        if (other is null)
        {
            Assert.Ignore("CrossMount: this fixture provides no second mount (override CrossMountDirectory)");
        }
        File.WriteAllText(P("f"), "x");
        string target = Path.Combine(other, $"exdev-{Guid.NewGuid():N}");
        Assert.That(PosixCalls.Rename(P("f"), target), Is.EqualTo(Errno.EXDEV));
        Assert.That(PosixCalls.Link(P("f"), target), Is.EqualTo(Errno.EXDEV));
    }

    // ------------------------------------------------------------------ special files

    [Test]
    public void Fifos_and_sockets_are_created_with_their_type()
    {
        Requires(PosixCategory.SpecialFiles);
        Expect(PosixCalls.Mknod(P("fifo"), LibC.S_IFIFO | 0x1A4, 0), "mkfifo");
        Expect(PosixCalls.Mknod(P("sock"), LibC.S_IFSOCK | 0x1A4, 0), "mknod socket");
        Assert.That(Lstat(P("fifo")).Type, Is.EqualTo(LibC.S_IFIFO));
        Assert.That(Lstat(P("sock")).Type, Is.EqualTo(LibC.S_IFSOCK));
        Assert.That(PosixCalls.Mknod(P("fifo"), LibC.S_IFIFO | 0x1A4, 0), Is.EqualTo(Errno.EEXIST));
    }

    [Test]
    public void A_fifo_carries_data_between_a_writer_and_a_reader()
    {
        Requires(PosixCategory.SpecialFiles);
        Expect(PosixCalls.Mknod(P("fifo"), LibC.S_IFIFO | 0x1A4, 0), "mkfifo");
        var writer = Task.Run(() => File.WriteAllText(P("fifo"), "through the pipe"));
        string read = File.ReadAllText(P("fifo"));
        Assert.That(writer.Wait(TimeSpan.FromSeconds(10)), Is.True);
        Assert.That(read, Is.EqualTo("through the pipe"));
    }

    [Test]
    public void Device_nodes_keep_their_device_number()
    {
        Requires(PosixCategory.DeviceNodes);
        ulong null_ = PosixCalls.MakeDev(1, 3);
        ulong sda = PosixCalls.MakeDev(8, 1);
        Expect(PosixCalls.Mknod(P("null"), LibC.S_IFCHR | 0x1B6, null_), "mknod chr");
        Expect(PosixCalls.Mknod(P("disk"), LibC.S_IFBLK | 0x180, sda), "mknod blk");
        var chr = Lstat(P("null"));
        var blk = Lstat(P("disk"));
        Assert.That((chr.Type, chr.Rdev), Is.EqualTo((LibC.S_IFCHR, null_)));
        Assert.That((blk.Type, blk.Rdev), Is.EqualTo((LibC.S_IFBLK, sda)));
    }

    // ------------------------------------------------------------------ xattrs

    [Test]
    public void User_xattrs_set_get_list_and_remove()
    {
        Requires(PosixCategory.Xattrs);
        string path = P("f");
        File.WriteAllText(path, "");
        Expect(PosixCalls.SetXattr(path, "user.colour", "blue"u8, 0), "setxattr");
        Expect(PosixCalls.SetXattr(path, "user.size", "XL"u8, 0), "setxattr 2");
        Assert.That(GetXattr(path, "user.colour"), Is.EqualTo("blue"));
        Expect(PosixCalls.ListXattr(path, [], out int size), "listxattr size");
        var list = new byte[size];
        Expect(PosixCalls.ListXattr(path, list, out _), "listxattr");
        var names = Encoding.UTF8.GetString(list).Split('\0', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(names, Does.Contain("user.colour").And.Contain("user.size"));
        Expect(PosixCalls.RemoveXattr(path, "user.colour"), "removexattr");
        Assert.That(PosixCalls.GetXattr(path, "user.colour", new byte[16], out _), Is.EqualTo(Errno.ENODATA));
        Assert.That(PosixCalls.RemoveXattr(path, "user.colour"), Is.EqualTo(Errno.ENODATA));
    }

    [Test]
    public void Xattr_flags_sizes_and_errors()
    {
        Requires(PosixCategory.Xattrs);
        string path = P("f");
        File.WriteAllText(path, "");
        Assert.That(PosixCalls.SetXattr(path, "user.k", "v"u8, LibC.XATTR_REPLACE), Is.EqualTo(Errno.ENODATA));
        Expect(PosixCalls.SetXattr(path, "user.k", "value"u8, LibC.XATTR_CREATE), "create");
        Assert.That(PosixCalls.SetXattr(path, "user.k", "v"u8, LibC.XATTR_CREATE), Is.EqualTo(Errno.EEXIST));
        Expect(PosixCalls.SetXattr(path, "user.k", "longer value"u8, LibC.XATTR_REPLACE), "replace");
        Expect(PosixCalls.GetXattr(path, "user.k", [], out int size), "size query");
        Assert.That(size, Is.EqualTo(12));
        Assert.That(PosixCalls.GetXattr(path, "user.k", new byte[4], out _), Is.EqualTo(Errno.ERANGE));
        Assert.That(PosixCalls.GetXattr(path, "user.none", new byte[4], out _), Is.EqualTo(Errno.ENODATA));
        Assert.That(PosixCalls.GetXattr(P("missing"), "user.k", new byte[4], out _), Is.EqualTo(Errno.ENOENT));
    }

    [Test]
    public void Trusted_xattrs_are_available_to_root()
    {
        Requires(PosixCategory.TrustedXattrs);
        string path = P("f");
        File.WriteAllText(path, "");
        Expect(PosixCalls.SetXattr(path, "trusted.overlay.opaque", "y"u8, 0), "setxattr trusted");
        Assert.That(GetXattr(path, "trusted.overlay.opaque"), Is.EqualTo("y"));
    }

    // ------------------------------------------------------------------ O_TMPFILE, fallocate, seek, copy

    [Test]
    public void Tmpfile_is_invisible_until_linked_into_the_tree()
    {
        Requires(PosixCategory.TmpFile);
        Expect(PosixCalls.Open(Dir, LibC.O_TMPFILE | LibC.O_RDWR, 0x180, out int fd), "open O_TMPFILE");
        try
        {
            Expect(PosixCalls.PWrite(fd, "anonymous"u8, 0), "write");
            Expect(PosixCalls.Fstat(fd, out var st), "fstat");
            Assert.That(st.Nlink, Is.Zero);
            Assert.That(Directory.EnumerateFileSystemEntries(Dir), Is.Empty);
            Expect(PosixCalls.LinkFd(fd, P("named")), "linkat");
            Assert.That(File.ReadAllText(P("named")), Is.EqualTo("anonymous"));
            Assert.That(Lstat(P("named")).Nlink, Is.EqualTo(1UL));
        }
        finally
        {
            PosixCalls.Close(fd);
        }
    }

    [Test]
    public void Fallocate_allocates_keeps_size_and_punches_holes()
    {
        Requires(PosixCategory.Fallocate);
        WithFile("f", fd =>
        {
            Expect(PosixCalls.Fallocate(fd, 0, 0, 1 << 20), "fallocate");
            Expect(PosixCalls.Fstat(fd, out var st), "fstat");
            Assert.That(st.Size, Is.EqualTo(1 << 20));
            Assert.That(st.Blocks, Is.GreaterThanOrEqualTo(2048));

            Expect(PosixCalls.Fallocate(fd, LibC.FALLOC_FL_KEEP_SIZE, 1 << 20, 1 << 20), "fallocate keep size");
            Expect(PosixCalls.Fstat(fd, out st), "fstat");
            Assert.That(st.Size, Is.EqualTo(1 << 20));

            Expect(PosixCalls.PWrite(fd, Pattern(1 << 20, 5), 0), "fill");
            Expect(PosixCalls.Fallocate(fd, LibC.FALLOC_FL_PUNCH_HOLE | LibC.FALLOC_FL_KEEP_SIZE, 65536, 65536), "punch");
            var back = new byte[1 << 20];
            Expect(PosixCalls.PRead(fd, back, 0, out _), "read");
            Assert.That(back[..65536], Is.EqualTo(Pattern(1 << 20, 5)[..65536]));
            Assert.That(back[65536..131072], Is.All.EqualTo((byte)0));
            Assert.That(back[131072..], Is.EqualTo(Pattern(1 << 20, 5)[131072..]));
            Expect(PosixCalls.Fstat(fd, out st), "fstat");
            Assert.That(st.Size, Is.EqualTo(1 << 20));

            Expect(PosixCalls.Fallocate(fd, LibC.FALLOC_FL_ZERO_RANGE, 10, 100), "zero range");
            Expect(PosixCalls.PRead(fd, back.AsSpan(0, 200), 0, out _), "read");
            Assert.That(back[10..110], Is.All.EqualTo((byte)0));
            Assert.That(back[110..200], Is.EqualTo(Pattern(1 << 20, 5)[110..200]));
        });
    }

    [Test]
    public void Fallocate_zero_range_may_keep_the_size_and_invalid_requests_are_refused()
    {
        // Issue 12's drift: the host backend refused ZERO_RANGE|KEEP_SIZE, which ext4 (the plain directory) serves.
        Requires(PosixCategory.Fallocate);
        WithFile("f", fd =>
        {
            Expect(PosixCalls.PWrite(fd, Pattern(16384, 7), 0), "fill");
            Expect(PosixCalls.Fallocate(fd, LibC.FALLOC_FL_ZERO_RANGE | LibC.FALLOC_FL_KEEP_SIZE, 4096, 65536), "zero range keep size");
            Expect(PosixCalls.Fstat(fd, out var st), "fstat");
            Assert.That(st.Size, Is.EqualTo(16384), "the size is kept");
            var back = new byte[16384];
            Expect(PosixCalls.PRead(fd, back, 0, out _), "read");
            Assert.That(back[..4096], Is.EqualTo(Pattern(16384, 7)[..4096]));
            Assert.That(back[4096..], Is.All.EqualTo((byte)0));

            Assert.That(PosixCalls.Fallocate(fd, LibC.FALLOC_FL_PUNCH_HOLE, 0, 4096), Is.EqualTo(Errno.EOPNOTSUPP), "a punch must keep the size");
            Assert.That(PosixCalls.Fallocate(fd, 0, 0, 0), Is.EqualTo(Errno.EINVAL), "an empty range");
            Assert.That(PosixCalls.Fallocate(fd, 0x100, 0, 4096), Is.EqualTo(Errno.EOPNOTSUPP), "unknown bits");
        });
    }

    [Test]
    public void Seek_data_and_seek_hole_find_the_written_regions()
    {
        Requires(PosixCategory.SparseSeek);
        WithFile("f", fd =>
        {
            Expect(PosixCalls.PWrite(fd, Pattern(4096, 1), 0), "write head");
            Expect(PosixCalls.PWrite(fd, Pattern(4096, 2), 1 << 20), "write at 1 MiB");
            Expect(PosixCalls.Fsync(fd), "fsync");
            Expect(PosixCalls.Lseek(fd, 0, LibC.SEEK_DATA, out long data), "SEEK_DATA 0");
            Assert.That(data, Is.Zero);
            Expect(PosixCalls.Lseek(fd, 0, LibC.SEEK_HOLE, out long hole), "SEEK_HOLE 0");
            Assert.That(hole, Is.InRange(4096L, 1L << 20));
            Expect(PosixCalls.Lseek(fd, hole, LibC.SEEK_DATA, out data), "SEEK_DATA after the hole");
            Assert.That(data, Is.EqualTo(1L << 20));
            Expect(PosixCalls.Lseek(fd, data, LibC.SEEK_HOLE, out hole), "SEEK_HOLE at the end");
            Assert.That(hole, Is.EqualTo((1L << 20) + 4096));
            Assert.That(PosixCalls.Lseek(fd, (1L << 20) + 4096, LibC.SEEK_DATA, out _), Is.EqualTo(Errno.ENXIO));
            Assert.That(PosixCalls.Lseek(fd, 1L << 30, LibC.SEEK_HOLE, out _), Is.EqualTo(Errno.ENXIO));
        });
    }

    [Test]
    public void Copy_file_range_copies_between_files()
    {
        Requires(PosixCategory.CopyFileRange);
        var payload = Pattern(300_000, 9);
        File.WriteAllBytes(P("src"), payload);
        Expect(PosixCalls.Open(P("src"), LibC.O_RDONLY, 0, out int input), "open src");
        Expect(PosixCalls.Open(P("dst"), LibC.O_CREAT | LibC.O_WRONLY, 0x1A4, out int output), "open dst");
        try
        {
            long total = 0;
            while (total < payload.Length)
            {
                Expect(PosixCalls.CopyFileRange(input, total, output, total, payload.Length - total, out long copied), "copy_file_range");
                Assert.That(copied, Is.Positive);
                total += copied;
            }
            Expect(PosixCalls.CopyFileRange(input, payload.Length, output, payload.Length, 100, out long atEnd), "copy at EOF");
            Assert.That(atEnd, Is.Zero);
        }
        finally
        {
            PosixCalls.Close(input);
            PosixCalls.Close(output);
        }
        Assert.That(File.ReadAllBytes(P("dst")), Is.EqualTo(payload));
    }

    // ------------------------------------------------------------------ statfs and metadata

    [Test]
    public void Statvfs_reports_a_consistent_filesystem()
    {
        Requires(PosixCategory.StatFs);
        Expect(PosixCalls.StatVfs(Dir, out var st), "statvfs");
        Assert.That(st.Bsize, Is.Positive);
        Assert.That(st.Blocks, Is.Positive);
        Assert.That(st.Bfree, Is.LessThanOrEqualTo(st.Blocks));
        Assert.That(st.Bavail, Is.LessThanOrEqualTo(st.Bfree));
        Assert.That(st.Ffree, Is.LessThanOrEqualTo(st.Files));
        Assert.That(st.NameMax, Is.EqualTo(255UL));
    }

    [Test]
    public void Chmod_chown_and_utimensat_change_what_stat_reports()
    {
        Requires(PosixCategory.Metadata);
        string path = P("f");
        File.WriteAllText(path, "");
        Expect(PosixCalls.Chmod(path, 0x9C0), "chmod 04700");
        Assert.That(Lstat(path).Mode & 0xFFF, Is.EqualTo(0x9C0u));
        Expect(PosixCalls.Lchown(path, OtherUid, OtherUid), "chown");
        var st = Lstat(path);
        Assert.That((st.Uid, st.Gid), Is.EqualTo((OtherUid, OtherUid)));
        Assert.That(st.Mode & LibC.S_ISUID, Is.Zero, "chown clears set-user-id");

        Expect(PosixCalls.SetTimes(path, new PosixTimespec { Seconds = 1_000_000, Nanoseconds = 1234 }, new PosixTimespec { Seconds = 2_000_000, Nanoseconds = 5678 }), "utimensat");
        st = Lstat(path);
        Assert.That((st.AtimeSec, st.AtimeNsec), Is.EqualTo((1_000_000L, 1234L)));
        Assert.That((st.MtimeSec, st.MtimeNsec), Is.EqualTo((2_000_000L, 5678L)));
        Assert.That(st.CtimeSec, Is.GreaterThan(1_600_000_000L));

        Expect(PosixCalls.SetTimes(path, new PosixTimespec { Nanoseconds = PosixCalls.UTIME_NOW }, new PosixTimespec { Nanoseconds = PosixCalls.UTIME_NOW }), "utimensat now");
        Assert.That(Lstat(path).MtimeSec, Is.GreaterThan(1_600_000_000L));
    }

    [Test]
    public void Write_moves_mtime_and_ctime_and_chmod_moves_only_ctime()
    {
        Requires(PosixCategory.Metadata);
        string path = P("f");
        File.WriteAllText(path, "x");
        var old = new PosixTimespec { Seconds = 1_000_000 };
        Expect(PosixCalls.SetTimes(path, old, old), "set old times");
        File.AppendAllText(path, "y");
        var written = Lstat(path);
        Assert.That(written.MtimeSec, Is.GreaterThan(1_600_000_000L), "write moves mtime");

        Expect(PosixCalls.SetTimes(path, old, old), "set old times again");
        var before = Lstat(path);
        Thread.Sleep(20);
        Expect(PosixCalls.Chmod(path, 0x180), "chmod");
        var after = Lstat(path);
        Assert.That(after.MtimeSec, Is.EqualTo(1_000_000L), "chmod leaves mtime");
        Assert.That((after.CtimeSec * 1_000_000_000L) + after.CtimeNsec, Is.GreaterThan((before.CtimeSec * 1_000_000_000L) + before.CtimeNsec), "chmod moves ctime");
    }

    [Test]
    public void Access_reports_existence()
    {
        Requires(PosixCategory.Metadata);
        File.WriteAllText(P("f"), "");
        Assert.That(PosixCalls.Access(P("f"), PosixCalls.F_OK), Is.EqualTo(Errno.OK));
        Assert.That(PosixCalls.Access(P("f"), PosixCalls.R_OK | PosixCalls.W_OK), Is.EqualTo(Errno.OK));
        Assert.That(PosixCalls.Access(P("missing"), PosixCalls.F_OK), Is.EqualTo(Errno.ENOENT));
    }

    [Test]
    public void A_setgid_directory_passes_its_group_to_new_entries()
    {
        Requires(PosixCategory.Ownership);
        Expect(PosixCalls.Mkdir(P("shared"), 0x1FF), "mkdir");
        Expect(PosixCalls.Lchown(P("shared"), 0, 50), "chgrp 50");
        Expect(PosixCalls.Chmod(P("shared"), 0x5FF), "chmod 02777");
        File.WriteAllText(P("shared/file"), "");
        Expect(PosixCalls.Mkdir(P("shared/sub"), 0x1ED), "mkdir sub");
        Assert.That(Lstat(P("shared/file")).Gid, Is.EqualTo(50u));
        Assert.That(Lstat(P("shared/sub")).Gid, Is.EqualTo(50u));
        Assert.That(Lstat(P("shared/sub")).Mode & LibC.S_ISGID, Is.EqualTo(LibC.S_ISGID));
    }

    // ------------------------------------------------------------------ permissions for a non-root uid

    [Test]
    public void Another_user_cannot_read_a_0600_root_file_but_can_read_a_0644_one()
    {
        Requires(PosixCategory.Permissions);
        File.WriteAllText(P("secret"), "secret");
        Expect(PosixCalls.Chmod(P("secret"), 0x180), "chmod 0600");
        File.WriteAllText(P("public"), "public");
        Expect(PosixCalls.Chmod(P("public"), 0x1A4), "chmod 0644");

        RequireOtherUserReachesDir();
        var denied = RunAsOtherUser("cat", P("secret"));
        Assert.That(denied.ExitCode, Is.Not.Zero);
        Assert.That(denied.Error, Does.Contain("Permission denied"));
        var allowed = RunAsOtherUser("cat", P("public"));
        Assert.That(allowed.ExitCode, Is.Zero, allowed.Error);
        Assert.That(allowed.Output, Is.EqualTo("public"));
    }

    [Test]
    public void A_write_by_another_user_clears_the_setuid_bit()
    {
        Requires(PosixCategory.Permissions);
        Requires(PosixCategory.Ownership);
        File.WriteAllText(P("suid-tool"), "#!/bin/sh\n");
        Expect(PosixCalls.Chmod(P("suid-tool"), 0xDFF), "chmod 06777"); // setuid, setgid, rwx for all
        Assert.That(Lstat(P("suid-tool")).Mode & 0xC00, Is.EqualTo(0xC00u), "set-id bits set by root");

        RequireOtherUserReachesDir();
        var append = RunAsOtherUser("sh", "-c", $"echo more >> '{P("suid-tool")}'");
        Assert.That(append.ExitCode, Is.Zero, append.Error);
        Assert.That(Lstat(P("suid-tool")).Mode & 0xC00, Is.Zero, "a write by an unprivileged user must drop setuid and setgid (with group exec)");
    }

    [Test]
    public void Another_user_cannot_create_in_a_0755_root_directory()
    {
        Requires(PosixCategory.Permissions);
        RequireOtherUserReachesDir();
        var result = RunAsOtherUser("touch", P("intruder"));
        Assert.That(result.ExitCode, Is.Not.Zero);
        Assert.That(result.Error, Does.Contain("Permission denied"));
        Assert.That(File.Exists(P("intruder")), Is.False);
        var remove = RunAsOtherUser("mkdir", P("intruder-dir"));
        Assert.That(remove.ExitCode, Is.Not.Zero);
    }

    [Test]
    public void In_a_sticky_directory_users_delete_only_their_own_files()
    {
        Requires(PosixCategory.Permissions);
        RequireOtherUserReachesDir();
        string tmp = P("tmp");
        Expect(PosixCalls.Mkdir(tmp, 0x1FF), "mkdir");
        Expect(PosixCalls.Chmod(tmp, 0x3FF), "chmod 01777");
        File.WriteAllText(Path.Combine(tmp, "roots"), "r");
        Expect(PosixCalls.Chmod(Path.Combine(tmp, "roots"), 0x1B6), "chmod 0666");

        var create = RunAsOtherUser("touch", Path.Combine(tmp, "mine"));
        Assert.That(create.ExitCode, Is.Zero, create.Error);
        Assert.That(Lstat(Path.Combine(tmp, "mine")).Uid, Is.EqualTo(OtherUid));

        var removeOthers = RunAsOtherUser("rm", "-f", Path.Combine(tmp, "roots"));
        Assert.That(removeOthers.ExitCode, Is.Not.Zero);
        Assert.That(removeOthers.Error, Does.Contain("Operation not permitted"));
        Assert.That(File.Exists(Path.Combine(tmp, "roots")), Is.True);

        var renameOthers = RunAsOtherUser("mv", Path.Combine(tmp, "roots"), Path.Combine(tmp, "stolen"));
        Assert.That(renameOthers.ExitCode, Is.Not.Zero);

        var removeOwn = RunAsOtherUser("rm", Path.Combine(tmp, "mine"));
        Assert.That(removeOwn.ExitCode, Is.Zero, removeOwn.Error);
        Assert.That(File.Exists(Path.Combine(tmp, "mine")), Is.False);
    }

    [Test]
    public void Another_user_can_write_a_file_it_owns_but_not_chmod_a_root_file()
    {
        Requires(PosixCategory.Permissions);
        RequireOtherUserReachesDir();
        string own = P("own");
        Expect(PosixCalls.Mkdir(own, 0x1ED), "mkdir");
        Expect(PosixCalls.Lchown(own, OtherUid, OtherUid), "chown dir");
        var write = RunAsOtherUser("sh", "-c", $"echo hello > '{own}/file' && chmod 600 '{own}/file' && cat '{own}/file'");
        Assert.That(write.ExitCode, Is.Zero, write.Error);
        Assert.That(write.Output, Is.EqualTo("hello\n"));
        Assert.That(Lstat(Path.Combine(own, "file")).Mode & 0xFFF, Is.EqualTo(0x180u));

        File.WriteAllText(P("rootfile"), "");
        var chmod = RunAsOtherUser("chmod", "777", P("rootfile"));
        Assert.That(chmod.ExitCode, Is.Not.Zero);
        Assert.That(chmod.Error, Does.Contain("Operation not permitted"));
    }

    // ------------------------------------------------------------------ concurrency

    [Test]
    public void Parallel_creators_writers_renamers_and_deleters_leave_a_consistent_directory()
    {
        Requires(PosixCategory.Concurrency);
        const int threads = 6;
        var payloads = Enumerable.Range(0, threads).Select(t => Pattern(20_000 + (t * 1000), (byte)(t + 1))).ToArray();
        var errors = new ConcurrentQueue<string>();
        var deadline = DateTime.UtcNow.AddSeconds(3);
        var workers = Enumerable.Range(0, threads).Select(t => Task.Run(() =>
        {
            var random = new Random(t);
            int round = 0;
            while (DateTime.UtcNow < deadline)
            {
                string own = P($"w{t}-{round++}");
                string shared = P($"shared-{random.Next(20)}");
                try
                {
                    File.WriteAllBytes(own, payloads[t]);
                    switch (random.Next(3))
                    {
                        case 0:
                            File.Move(own, shared, overwrite: true);
                            break;
                        case 1:
                            File.Delete(shared);
                            File.Delete(own);
                            break;
                        default:
                            var rc = PosixCalls.Rename(own, shared, LibC.RENAME_NOREPLACE);
                            if (rc == Errno.EEXIST)
                            {
                                File.Delete(own);
                            }
                            else if (rc != Errno.OK)
                            {
                                errors.Enqueue($"renameat2 {rc}");
                            }
                            break;
                    }
                }
                catch (IOException e)
                {
                    errors.Enqueue(e.Message);
                }
            }
        })).ToArray();
        Task.WaitAll(workers);

        Assert.That(errors, Is.Empty);
        var entries = Directory.EnumerateFileSystemEntries(Dir).ToList();
        Assert.That(entries.Select(Path.GetFileName), Is.Unique);
        Assert.That(entries.Select(Path.GetFileName), Is.All.StartsWith("shared-"), "every private name was renamed or deleted");
        foreach (var entry in entries)
        {
            var content = File.ReadAllBytes(entry);
            Assert.That(payloads.Any(p => p.AsSpan().SequenceEqual(content)), Is.True, $"{entry} holds one writer's complete payload");
            Assert.That(Lstat(entry).Nlink, Is.EqualTo(1UL));
        }
    }

    // ------------------------------------------------------------------ helpers

    /// <summary>Skips the test with the fixture's reason when it opted out of <paramref name="category"/>.</summary>
    protected void Requires(PosixCategory category)
    {
        string? reason = OptOutReason(category);
        if (reason is not null)
        {
            Assert.Ignore($"{category}: {reason}");
        }
    }

    /// <summary>A path inside this test's directory.</summary>
    protected string P(string relative) => Path.Combine(Dir, relative);

    protected static void Expect(Errno result, string what) => Assert.That(result, Is.EqualTo(Errno.OK), what);

    protected static PosixStat Lstat(string path)
    {
        Expect(PosixCalls.Lstat(path, out var st), $"lstat {path}");
        return st;
    }

    protected static byte[] Pattern(int length, byte seed)
    {
        var data = new byte[length];
        for (int i = 0; i < length; i++)
        {
            data[i] = (byte)((i * 7) + seed + (i >> 12));
        }
        return data;
    }

    private static string GetXattr(string path, string name)
    {
        var buffer = new byte[256];
        Expect(PosixCalls.GetXattr(path, name, buffer, out int size), $"getxattr {name}");
        return Encoding.UTF8.GetString(buffer, 0, size);
    }

    private void WithFile(string name, Action<int> body)
    {
        Expect(PosixCalls.Open(P(name), LibC.O_CREAT | LibC.O_RDWR, 0x1A4, out int fd), $"create {name}");
        try
        {
            body(fd);
        }
        finally
        {
            PosixCalls.Close(fd);
        }
    }

    /// <summary>The result of a program run as <see cref="OtherUid"/>.</summary>
    protected readonly record struct ProgramResult(int ExitCode, string Output, string Error);

    /// <summary>Runs a real program as uid/gid 1000 without supplementary groups (setpriv from util-linux).</summary>
    protected static ProgramResult RunAsOtherUser(string program, params string[] arguments)
    {
        if (!File.Exists(SetprivPath))
        {
            Assert.Ignore($"Permissions: {SetprivPath} (util-linux) is not installed");
        }
        var start = new ProcessStartInfo(SetprivPath)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[] { $"--reuid={OtherUid}", $"--regid={OtherUid}", "--clear-groups", "--", program }.Concat(arguments))
        {
            start.ArgumentList.Add(argument);
        }
        start.Environment["LC_ALL"] = "C";
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(30)))
        {
            process.Kill();
            Assert.Fail($"{program} as uid {OtherUid} did not finish");
        }
        return new ProgramResult(process.ExitCode, output.Result, error.Result);
    }

    /// <summary>
    /// Fails (not skips) when uid 1000 cannot even list the test directory: then every permission result
    /// below would be meaningless (typically a mount without allow_other, or a Root inside a 0700 directory).
    /// </summary>
    private void RequireOtherUserReachesDir()
    {
        var probe = RunAsOtherUser("ls", "-a", Dir);
        Assert.That(probe.ExitCode, Is.Zero, $"uid {OtherUid} cannot reach {Dir}: {probe.Error}");
    }

    private static void RemoveTree(string path)
    {
        // Entries may be read-only, sticky or owned by another uid; as root a plain recursive delete works
        // once directories are writable, and symlinks are removed without following them.
        foreach (var entry in Directory.EnumerateFileSystemEntries(path))
        {
            if (PosixCalls.Lstat(entry, out var st) == Errno.OK && st.Type == LibC.S_IFDIR)
            {
                PosixCalls.Chmod(entry, 0x1ED);
                RemoveTree(entry);
            }
            else
            {
                PosixCalls.Unlink(entry);
            }
        }
        PosixCalls.Rmdir(path);
    }
}
