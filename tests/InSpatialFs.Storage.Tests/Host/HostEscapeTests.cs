using System.Text;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using static InSpatialFs.Storage.Tests.Host.HostSandbox;

namespace InSpatialFs.Storage.Tests.Host;

/// <summary>Every attempt to reach "outside" (a sibling of the served "src") through the backend must fail.</summary>
[TestFixture]
public sealed class HostEscapeTests
{
    private HostSandbox _box = null!;

    [SetUp]
    public void SetUp() => _box = new HostSandbox();

    [TearDown]
    public void TearDown() => _box.Dispose();

    [Test]
    public void Dot_dot_name_is_refused_with_the_escape_result()
    {
        Directory.CreateDirectory(_box.Src("sub"));
        ulong sub = _box.Lookup(_box.Fs.RootIno, "sub");
        Assert.That(_box.Fs.Lookup(sub, B("plain"), out _), Is.EqualTo(Errno.ENOENT), "positive control: a plain missing name is no escape");
        Assert.That(_box.Fs.Lookup(_box.Fs.RootIno, B(".."), out _), Is.EqualTo(BackendResult.EscapeRefused));
        Assert.That(_box.Fs.Lookup(sub, B(".."), out _), Is.EqualTo(BackendResult.EscapeRefused));
        Assert.That(_box.Fs.Lookup(_box.Fs.RootIno, B("../outside"), out _), Is.EqualTo(BackendResult.EscapeRefused));
        Assert.That(_box.Fs.Create(_box.Fs.RootIno, B("../outside/new"), LibC.O_RDWR, 0x1A4, User, out _, out _, out _), Is.EqualTo(BackendResult.EscapeRefused));
        Assert.That(_box.Fs.MkDir(_box.Fs.RootIno, B("../outside/d"), 0x1ED, User, out _), Is.EqualTo(BackendResult.EscapeRefused));
        Assert.That(File.Exists(Path.Combine(_box.Outside, "new")), Is.False);
    }

    [TestCase(true)]
    [TestCase(false)]
    public void Symlink_pointing_outside_is_the_link_itself_and_cannot_be_traversed_or_opened(bool absolute)
    {
        string target = absolute ? _box.Outside : "../outside";
        File.CreateSymbolicLink(_box.Src("out"), target);
        Assert.That(_box.Fs.Lookup(_box.Fs.RootIno, B("out"), out FuseAttr link), Is.EqualTo(Errno.OK));
        Assert.That(link.Mode & LibC.S_IFMT, Is.EqualTo(LibC.S_IFLNK), "we get the link, never the target");
        Assert.That(_box.Fs.Lookup(link.Ino, B("secret"), out _), Is.Not.EqualTo(Errno.OK));
        Assert.That(_box.Fs.Open(link.Ino, LibC.O_RDONLY, User, out _), Is.EqualTo(Errno.EACCES));
        Assert.That(_box.Fs.OpenDir(link.Ino, out _), Is.EqualTo(Errno.ENOTDIR));
        var buf = new byte[512];
        Assert.That(_box.Fs.ReadLink(link.Ino, buf, out int n), Is.EqualTo(Errno.OK));
        Assert.That(Encoding.UTF8.GetString(buf, 0, n), Is.EqualTo(target));
    }

    [Test]
    public void An_escape_tried_in_a_loop_is_logged_a_bounded_number_of_times()
    {
        var lines = new CountingLogger();
        using var box = new HostSandbox(logger: lines);
        for (int i = 0; i < 500; i++)
        {
            Assert.That(box.Fs.Lookup(box.Fs.RootIno, B(".."), out _), Is.EqualTo(BackendResult.EscapeRefused), "every try is refused");
        }

        Assert.That(lines.Count(2101), Is.EqualTo(20), "the first 20 in a minute are logged, the rest counted for the next line");
    }

    /// <summary>Counts log lines by event id.</summary>
    private sealed class CountingLogger : Microsoft.Extensions.Logging.ILogger
    {
        private readonly System.Collections.Concurrent.ConcurrentDictionary<int, int> _byId = new();

        public int Count(int eventId) => _byId.GetValueOrDefault(eventId);

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;

        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            => _byId.AddOrUpdate(eventId.Id, 1, (_, n) => n + 1);
    }

