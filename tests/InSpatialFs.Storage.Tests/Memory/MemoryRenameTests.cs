using InSpatialFs.Interop;
using InSpatialFs.Storage.Memory;

namespace InSpatialFs.Storage.Tests.Memory;

public sealed class MemoryRenameTests
{
    private MemoryFileSystem _fs = null!;
    private ulong _root;

    [SetUp]
    public void SetUp()
    {
        _fs = new MemoryFileSystem();
        _root = _fs.RootIno;
    }

    [TearDown]
    public void TearDown() => _fs.Dispose();

    private Errno Rename(ulong from, string name, ulong to, string newName, uint flags = 0) => _fs.Rename(from, Fs.N(name), to, Fs.N(newName), flags);

    [Test]
    public void File_over_file_replaces_and_frees_the_old_target()
    {
        int baseline = _fs.NodeCount;
        ulong a = _fs.Touch(_root, "a");
        ulong b = _fs.Touch(_root, "b");
        Assert.That(Rename(_root, "a", _root, "b"), Is.EqualTo(Errno.OK));
        Assert.That(_fs.Lookup(_root, "a"), Is.EqualTo(Errno.ENOENT));
        Assert.That(_fs.Lookup(_root, "b", out var attr), Is.EqualTo(Errno.OK));
        Assert.That(attr.Ino, Is.EqualTo(a));
        Assert.That(_fs.GetAttr(b, out _), Is.EqualTo(Errno.ENOENT), "replaced file without references is freed");
        Assert.That(_fs.NodeCount, Is.EqualTo(baseline + 1));
    }

    [Test]
    public void Directory_over_empty_directory_moves_and_fixes_link_counts()
    {
        ulong src = _fs.MkDir(_root, "src");
        ulong dst = _fs.MkDir(_root, "dst");
        ulong moving = _fs.MkDir(src, "moving");
        ulong empty = _fs.MkDir(dst, "empty");
        Assert.That(_fs.Retain(empty), Is.True); // the kernel still holds the directory renamed over
        Assert.That(Rename(src, "moving", dst, "empty"), Is.EqualTo(Errno.OK));
        Assert.That(_fs.Attr(src).Nlink, Is.EqualTo(2u));
        Assert.That(_fs.Attr(dst).Nlink, Is.EqualTo(3u));
        Assert.That(_fs.Attr(empty).Nlink, Is.Zero);
        var entries = new CollectingSink();
        _fs.OpenDir(moving, out IOpenDirectory fh);
        fh.ReadDir(0, entries);
        Assert.That(entries.Entries[1].Ino, Is.EqualTo(dst), "\"..\" follows the move");
    }

    [Test]
    public void Type_and_emptiness_errors()
    {
        ulong dir = _fs.MkDir(_root, "dir");
        _fs.MkDir(_root, "full");
        _fs.Touch(_fs.MkDir(_root, "full2"), "x");
        _fs.Touch(_root, "file");
        _ = dir;
        Assert.Multiple(() =>
        {
            Assert.That(Rename(_root, "dir", _root, "file"), Is.EqualTo(Errno.ENOTDIR));
            Assert.That(Rename(_root, "file", _root, "dir"), Is.EqualTo(Errno.EISDIR));
            Assert.That(Rename(_root, "dir", _root, "full2"), Is.EqualTo(Errno.ENOTEMPTY));
            Assert.That(Rename(_root, "missing", _root, "x"), Is.EqualTo(Errno.ENOENT));
            Assert.That(Rename(_root, "file", _root, new string('x', 256)), Is.EqualTo(Errno.ENAMETOOLONG));
        });
    }

    [Test]
    public void Moving_a_directory_into_its_own_subtree_is_EINVAL()
    {
        ulong a = _fs.MkDir(_root, "a");
        ulong b = _fs.MkDir(a, "b");
        ulong c = _fs.MkDir(b, "c");
        Assert.That(Rename(_root, "a", c, "a"), Is.EqualTo(Errno.EINVAL));
        Assert.That(Rename(_root, "a", a, "self"), Is.EqualTo(Errno.EINVAL));
        Assert.That(Rename(b, "c", _root, "a"), Is.EqualTo(Errno.ENOTEMPTY), "target is an ancestor of the source");
    }

