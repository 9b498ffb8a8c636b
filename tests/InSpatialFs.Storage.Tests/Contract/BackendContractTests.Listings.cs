using InSpatialFs.Interop;

namespace InSpatialFs.Storage.Tests.Contract;

// Change stamps of open directories: the proxy lets the kernel keep a listing from one OPENDIR to the next only while
// the stamp is unchanged, so every change to the entries must move it (host, memory, overlay alike).
public abstract partial class BackendContractTests
{
    /// <summary>The stamp of a fresh open of <paramref name="dir"/>, taken once the last change is past the 20 ms in which a host directory gets none.</summary>
    private ulong SettledStamp(ulong dir)
    {
        Thread.Sleep(50);
        Assert.That(Fs.OpenDir(dir, out IOpenDirectory open), Is.EqualTo(Errno.OK));
        ulong stamp = open.ChangeStamp;
        Assert.That(open.Release(), Is.EqualTo(Errno.OK));
        Assert.That(stamp, Is.Not.EqualTo(DirectoryStamp.Unknown), "a settled directory has a stamp");
        return stamp;
    }

    [Test]
    public void A_directory_keeps_its_change_stamp_while_unchanged_and_every_change_to_its_entries_moves_it()
    {
        ulong dir = MkDir(RootIno, "d");
        ulong other = MkDir(RootIno, "other");
        Touch(dir, "a");
        ulong before = SettledStamp(dir);
        Assert.That(SettledStamp(dir), Is.EqualTo(before), "unchanged: the same stamp");

        Touch(other, "elsewhere");
        Assert.That(SettledStamp(dir), Is.EqualTo(before), "a change in another directory leaves it");

        var changes = new (string What, Action Change)[]
        {
            ("create", () => Touch(dir, "b")),
            ("mkdir", () => MkDir(dir, "sub")),
            ("rename within", () => Assert.That(Fs.Rename(dir, N("b"), dir, N("b2"), 0), Is.EqualTo(Errno.OK))),
            ("rename in from elsewhere", () => Assert.That(Fs.Rename(other, N("elsewhere"), dir, N("moved"), 0), Is.EqualTo(Errno.OK))),
            ("rename over", () => Assert.That(Fs.Rename(dir, N("moved"), dir, N("a"), 0), Is.EqualTo(Errno.OK))),
            ("exchange", () => Assert.That(Fs.Rename(dir, N("a"), dir, N("sub"), LibC.RENAME_EXCHANGE), Is.EqualTo(Errno.OK))),
            ("unlink", () => Assert.That(Fs.Unlink(dir, N("b2")), Is.EqualTo(Errno.OK))),
        };
        foreach ((string what, Action change) in changes)
        {
            change();
            ulong after = SettledStamp(dir);
            Assert.That(after, Is.Not.EqualTo(before), what + " moves the stamp");
            before = after;
        }
    }
}
