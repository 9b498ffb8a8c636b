using System.Diagnostics;

namespace InSpatialFs.TestKit.Processes;

/// <summary>
/// A tmpfs of a few pages mounted over a directory (mode 0700, as the daemon requires of a state directory), to run a
/// state directory out of room on demand: <see cref="Fill"/> takes every free page, <see cref="MakeRoom"/> gives them
/// back. Disposing unmounts it (lazily: a file still open there does not keep the test from finishing).
/// </summary>
public sealed class SmallDisk : IDisposable
{
    private const string Filler = "filler";

    private SmallDisk(string path) => Path = path;

    public string Path { get; }

    /// <summary>Mounts a tmpfs of <paramref name="size"/> (mount(8) form: 256k, 2m) over <paramref name="directory"/>, made if missing; the test is ignored where tmpfs cannot be mounted.</summary>
    public static SmallDisk Mount(string directory, string size)
    {
        Directory.CreateDirectory(directory);
        using var mount = Process.Start("mount", ["-t", "tmpfs", "-o", $"size={size},mode=700", "isfs-test", directory])!;
        mount.WaitForExit();
        if (mount.ExitCode != 0)
        {
            Assert.Ignore("cannot mount tmpfs here");
        }

        return new SmallDisk(directory);
    }

    /// <summary>Writes a file until the disk is full (what was reserved before stays usable, as on a real disk).</summary>
    public void Fill()
    {
        using var fill = new FileStream(System.IO.Path.Combine(Path, Filler), FileMode.CreateNew);
        var page = new byte[4096];
        try
        {
            while (true)
            {
                fill.Write(page);
            }
        }
        catch (IOException)
        {
            // full
        }
    }

    public void MakeRoom() => File.Delete(System.IO.Path.Combine(Path, Filler));

    public void Dispose()
    {
        using var umount = Process.Start("umount", ["-l", Path])!;
        umount.WaitForExit();
    }
}
