using System.Text;
using InSpatialFs.Fuse.Abi;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Overlay;
using InSpatialFs.TestKit.Processes;
using Microsoft.Extensions.Logging.Abstractions;

namespace InSpatialFs.Storage.Tests.Contract;

/// <summary>
/// A lower file with two names (/etc/passwd and /opt/p) is one overlay node, and its last-seen name moves with every
/// lookup. A rename that copies it up must put the copy under the name it renames, even when another caller looks up
/// the other name meanwhile (the daemon itself reads the container's /etc/passwd for user names). Before, the copy
/// went to the other name and the rename failed with ENOENT (`mv` of a directory holding such a link, seen in CI).
/// The other caller is played by a handler of <see cref="OverlayFileSystem.CopiedUp"/>: it runs on the renaming
/// thread between the copy-up of one side of an exchange and the other, which is where the race fell.
/// </summary>
[TestFixture]
[Category("Mount")]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class OverlayHardLinkCopyUpTests
{
    private const uint RenameExchange = 2;
    private string _root = "";

    [SetUp]
    public void Layers()
    {
        _root = Path.Combine(Path.GetTempPath(), "isfs-overlay-links-" + Guid.NewGuid().ToString("N"));
        foreach (string d in new[] { "lower/etc", "lower/opt", "upper", "work" }) Directory.CreateDirectory(Path.Combine(_root, d));
        File.WriteAllText(Path.Combine(_root, "lower/etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
        Shell.Check($"ln '{_root}/lower/etc/passwd' '{_root}/lower/opt/p'");
        File.WriteAllText(Path.Combine(_root, "lower/opt/x"), "x\n");
    }

    [TearDown]
    public void Remove() => Directory.Delete(_root, recursive: true);

    private OverlayFileSystem Mount() =>
        new(new OverlayLayers([Path.Combine(_root, "lower")], Path.Combine(_root, "upper"), Path.Combine(_root, "work")), NullLogger.Instance);

    private static ulong Lookup(OverlayFileSystem fs, ulong parent, string name)
    {
        Assert.That(fs.Lookup(parent, Encoding.UTF8.GetBytes(name), out FuseAttr a), Is.EqualTo(Errno.OK), name);
        return a.Ino;
    }

    [TestCase(false, TestName = "An_exchange_with_a_hard_link_copies_it_up_under_the_exchanged_name_while_its_other_name_is_looked_up")]
    [TestCase(true, TestName = "An_exchange_with_a_hard_link_links_its_copy_in_when_its_other_name_was_copied_up_meanwhile")]
    public void Exchange(bool otherNameCopiedUp)
    {
        using OverlayFileSystem fs = Mount();
        ulong etc = Lookup(fs, fs.RootIno, "etc"), opt = Lookup(fs, fs.RootIno, "opt");
        Assert.That(Lookup(fs, opt, "p"), Is.EqualTo(Lookup(fs, etc, "passwd")), "positive control: the two names are one node");
        bool interfered = false;
        fs.CopiedUp += (_, _, _) =>
        {
            if (interfered) return;
            interfered = true;
            ulong passwd = Lookup(fs, etc, "passwd"); // the other caller: the node's last-seen name is /etc/passwd again
            if (otherNameCopiedUp)
            {
                Assert.That(fs.SetAttr(passwd, new AttrChange { Mode = 0x1A0 }, new Caller(0, 0, 1), out _), Is.EqualTo(Errno.OK), "chmod copies /etc/passwd up");
            }
        };

        Errno e = fs.Rename(opt, "x"u8, opt, "p"u8, RenameExchange);

        Assert.That(interfered, Is.True, "the other lookup ran inside the rename");
        Assert.That(e, Is.EqualTo(Errno.OK));
        Assert.That(File.ReadAllText(Path.Combine(_root, "upper/opt/p")), Is.EqualTo("x\n"), "x took the name p");
        Assert.That(File.ReadAllText(Path.Combine(_root, "upper/opt/x")), Does.StartWith("root:x"), "the link took the name x");
        Assert.That(File.ReadAllText(Path.Combine(_root, "lower/opt/p")), Does.StartWith("root:x"), "the lower layer is untouched");
        if (otherNameCopiedUp)
        {
            Assert.That(Inode(Path.Combine(_root, "upper/opt/x")), Is.EqualTo(Inode(Path.Combine(_root, "upper/etc/passwd"))),
                "one copy for both names: a write through one is seen through the other");
        }
        else
        {
            Assert.That(File.Exists(Path.Combine(_root, "upper/etc/passwd")), Is.False, "the other name was only looked up, not copied");
        }
    }

    [Test]
    public void Unlinking_a_hard_link_whose_other_name_was_copied_up_meanwhile_whites_it_out()
    {
        using OverlayFileSystem fs = Mount();
        ulong etc = Lookup(fs, fs.RootIno, "etc"), opt = Lookup(fs, fs.RootIno, "opt");
        Lookup(fs, opt, "p");
        bool interfered = false;
        fs.CopiedUp += (_, _, _) =>
        {
            if (interfered) return;
            interfered = true; // the unlink copies /opt up; then another caller's chmod copies the file up as /etc/passwd
            Assert.That(fs.SetAttr(Lookup(fs, etc, "passwd"), new AttrChange { Mode = 0x1A0 }, new Caller(0, 0, 1), out _), Is.EqualTo(Errno.OK));
        };

        Assert.That(fs.Unlink(opt, "p"u8), Is.EqualTo(Errno.OK));

        Assert.That(interfered, Is.True, "the other caller ran inside the unlink");
        Assert.That(fs.Lookup(opt, "p"u8, out _), Is.EqualTo(Errno.ENOENT), "the name is gone");
        Assert.That(Shell.Check($"stat -c '%F %t:%T' '{_root}/upper/opt/p'").Trim(), Is.EqualTo("character special file 0:0"), "a whiteout hides the lower name");
        Assert.That(File.ReadAllText(Path.Combine(_root, "upper/etc/passwd")), Does.StartWith("root:x"), "positive control: the other name keeps the copy");
    }

    private static string Inode(string path) => Shell.Check($"stat -c %i '{path}'").Trim();
}
