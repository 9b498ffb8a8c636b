using System.Text.Json.Nodes;
using InSpatialFs.TestKit.Processes;
using static InSpatialFs.IntegrationTests.Security.ControlFiles;

namespace InSpatialFs.IntegrationTests.PolicyIntegrity;

/// <summary>
/// What a reload of paths: means for a file already open for writing, and links onto forbidden paths. A handle's writes
/// are decided again after a reload (its first write is an event; so is its first after each reload), and a refused
/// write stays refused: repeating it must not get it through.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class PolicyReloadAttackTests
{
    private string _work = "";

    private string Mnt => Path.Combine(_work, "mnt");

    private string Control => Path.Combine(_work, "ctl");

    private string Config(string readOnly) => $$"""
        name: pra-{{Path.GetFileName(_work)[^8..]}}
        mountpoint: {{Mnt}}
        control: {{Control}}
        state_dir: {{_work}}/state
        mounts:
          - { path: /, source: {{_work}}/src }
        isolation: enhanced
        paths: { forbidden: ["/secret/**"], readonly: [{{readOnly}}], allowed: ["/w/**"] }
        """;

    [SetUp]
    public void Work()
    {
        DaemonProcess.RequireMountable();
        _work = Path.Combine("/var/tmp", "isfs-reload-" + Guid.NewGuid().ToString("N")[..8]);
        Shell.Check($"mkdir -p '{_work}/src/w' '{_work}/src/secret' && echo key > '{_work}/src/secret/key' && echo original > '{_work}/src/w/z'");
    }

    [TearDown]
    public void Remove()
    {
        if (_work.Length == 0) return;
        Shell.Run($"umount -l '{Control}' 2>/dev/null; umount -l '{Mnt}' 2>/dev/null; rm -rf '{_work}'");
    }

    [Test]
    public void A_write_refused_after_a_reload_stays_refused_however_often_it_is_repeated()
    {
        string config = Path.Combine(_work, "instance.yaml");
        File.WriteAllText(config, Config("/nothing"));
        using DaemonProcess daemon = DaemonProcess.Start(Mnt, ["--config", config], appendMountPoint: false);
        WaitUntilServing(Control, daemon);
        // One open file, written before and after /w/z becomes read-only; each write reports its errno.
        string script = $$"""
            import os, subprocess, sys
            fd = os.open('{{Mnt}}/w/z', os.O_WRONLY | os.O_APPEND)
            def write(text):
                try:
                    os.write(fd, text.encode()); return 'ok'
                except OSError as e:
                    return 'errno %d' % e.errno
            print('before', write('before\n'))
            open('{{config}}', 'w').write(sys.argv[1])
            r = subprocess.run(['{{DaemonProcess.Binary}}', 'ctl', '{{Control}}', 'reload'], capture_output=True, text=True)
            print('reload', r.returncode)
            for i in range(3):
                print('after', write('after %d\n' % i))
            """;
        File.WriteAllText(Path.Combine(_work, "w.py"), script);
        File.WriteAllText(Path.Combine(_work, "next.yaml"), Config("/w/z"));
        ShellResult r = Shell.Run($"python3 '{_work}/w.py' \"$(cat '{_work}/next.yaml')\"", TimeSpan.FromSeconds(90));
        string[] lines = r.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Does.Contain("reload 0"), r.ToString());
        Assert.That(lines.Where(l => l.StartsWith("after", StringComparison.Ordinal)), Has.Exactly(3).EqualTo("after errno 30"), "EROFS every time: " + r);
        Assert.That(File.ReadAllText(Path.Combine(_work, "src", "w", "z")), Does.Not.Contain("after"), "nothing written after the reload");
        Assert.That(File.ReadAllText(Path.Combine(_work, "src", "w", "z")), Does.Contain("before"), "positive control: the write before it went through");
    }

    [Test]
    public void A_file_a_reload_forbids_stops_being_readable_through_a_descriptor_opened_before_it()
    {
        string config = Path.Combine(_work, "instance.yaml");
        File.WriteAllText(config, Config("/nothing"));
        Shell.Check($"head -c 4194304 /dev/urandom > '{_work}/src/w/big' && cp '{_work}/src/w/big' '{_work}/src/w/other'");
        using DaemonProcess daemon = DaemonProcess.Start(Mnt, ["--config", config], appendMountPoint: false);
        WaitUntilServing(Control, daemon);
        // Two files opened and read while allowed; the reload forbids one. Each read reports its errno.
        string script = $$"""
            import os, subprocess, sys
            big = os.open('{{Mnt}}/w/big', os.O_RDONLY)
            other = os.open('{{Mnt}}/w/other', os.O_RDONLY)
            def read(fd, at):
                try:
                    return 'ok %d' % len(os.pread(fd, 65536, at))
                except OSError as e:
                    return 'errno %d' % e.errno
            print('before', read(big, 0), read(other, 0))
            open('{{config}}', 'w').write(sys.argv[1])
            r = subprocess.run(['{{DaemonProcess.Binary}}', 'ctl', '{{Control}}', 'reload'], capture_output=True, text=True)
            print('reload', r.returncode)
            for at in (3 << 20, 0, 3 << 20):
                print('after', read(big, at))
            print('other', read(other, 3 << 20))
            """;
        // The same for a directory listed through a descriptor opened before the reload forbade it.
        string listing = $$"""
            import os, subprocess, sys
            d = os.open('{{Mnt}}/w/dir', os.O_RDONLY | os.O_DIRECTORY)
            def ls():
                try:
                    os.lseek(d, 0, os.SEEK_SET)
                    return 'ok %d' % len(os.listdir(d))
                except OSError as e:
                    return 'errno %d' % e.errno
            print('dir-before', ls())
            open('{{config}}', 'w').write(sys.argv[1])
            print('reload', subprocess.run(['{{DaemonProcess.Binary}}', 'ctl', '{{Control}}', 'reload'], capture_output=True).returncode)
            print('dir-after', ls())
            """;
        File.WriteAllText(Path.Combine(_work, "r.py"), script);
        File.WriteAllText(Path.Combine(_work, "next.yaml"), Config("/nothing").Replace("\"/secret/**\"]", "\"/secret/**\", \"/w/big\"]", StringComparison.Ordinal));
        ShellResult r = Shell.Run($"python3 '{_work}/r.py' \"$(cat '{_work}/next.yaml')\"", TimeSpan.FromSeconds(90));
        string[] lines = r.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Does.Contain("before ok 65536 ok 65536").And.Contain("reload 0"), r.ToString());
        Assert.That(lines.Where(l => l.StartsWith("after", StringComparison.Ordinal)), Has.Exactly(3).EqualTo("after errno 13"), "EACCES every time: " + r);
        Assert.That(lines, Does.Contain("other ok 65536"), "positive control: a file the reload left allowed reads on: " + r);
        JsonObject denial = WaitForEvent(Control, ev => Str(ev, "evt.op") == "read" && Str(ev, "fs.path") == "/w/big" && Str(ev, "evt.decision") == "deny", "the refused read");
        Assert.That(Str(denial, "policy.class"), Is.EqualTo("forbidden"));

        File.WriteAllText(config, Config("/nothing"));
        Assert.That(Ctl(Control, "reload").ExitCode, Is.Zero);
        Shell.Check($"mkdir '{_work}/src/w/dir' && touch '{_work}/src/w/dir/a' '{_work}/src/w/dir/b'");
        File.WriteAllText(Path.Combine(_work, "l.py"), listing);
        File.WriteAllText(Path.Combine(_work, "next.yaml"), Config("/nothing").Replace("\"/secret/**\"]", "\"/secret/**\", \"/w/dir\"]", StringComparison.Ordinal));
        r = Shell.Run($"python3 '{_work}/l.py' \"$(cat '{_work}/next.yaml')\"", TimeSpan.FromSeconds(90));
        lines = r.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Does.Contain("dir-before ok 2").And.Contain("reload 0"), r.ToString());
        Assert.That(lines, Does.Contain("dir-after errno 13"), "the listing through the old descriptor is refused: " + r);
    }

    [Test]
    public void With_restrict_symlinks_a_link_onto_a_forbidden_path_is_refused_when_made_and_when_read()
    {
        string config = Path.Combine(_work, "instance.yaml");
        File.WriteAllText(config, Config("/nothing"));
        Shell.Check($"ln -s /secret/key '{_work}/src/w/planted'"); // already in the image
        using DaemonProcess daemon = DaemonProcess.Start(Mnt, ["--config", config], appendMountPoint: false);
        WaitUntilServing(Control, daemon);
        foreach (string target in new[] { "/secret/key", "../secret/key", "/w/../secret/key" })
        {
            ShellResult made = Shell.Run($"ln -s '{target}' '{Mnt}/w/to-secret'");
            Assert.That(made.ExitCode, Is.Not.Zero, target + ": " + made);
            Assert.That(made.StdErr, Does.Contain("Operation not permitted"), target + ": " + made);
        }

        ShellResult read = Shell.Run($"readlink '{Mnt}/w/planted'");
        Assert.That(read.ExitCode, Is.Not.Zero, "a planted link is refused when read: " + read);
        Assert.That(Shell.Check($"ln -s z '{Mnt}/w/to-z' && readlink '{Mnt}/w/to-z'").Trim(), Is.EqualTo("z"), "positive control: a link onto an allowed file");
    }
}