    [Test]
    public void Symlink_to_etc_is_looked_up_and_opened_as_the_link_only()
    {
        File.CreateSymbolicLink(_box.Src("etc"), "/etc");
        File.CreateSymbolicLink(_box.Src("passwd"), "/etc/passwd");
        Assert.That(_box.Fs.Lookup(_box.Fs.RootIno, B("etc"), out FuseAttr etc), Is.EqualTo(Errno.OK));
        Assert.That(_box.Fs.Lookup(_box.Fs.RootIno, B("passwd"), out FuseAttr pw), Is.EqualTo(Errno.OK));
        Assert.Multiple(() =>
        {
            Assert.That(etc.Mode & LibC.S_IFMT, Is.EqualTo(LibC.S_IFLNK));
            Assert.That(pw.Mode & LibC.S_IFMT, Is.EqualTo(LibC.S_IFLNK));
            Assert.That(pw.Size, Is.EqualTo((ulong)"/etc/passwd".Length), "the size of the link, not of /etc/passwd");
            Assert.That(_box.Fs.Lookup(etc.Ino, B("passwd"), out _), Is.Not.EqualTo(Errno.OK));
            Assert.That(_box.Fs.Open(pw.Ino, LibC.O_RDONLY, User, out _), Is.EqualTo(Errno.EACCES));
            Assert.That(_box.Fs.GetXattr(pw.Ino, B("user.x"), new byte[4], out _), Is.Not.EqualTo(Errno.OK));
            Assert.That(_box.Fs.Create(_box.Fs.RootIno, B("passwd"), LibC.O_RDWR | LibC.O_TRUNC | LibC.O_EXCL, 0x1A4, User, out _, out _, out _),
                Is.EqualTo(Errno.EEXIST), "create never follows an existing link");
            Assert.That(_box.Fs.Create(_box.Fs.RootIno, B("passwd"), LibC.O_RDWR | LibC.O_TRUNC, 0x1A4, User, out _, out _, out _),
                Is.EqualTo(Errno.EACCES), "without O_EXCL the existing name is opened as a node: a link is never opened");
        });
        Assert.That(File.ReadAllText("/etc/passwd"), Does.StartWith("root:"));
    }

    [Test]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    [Category("Mount")]
    public void Setattr_on_a_link_to_outside_changes_the_link_not_the_target()
    {
        string secret = Path.Combine(_box.Outside, "secret");
        File.CreateSymbolicLink(_box.Src("s"), secret);
        var before = File.GetUnixFileMode(secret);
        ulong link = _box.Lookup(_box.Fs.RootIno, "s");
        var chown = new AttrChange { Uid = 4242, Gid = 4242, Mtime = new TimeChange(12345, 0) };
        Assert.That(_box.Fs.SetAttr(link, chown, User, out FuseAttr a), Is.EqualTo(Errno.OK));
        Assert.That(a.Uid, Is.EqualTo(4242u));
        Assert.That(_box.Fs.SetAttr(link, new AttrChange { Size = 0 }, User, out _), Is.Not.EqualTo(Errno.OK));
        var outside = new FileInfo(secret);
        Assert.Multiple(() =>
        {
            Assert.That(File.ReadAllText(secret), Is.EqualTo("OUTSIDE-SECRET"));
            Assert.That(File.GetUnixFileMode(secret), Is.EqualTo(before));
            Assert.That(outside.LastWriteTimeUtc.Year, Is.GreaterThan(2000));
        });
    }

    [Test]
    public void Dot_dot_chain_through_symlinks_never_leaves_the_tree()
    {
        Directory.CreateDirectory(_box.Src("a/b"));
        File.CreateSymbolicLink(_box.Src("a/b/up"), "../../..");
        File.CreateSymbolicLink(_box.Src("a/b/up2"), "../../../outside/secret");
        ulong b = _box.Walk("a/b");
        Assert.That(_box.Fs.Lookup(b, B("up"), out FuseAttr up), Is.EqualTo(Errno.OK));
        Assert.That(up.Mode & LibC.S_IFMT, Is.EqualTo(LibC.S_IFLNK));
        Assert.That(_box.Fs.Lookup(up.Ino, B("outside"), out _), Is.Not.EqualTo(Errno.OK));
        ulong up2 = _box.Lookup(b, "up2");
        Assert.That(_box.Fs.Open(up2, LibC.O_RDONLY, User, out _), Is.EqualTo(Errno.EACCES));
        Assert.That(_box.Fs.Link(up2, b, B("hard"), out FuseAttr hard), Is.EqualTo(Errno.OK));
        Assert.That(hard.Mode & LibC.S_IFMT, Is.EqualTo(LibC.S_IFLNK), "a hard link to a link stays a link");
        Assert.That(File.ReadAllText(Path.Combine(_box.Outside, "secret")), Is.EqualTo("OUTSIDE-SECRET"));
    }

