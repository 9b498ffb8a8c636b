using InSpatialFs.Interop;
using InSpatialFs.Security.Policy;

namespace InSpatialFs.Security.Tests.Policy;

public sealed class PrivilegeControlsTests
{
    [TestCase("/tmp/l", "x", false)]
    [TestCase("/tmp/l", "../etc/passwd", false)]
    [TestCase("/tmp/l", "../../etc/passwd", true)]
    [TestCase("/a/b/c/l", "../../../x", false)]
    [TestCase("/a/b/c/l", "../../../../x", true)]
    [TestCase("/tmp/l", "/etc/passwd", false)]
    [TestCase("/tmp/l", "/../../etc", true)]
    [TestCase("/tmp/l", "/proc/self/root", true)]
    [TestCase("/tmp/l", "../proc/1/cwd", true)]
    [TestCase("/tmp/l", "/sys/kernel", true)]
    [TestCase("/tmp/l", "/process/x", false)]
    [TestCase("/tmp/l", "./././x", false)]
    [TestCase("/l", "..", true)]
    [TestCase("/l", "/", false)]
    public void Symlink_targets_are_resolved_lexically_against_the_link_directory(string link, string target, bool leaves)
    {
        Assert.That(PrivilegeControls.SymlinkLeavesNamespace(link, target), Is.EqualTo(leaves));
    }

    [TestCase(LibC.S_IFREG | 0x9ED, true)]
    [TestCase(LibC.S_IFREG | 0x5ED, true)]
    [TestCase(LibC.S_IFDIR | 0x5ED, false)]
    [TestCase(LibC.S_IFDIR | 0x9ED, true)]
    [TestCase(LibC.S_IFREG | 0x3ED, false)]
    public void Setuid_and_setgid_detection(uint mode, bool refused)
    {
        Assert.That(PrivilegeControls.HasSetId(mode), Is.EqualTo(refused));
    }
}