    [Test]
    public void Noreplace_refuses_an_existing_target()
    {
        _fs.Touch(_root, "a");
        _fs.Touch(_root, "b");
        Assert.That(Rename(_root, "a", _root, "b", LibC.RENAME_NOREPLACE), Is.EqualTo(Errno.EEXIST));
        Assert.That(Rename(_root, "a", _root, "c", LibC.RENAME_NOREPLACE), Is.EqualTo(Errno.OK));
        Assert.That(_fs.Lookup(_root, "c"), Is.EqualTo(Errno.OK));
    }

    [Test]
    public void Exchange_swaps_a_file_and_a_directory_across_parents()
    {
        ulong p1 = _fs.MkDir(_root, "p1");
        ulong p2 = _fs.MkDir(_root, "p2");
        ulong file = _fs.Touch(p1, "x");
        ulong dir = _fs.MkDir(p2, "y");
        Assert.That(Rename(p1, "x", p2, "y", LibC.RENAME_EXCHANGE), Is.EqualTo(Errno.OK));
        _fs.Lookup(p1, "x", out var x);
        _fs.Lookup(p2, "y", out var y);
        Assert.That(x.Ino, Is.EqualTo(dir));
        Assert.That(y.Ino, Is.EqualTo(file));
        Assert.That(_fs.Attr(p1).Nlink, Is.EqualTo(3u));
        Assert.That(_fs.Attr(p2).Nlink, Is.EqualTo(2u));
        Assert.That(Rename(p1, "x", p2, "missing", LibC.RENAME_EXCHANGE), Is.EqualTo(Errno.ENOENT));
    }

    [Test]
    public void Exchange_of_a_directory_with_its_own_descendant_is_EINVAL()
    {
        ulong a = _fs.MkDir(_root, "a");
        _fs.MkDir(a, "b");
        Assert.That(Rename(_root, "a", a, "b", LibC.RENAME_EXCHANGE), Is.EqualTo(Errno.EINVAL));
    }

    [TestCase((uint)LibC.RENAME_WHITEOUT)]
    [TestCase((uint)(LibC.RENAME_NOREPLACE | LibC.RENAME_EXCHANGE))]
    [TestCase(8u)]
    public void Whiteout_and_invalid_flag_combinations_are_EINVAL(uint flags)
    {
        _fs.Touch(_root, "a");
        Assert.That(Rename(_root, "a", _root, "b", flags), Is.EqualTo(Errno.EINVAL));
    }

    [Test]
    public void Renaming_one_hard_link_onto_another_does_nothing()
    {
        ulong file = _fs.Touch(_root, "a");
        _fs.Link(file, _root, Fs.N("b"), out _);
        Assert.That(Rename(_root, "a", _root, "b"), Is.EqualTo(Errno.OK));
        Assert.That(_fs.Lookup(_root, "a"), Is.EqualTo(Errno.OK));
        Assert.That(_fs.Attr(file).Nlink, Is.EqualTo(2u));
    }

    [Test]
    public void Renamed_entry_reappears_in_listing_under_its_new_name_only()
    {
        ulong d = _fs.MkDir(_root, "d");
        _fs.Touch(d, "old");
        Assert.That(Rename(d, "old", d, "new"), Is.EqualTo(Errno.OK));
        Assert.That(_fs.List(d), Is.EqualTo(new[] { ".", "..", "new" }));
    }

    [Test]
    public void Renaming_into_a_removed_directory_is_ENOENT()
    {
        ulong gone = _fs.MkDir(_root, "gone");
        _fs.Touch(_root, "f");
        Assert.That(_fs.RmDir(_root, Fs.N("gone")), Is.EqualTo(Errno.OK));
        Assert.That(Rename(_root, "f", gone, "f"), Is.EqualTo(Errno.ENOENT));
        Assert.That(_fs.Lookup(_root, "f"), Is.EqualTo(Errno.OK));
    }
}