    [Test]
    public void Hard_link_to_a_host_file_outside_cannot_be_expressed()
    {
        // Link takes a node id the backend handed out; ids exist only for names resolved beneath the root.
        Assert.That(_box.Fs.Link(987654321, _box.Fs.RootIno, B("stolen"), out _), Is.EqualTo(Errno.ENOENT));
        File.WriteAllText(_box.Src("mine"), "m");
        ulong mine = _box.Lookup(_box.Fs.RootIno, "mine");
        Assert.That(_box.Fs.Link(mine, _box.Fs.RootIno, B("../outside/planted"), out _), Is.EqualTo(BackendResult.EscapeRefused));
        Assert.That(File.Exists(Path.Combine(_box.Outside, "planted")), Is.False);
        // A link to a link pointing at the outside file copies the link, not the secret's inode.
        File.CreateSymbolicLink(_box.Src("ln"), Path.Combine(_box.Outside, "secret"));
        ulong ln = _box.Lookup(_box.Fs.RootIno, "ln");
        Assert.That(_box.Fs.Link(ln, _box.Fs.RootIno, B("ln2"), out FuseAttr l2), Is.EqualTo(Errno.OK));
        Assert.That(l2.Mode & LibC.S_IFMT, Is.EqualTo(LibC.S_IFLNK));
        Assert.That(new FileInfo(Path.Combine(_box.Outside, "secret")).Length, Is.EqualTo(14));
    }

    [Test]
    public void Node_keeps_its_inode_when_its_directory_is_renamed_or_replaced_by_a_symlink()
    {
        Directory.CreateDirectory(_box.Src("a/b"));
        File.WriteAllText(_box.Src("a/b/file"), "INSIDE");
        ulong b = _box.Walk("a/b");
        ulong file = _box.Lookup(b, "file");
        Assert.That(_box.Fs.Open(file, LibC.O_RDONLY, User, out IOpenFile open), Is.EqualTo(Errno.OK));
        // Rename the directory away and put a symlink to outside in its place.
        Directory.CreateDirectory(_box.Src("z"));
        Assert.That(_box.Fs.Rename(_box.Fs.RootIno, B("a"), _box.Walk("z"), B("moved"), 0), Is.EqualTo(Errno.OK));
        File.CreateSymbolicLink(_box.Src("a"), _box.Outside);
        Directory.CreateDirectory(Path.Combine(_box.Outside, "b"));
        File.WriteAllText(Path.Combine(_box.Outside, "b", "file"), "OUTSIDE");
        var buf = new byte[32];
        Assert.That(open.Read(0, buf, out int n), Is.EqualTo(Errno.OK));
        Assert.That(Encoding.UTF8.GetString(buf, 0, n), Is.EqualTo("INSIDE"), "open handle");
        open.Release();
        Assert.That(_box.ReadAll(file), Is.EqualTo("INSIDE"), "reopen of the node is by inode, not by path");
        Assert.That(_box.Fs.Lookup(b, B("file"), out FuseAttr again), Is.EqualTo(Errno.OK));
        Assert.That(again.Ino, Is.EqualTo(file), "lookups under the node use its descriptor");
        Assert.That(_box.ReadAll(again.Ino), Is.EqualTo("INSIDE"));
    }

    [Test]
    public void Proc_self_fd_names_are_plain_names_not_magic_links()
    {
        // The container can create a file called "3"; that must not reach our /proc/self/fd/3.
        Assert.That(_box.Fs.Lookup(_box.Fs.RootIno, B("3"), out _), Is.EqualTo(Errno.ENOENT));
        File.CreateSymbolicLink(_box.Src("self"), "/proc/self/fd/0");
        ulong self = _box.Lookup(_box.Fs.RootIno, "self");
        Assert.That(_box.Fs.Open(self, LibC.O_RDONLY, User, out _), Is.EqualTo(Errno.EACCES));
        Assert.That(_box.Fs.Lookup(self, B("x"), out _), Is.Not.EqualTo(Errno.OK));
    }
}
