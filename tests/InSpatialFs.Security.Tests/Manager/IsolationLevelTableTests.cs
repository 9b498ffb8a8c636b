using InSpatialFs.Interop;
using InSpatialFs.Security.Events;
using static InSpatialFs.Security.Tests.Manager.TestEvents;

namespace InSpatialFs.Security.Tests.Manager;

/// <summary>For every isolation level and op class: allowed, or denied with which errno.</summary>
public sealed class IsolationLevelTableTests
{
    private const IsolationLevel S = IsolationLevel.Standard, E = IsolationLevel.Enhanced, M = IsolationLevel.Maximum;
    private const uint Reg = LibC.S_IFREG;

    private static IEnumerable<TestCaseData> Table()
    {
        (string Name, Func<FsEvent> Make, Errno Std, Errno Enh, Errno Max)[] rows =
        [
            ("read unlisted", () => Ev(FsOp.Open, "/opt/app/conf"), Errno.OK, Errno.OK, Errno.EACCES),
            ("write unlisted", () => Ev(FsOp.Open, "/opt/app/conf", LibC.O_WRONLY), Errno.OK, Errno.EROFS, Errno.EACCES),
            ("create unlisted", () => Ev(FsOp.Create, "/opt/app/new", mode: Reg | 0x1A4), Errno.OK, Errno.EROFS, Errno.EACCES),
            ("lookup root", () => Ev(FsOp.Lookup, "/"), Errno.OK, Errno.OK, Errno.OK),
            ("read forbidden", () => Ev(FsOp.Open, "/etc/shadow"), Errno.EACCES, Errno.EACCES, Errno.EACCES),
            ("getattr forbidden glob", () => Ev(FsOp.GetAttr, "/root/.ssh/id_rsa"), Errno.EACCES, Errno.EACCES, Errno.EACCES),
            ("docker socket", () => Ev(FsOp.Open, "/var/run/docker.sock", LibC.O_RDWR), Errno.EACCES, Errno.EACCES, Errno.EACCES),
            ("read readonly", () => Ev(FsOp.Read, "/usr/bin/ls", size: 4096), Errno.OK, Errno.OK, Errno.OK),
            ("write readonly", () => Ev(FsOp.Write, "/usr/bin/ls", size: 10), Errno.EROFS, Errno.EROFS, Errno.EROFS),
            ("truncate-open readonly", () => Ev(FsOp.Open, "/usr/bin/ls", LibC.O_TRUNC), Errno.EROFS, Errno.EROFS, Errno.EROFS),
            ("unlink readonly", () => Ev(FsOp.Unlink, "/usr/bin/ls"), Errno.EROFS, Errno.EROFS, Errno.EROFS),
            ("chown readonly", () => Ev(FsOp.Chown, "/bin/sh"), Errno.EROFS, Errno.EROFS, Errno.EROFS),
            ("utimens readonly", () => Ev(FsOp.Utimens, "/bin/sh"), Errno.EROFS, Errno.EROFS, Errno.EROFS),
            ("write allowed", () => Ev(FsOp.Write, "/tmp/x", size: 10), Errno.OK, Errno.OK, Errno.OK),
            ("mkdir allowed", () => Ev(FsOp.MkDir, "/data/d", mode: LibC.S_IFDIR | 0x1ED), Errno.OK, Errno.OK, Errno.OK),
            ("rename into readonly", () => Ev(FsOp.Rename, "/tmp/x", target: "/usr/bin/x"), Errno.EROFS, Errno.EROFS, Errno.EROFS),
            ("rename out of readonly", () => Ev(FsOp.Rename, "/usr/bin/ls", target: "/tmp/ls"), Errno.EROFS, Errno.EROFS, Errno.EROFS),
            ("rename onto forbidden", () => Ev(FsOp.Rename, "/tmp/x", target: "/etc/shadow"), Errno.EACCES, Errno.EACCES, Errno.EACCES),
            ("chmod setuid", () => Ev(FsOp.Chmod, "/tmp/x", mode: Reg | 0x9ED), Errno.EPERM, Errno.EPERM, Errno.EPERM),
            ("chmod setgid file", () => Ev(FsOp.Chmod, "/tmp/x", mode: Reg | 0x5ED), Errno.EPERM, Errno.EPERM, Errno.EPERM),
            ("chmod setgid dir", () => Ev(FsOp.Chmod, "/tmp/d", mode: LibC.S_IFDIR | 0x5ED), Errno.OK, Errno.OK, Errno.OK),
            ("chmod plain", () => Ev(FsOp.Chmod, "/tmp/x", mode: Reg | 0x1ED), Errno.OK, Errno.OK, Errno.OK),
            ("create setuid", () => Ev(FsOp.Create, "/tmp/s", mode: Reg | 0x9ED), Errno.EPERM, Errno.EPERM, Errno.EPERM),
            ("mknod char device", () => Ev(FsOp.MkNod, "/tmp/null", mode: LibC.S_IFCHR | 0x1B6), Errno.EPERM, Errno.EPERM, Errno.EPERM),
            ("mknod block device", () => Ev(FsOp.MkNod, "/tmp/sda", mode: LibC.S_IFBLK | 0x1B6), Errno.EPERM, Errno.EPERM, Errno.EPERM),
            ("mknod fifo", () => Ev(FsOp.MkNod, "/tmp/fifo", mode: LibC.S_IFIFO | 0x1A4), Errno.OK, Errno.OK, Errno.EPERM),
            ("mknod socket", () => Ev(FsOp.MkNod, "/tmp/sock", mode: LibC.S_IFSOCK | 0x1A4), Errno.OK, Errno.OK, Errno.EPERM),
            ("setxattr security.capability", () => Ev(FsOp.SetXattr, "/tmp/x", xattr: "security.capability"), Errno.EPERM, Errno.EPERM, Errno.EPERM),
            ("removexattr trusted", () => Ev(FsOp.RemoveXattr, "/tmp/x", xattr: "trusted.overlay.opaque"), Errno.EPERM, Errno.EPERM, Errno.EPERM),
            ("setxattr user", () => Ev(FsOp.SetXattr, "/tmp/x", xattr: "user.note"), Errno.OK, Errno.OK, Errno.EPERM),
            ("getxattr security", () => Ev(FsOp.GetXattr, "/tmp/x", xattr: "security.capability"), Errno.OK, Errno.OK, Errno.OK),
            ("link own allowed file", () => Ev(FsOp.Link, "/tmp/x", target: "/tmp/y"), Errno.OK, Errno.OK, Errno.OK),
            ("link file of another user", () => Ev(FsOp.Link, "/tmp/x", target: "/tmp/y", uid: 1000, nodeUid: 0), Errno.OK, Errno.EPERM, Errno.EPERM),
            ("link readonly file", () => Ev(FsOp.Link, "/usr/bin/ls", target: "/tmp/ls"), Errno.EROFS, Errno.EROFS, Errno.EROFS),
            ("symlink inside", () => Ev(FsOp.Symlink, "/tmp/l", linkTarget: "../data/x"), Errno.OK, Errno.OK, Errno.OK),
            ("symlink absolute inside", () => Ev(FsOp.Symlink, "/tmp/l", linkTarget: "/usr/bin/ls"), Errno.OK, Errno.OK, Errno.OK),
            ("symlink climbing out", () => Ev(FsOp.Symlink, "/tmp/l", linkTarget: "../../../etc/passwd"), Errno.OK, Errno.EPERM, Errno.EPERM),
            ("symlink into proc", () => Ev(FsOp.Symlink, "/tmp/l", linkTarget: "/proc/1/root"), Errno.OK, Errno.EPERM, Errno.EPERM),
        ];
        foreach ((string name, Func<FsEvent> make, Errno std, Errno enh, Errno max) in rows)
        {
            yield return new TestCaseData(S, make, std).SetName($"{name} under standard: {std}");
            yield return new TestCaseData(E, make, enh).SetName($"{name} under enhanced: {enh}");
            yield return new TestCaseData(M, make, max).SetName($"{name} under maximum: {max}");
        }
    }

