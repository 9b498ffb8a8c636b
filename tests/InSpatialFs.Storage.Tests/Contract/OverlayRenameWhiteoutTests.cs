using System.Text;
using InSpatialFs.Interop;
using InSpatialFs.Storage.Overlay;
using InSpatialFs.TestKit.Processes;
using Microsoft.Extensions.Logging.Abstractions;

namespace InSpatialFs.Storage.Tests.Contract;

/// <summary>
/// Renaming a name a lower layer has leaves a whiteout at the old name in the same step as the rename (RENAME_WHITEOUT),
/// as the kernel's overlayfs does. Made in two steps (rename, then mknod), there is an instant at which the upper layer
/// has the new name and nothing at the old one, so the lower file shows again under the old name; a server killed
/// there leaves that state, and the kernel's resent rename then moves the lower file over the renamed one. An observer
/// listing the upper directory through a thousand renames never sees that state (the two-step code showed it within
/// the first few hundred, every run).
/// </summary>
[TestFixture]
[Category("Mount")]
public sealed class OverlayRenameWhiteoutTests
{
    private const int Files = 1000;

    [Test]
    public void No_instant_shows_the_new_name_without_a_whiteout_at_the_old_one()
    {
        string root = Path.Combine(Path.GetTempPath(), "isfs-overlay-rw-" + Guid.NewGuid().ToString("N"));
        try
        {
            foreach (string d in new[] { "lower", "upper", "work" }) Directory.CreateDirectory(Path.Combine(root, d));
            for (int i = 0; i < Files; i++) File.WriteAllText(Path.Combine(root, "lower", $"f{i}"), "x");
            using var fs = new OverlayFileSystem(new OverlayLayers([Path.Combine(root, "lower")], Path.Combine(root, "upper"), Path.Combine(root, "work")), NullLogger.Instance);
            Assert.That(fs.Create(fs.RootIno, "warm"u8, LibC.O_RDWR | LibC.O_CREAT | LibC.O_EXCL, 0x1A4, new Caller(0, 0, 1), out _, out IOpenFile warm, out _), Is.EqualTo(Errno.OK));
            warm.Release();

            int done = 0, scans = 0;
            string? seen = null;
            var observer = new Thread(() =>
            {
                while (Volatile.Read(ref done) == 0 && seen == null)
                {
                    HashSet<string>? names = Snapshot(Path.Combine(root, "upper"));
                    if (names == null) continue;
                    scans++;
                    foreach (string n in names)
                    {
                        if (n.StartsWith('g') && !names.Contains("f" + n[1..]))
                        {
                            seen = n; // the new name, and neither whiteout nor file at the old one
                            break;
                        }
                    }
                }
            });
            observer.Start();
            for (int i = 0; i < Files; i++)
            {
                Assert.That(fs.Rename(fs.RootIno, Encoding.UTF8.GetBytes($"f{i}"), fs.RootIno, Encoding.UTF8.GetBytes($"g{i}"), 0), Is.EqualTo(Errno.OK));
            }

            Volatile.Write(ref done, 1);
            observer.Join();
            Assert.That(seen, Is.Null, $"{seen} was in the upper layer with nothing at its old name ({scans} listings)");
            Assert.That(scans, Is.GreaterThan(10), "positive control: the observer listed the directory while the renames ran");
            Assert.That(Shell.Check($"stat -c '%F %t:%T' '{root}/upper/f0'").Trim(), Is.EqualTo("character special file 0:0"), "a whiteout hides the lower name");
            Assert.That(File.ReadAllText(Path.Combine(root, "upper", $"g{Files - 1}")), Is.EqualTo("x"));
            Assert.That(fs.Lookup(fs.RootIno, "f0"u8, out _), Is.EqualTo(Errno.ENOENT));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>
    /// Removing an upper object that a lower layer also has (a copied-up file; a copied-up directory emptied in the
    /// merged view) turns its name into a whiteout in one step: the object moves to the work directory with
    /// RENAME_WHITEOUT. In two steps (unlink or rmdir, then mknod) there was an instant with neither, which showed the
    /// lower object again; a server killed there left a directory's deleted lower entries back and the resent rmdir
    /// failing with ENOTEMPTY. The observer checks that a name once in the upper layer never leaves it.
    /// </summary>
    [Test]
    public void Removing_an_upper_object_over_a_lower_one_never_lets_the_lower_one_show()
    {
        const int Each = 400;
        string root = Path.Combine(Path.GetTempPath(), "isfs-overlay-rm-" + Guid.NewGuid().ToString("N"));
        try
        {
            foreach (string d in new[] { "lower", "upper", "work" }) Directory.CreateDirectory(Path.Combine(root, d));
            for (int i = 0; i < Each; i++)
            {
                File.WriteAllText(Path.Combine(root, "lower", $"f{i}"), "x");
                Directory.CreateDirectory(Path.Combine(root, "lower", $"d{i}"));
                File.WriteAllText(Path.Combine(root, "lower", $"d{i}", "x"), "x");
            }

            using var fs = new OverlayFileSystem(new OverlayLayers([Path.Combine(root, "lower")], Path.Combine(root, "upper"), Path.Combine(root, "work")), NullLogger.Instance);
            var owner = new Caller(0, 0, 1);
            int done = 0, scans = 0;
            string? lost = null;
            var observer = new Thread(() =>
            {
                var seen = new HashSet<string>();
                while (Volatile.Read(ref done) == 0 && lost == null)
                {
                    if (Snapshot(Path.Combine(root, "upper")) is not { } names) continue;
                    scans++;
                    lost = seen.FirstOrDefault(n => !names.Contains(n));
                    seen.UnionWith(names);
                }
            });
            observer.Start();
            for (int i = 0; i < Each; i++)
            {
                byte[] f = Encoding.UTF8.GetBytes($"f{i}"), d = Encoding.UTF8.GetBytes($"d{i}");
                Assert.That(fs.Lookup(fs.RootIno, f, out Fuse.Abi.FuseAttr file), Is.EqualTo(Errno.OK));
                Assert.That(fs.SetAttr(file.Ino, new AttrChange { Mode = 0x180 }, owner, out _), Is.EqualTo(Errno.OK), "copies the file up");
                Assert.That(fs.Unlink(fs.RootIno, f), Is.EqualTo(Errno.OK));
                Assert.That(fs.Lookup(fs.RootIno, d, out Fuse.Abi.FuseAttr dir), Is.EqualTo(Errno.OK));
                Assert.That(fs.SetAttr(dir.Ino, new AttrChange { Mode = 0x1C0 }, owner, out _), Is.EqualTo(Errno.OK), "copies the directory up");
                Assert.That(fs.Unlink(dir.Ino, "x"u8), Is.EqualTo(Errno.OK), "a whiteout inside the upper directory");
                Assert.That(fs.RmDir(fs.RootIno, d), Is.EqualTo(Errno.OK));
            }

            Volatile.Write(ref done, 1);
            observer.Join();
            Assert.That(lost, Is.Null, $"{lost} left the upper layer for an instant: the lower one showed ({scans} listings)");
            Assert.That(scans, Is.GreaterThan(10), "positive control: the observer listed the directory while the removals ran");
            foreach (string n in new[] { "f0", $"d{Each - 1}" })
            {
                Assert.That(Shell.Check($"stat -c '%F %t:%T' '{root}/upper/{n}'").Trim(), Is.EqualTo("character special file 0:0"), n);
            }

            Assert.That(fs.Lookup(fs.RootIno, "d0"u8, out _), Is.EqualTo(Errno.ENOENT));
            Assert.That(Directory.EnumerateFileSystemEntries(Path.Combine(root, "work", "work")), Is.Empty, "nothing left in the work directory");
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>
    /// The directory's names as of one instant: read by a single getdents64 (the directory's lock is held through it, so
    /// no rename lands in the middle), or null when it did not fit in one. A listing in several calls is no snapshot:
    /// it can show a name made after an earlier call passed another name's place.
    /// </summary>
    private static unsafe HashSet<string>? Snapshot(string directory)
    {
        int fd = LibC.open(directory, LibC.O_RDONLY | LibC.O_DIRECTORY | LibC.O_CLOEXEC, 0);
        Assert.That(fd, Is.GreaterThanOrEqualTo(0));
        try
        {
            byte[] buffer = new byte[4 << 20];
            var names = new HashSet<string>();
            fixed (byte* b = buffer)
            {
                nint n = LibC.getdents64(fd, b, buffer.Length);
                if (n <= 0 || LibC.getdents64(fd, b + n, buffer.Length - n) != 0) return null;
                for (int pos = 0; pos + 19 < n;)
                {
                    ushort length = *(ushort*)(b + pos + 16);
                    var name = new ReadOnlySpan<byte>(b + pos + 19, length - 19);
                    int end = name.IndexOf((byte)0);
                    names.Add(Encoding.UTF8.GetString(end >= 0 ? name[..end] : name));
                    pos += length;
                }
            }

            return names;
        }
        finally
        {
            LibC.close(fd);
        }
    }
}