    [TestCaseSource(nameof(Table))]
    public void Decision_matches_the_table(IsolationLevel level, Func<FsEvent> make, Errno expected)
    {
        using var sm = new SecurityManager(Demo(level));
        FsEvent a = make();
        Verdict v = sm.Decide(a);
        Assert.That(v.IsDenied ? v.Error : Errno.OK, Is.EqualTo(expected), v.Reason);
        Assert.That(a.Decision == Decision.Deny, Is.EqualTo(expected != Errno.OK));
        if (expected != Errno.OK) Assert.That(a.Reason, Is.Not.Null.And.EqualTo(v.Reason));
    }

    [TestCase(IsolationLevel.Standard, 0, Decision.AllowDirect)]
    [TestCase(IsolationLevel.Standard, LibC.O_RDWR, Decision.AllowDirect)]
    [TestCase(IsolationLevel.Enhanced, 0, Decision.AllowDirect)]
    [TestCase(IsolationLevel.Enhanced, LibC.O_RDWR, Decision.Allow)]
    [TestCase(IsolationLevel.Maximum, 0, Decision.Allow)]
    public void DirectFS_is_granted_per_level(IsolationLevel level, int flags, Decision expected)
    {
        using var sm = new SecurityManager(Demo(level));
        Assert.That(sm.Decide(Ev(FsOp.Open, "/tmp/x", flags)).Decision, Is.EqualTo(expected));
    }

    [Test]
    public void Classify_answers_for_directory_listings()
    {
        using var sm = new SecurityManager(Demo(IsolationLevel.Maximum));
        Assert.That(sm.Classify("/etc/shadow"), Is.EqualTo(PathClass.Forbidden));
        Assert.That(sm.Classify("/etc"), Is.EqualTo(PathClass.Forbidden));
        Assert.That(sm.Classify("/data/f"), Is.EqualTo(PathClass.Allowed));
    }
}
