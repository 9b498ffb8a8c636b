using InSpatialFs.Interop;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Escapes;

/// <summary>
/// Adversarial tests (issue 3, "Escape resistance"), run the way a container process would: chrooted into the
/// mount, so absolute paths and ".." resolve inside it. Outside the source sits a directory holding a marker
/// that no test may ever read or change.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class EscapeResistanceTests
{
    private const string Marker = "HOST-SECRET-7f3a";
    private string _work = "";
    private string _source = "";
    private string _outside = "";
    private string _mount = "";
    private DaemonProcess? _daemon;

    [OneTimeSetUp]
    public void MountSourceNextToASecret()
    {
        DaemonProcess.RequireMountable();
        _work = Path.Combine("/var/tmp", "inspatialfs-esc-" + Guid.NewGuid().ToString("N")[..8]);
        _source = Path.Combine(_work, "source");
        _outside = Path.Combine(_work, "outside");
        _mount = Path.Combine(_work, "mnt");
        Directory.CreateDirectory(_outside);
        File.WriteAllText(Path.Combine(_outside, "secret"), Marker + "\n");
        File.WriteAllText(Path.Combine(_outside, "shadow"), Marker + "\n");

        // The source is a tiny busybox root so chroot can run a shell in it.
        Shell.Check($"'{DaemonProcess.RepoRoot}/scripts/make-rootfs.sh' '{_source}'", TimeSpan.FromMinutes(3));
        File.WriteAllText(Path.Combine(_source, "etc", "shadow"), "root:*:1:0:99999:7:::\n");
        Shell.Check($"ln -s '{_outside}' '{_source}/abs-out' && ln -s ../outside '{_source}/rel-out' && " +
                    $"ln -s ../../../../../../../../{_outside.TrimStart('/')} '{_source}/chain-out' && ln -s /proc/self/root '{_source}/magic' && " +
                    $"mkdir -p '{_source}/race/dir' && echo inside > '{_source}/race/dir/secret'");
        _daemon = DaemonProcess.Start(_mount, ["--source", _source]);
    }

    [OneTimeTearDown]
    public void Cleanup()
    {
        _daemon?.Dispose();
        if (_work.Length > 0)
        {
            Assert.That(File.ReadAllText(Path.Combine(_outside, "secret")), Is.EqualTo(Marker + "\n"), "the outside file was changed");
            Assert.That(Directory.GetFileSystemEntries(_outside), Has.Length.EqualTo(2), "something was created outside the source");
            Shell.Run($"rm -rf '{_work}'");
        }
    }

    private ShellResult InContainer(string script) => Shell.Run($"chroot '{_mount}' /bin/sh -c '{script}'", TimeSpan.FromSeconds(60));

    [TestCase("/abs-out/secret")]
    [TestCase("/rel-out/secret")]
    [TestCase("/chain-out/secret")]
    [TestCase("/../../../../outside/secret")]
    [TestCase("/magic/outside/secret")]
    public void Symlinks_and_dotdot_chains_never_reach_outside_the_source(string path)
    {
        ShellResult r = InContainer($"cat {path} 2>&1; ls {path} 2>&1; cat /etc/shadow");
        Assert.That(r.Both, Does.Not.Contain(Marker), $"read {path} escaped: {r}");
        Assert.That(r.StdOut, Does.EndWith("root:*:1:0:99999:7:::\n"), $"the control: the same shell reads the image's /etc/shadow: {r}");
    }

    [Test]
    public void Absolute_symlink_to_etc_shadow_resolves_to_the_images_shadow()
    {
        Shell.Check($"ln -sf /etc/shadow '{_source}/shadow-link'");
        ShellResult r = InContainer("cat /shadow-link");
        Assert.That(r.StdOut, Is.EqualTo("root:*:1:0:99999:7:::\n"), r.ToString());
    }

    [Test]
    public void Writes_through_outward_symlinks_land_inside_or_fail()
    {
        ShellResult r = InContainer("echo overwritten > /abs-out/secret 2>/dev/null; echo x > /rel-out/new 2>/dev/null; echo y > /chain-out/new2 2>/dev/null; " +
            "echo z > /written-inside");
        Assert.That(File.ReadAllText(Path.Combine(_outside, "secret")), Is.EqualTo(Marker + "\n"));
        Assert.That(File.Exists(Path.Combine(_outside, "new")), Is.False);
        Assert.That(File.Exists(Path.Combine(_outside, "new2")), Is.False);
        Assert.That(File.ReadAllText(Path.Combine(_source, "written-inside")), Is.EqualTo("z\n"), $"the control: the same shell's plain write lands in the source: {r}");
    }

    [Test]
    public void Hard_link_attempts_onto_outside_files_fail()
    {
        ShellResult r = InContainer("ln /abs-out/secret /stolen 2>&1; ln /chain-out/secret /stolen2 2>&1; cat /stolen /stolen2 2>&1; cat /etc/shadow");
        Assert.That(r.Both, Does.Not.Contain(Marker), r.ToString());
        Assert.That(r.StdOut, Does.EndWith("root:*:1:0:99999:7:::\n"), $"the control: the same shell reads the image's /etc/shadow: {r}");
        Assert.That(Shell.Run($"stat -c %h '{_outside}/secret'").StdOut.Trim(), Is.EqualTo("1"), "no new link to the outside file");
    }

    [Test]
    public void Proc_self_fd_tricks_do_not_open_host_files()
    {
        // The daemon reopens nodes through its own /proc/self/fd; a container name like that must not reach it.
        Shell.Check($"mkdir -p '{_source}/proc-trick' && ln -sf /proc/self/fd/0 '{_source}/proc-trick/fd0' && ln -sf /proc/1/root '{_source}/proc-trick/init-root'");
        ShellResult r = InContainer("cat /proc-trick/init-root/var/tmp/*/outside/secret 2>&1; ls /proc-trick/init-root/ 2>&1; cat /etc/shadow");
        Assert.That(r.Both, Does.Not.Contain(Marker), r.ToString());
        Assert.That(r.StdOut, Does.EndWith("root:*:1:0:99999:7:::\n"), $"the control: the same shell reads the image's /etc/shadow: {r}");
    }

    [Test]
    public void Directory_renamed_from_under_an_open_handle_keeps_writes_inside_the_source()
    {
        // A container process holds its cwd in a directory that is renamed away while it sleeps; its relative
        // writes follow the inode to the new place, inside the source.
        Shell.Check($"mkdir -p '{_mount}/mv/a/b'");
        ShellResult r = Shell.Run(
            $"chroot '{_mount}' /bin/sh -c 'cd /mv/a/b && sleep 1 && echo after > written-after-move && cat written-after-move && cat ../../../abs-out/secret' & " +
            $"sleep 0.4; mv '{_mount}/mv/a' '{_mount}/mv/moved'; wait", TimeSpan.FromSeconds(30));
        Assert.That(r.StdOut, Does.StartWith("after"), r.ToString());
        Assert.That(r.Both, Does.Not.Contain(Marker));
        Assert.That(File.ReadAllText(Path.Combine(_source, "mv", "moved", "b", "written-after-move")), Is.EqualTo("after\n"));
    }

    [Test]
    public void Symlink_swapped_in_during_lookups_never_leaks_outside_content()
    {
        string racer = Path.Combine(DaemonProcess.RepoRoot, "native", "build", "symlink-racer");
        if (!File.Exists(racer))
        {
            Assert.Fail($"{racer} is missing: `make native` builds it");
        }

        // The racer swaps source/race/dir between the real directory and a symlink to the outside directory.
        Shell.Check($"rm -f '{_source}/race/evil' && ln -s '{_outside}' '{_source}/race/evil'");
        ShellResult race = Shell.Run(
            $"'{racer}' '{_source}/race/dir' '{_source}/race/evil' 4 & racer=$!; " +
            $"leaks=0; reads=0; end=$((SECONDS+4)); while [ $SECONDS -lt $end ]; do " +
            $"  out=$(chroot '{_mount}' /bin/cat /race/dir/secret 2>/dev/null); reads=$((reads+1)); " +
            $"  case \"$out\" in *{Marker}*) leaks=$((leaks+1));; esac; done; wait $racer; echo \"reads=$reads leaks=$leaks\"",
            TimeSpan.FromSeconds(60));
        Assert.That(race.StdOut, Does.Contain("leaks=0"), race.ToString());
        Assert.That(race.StdOut, Does.Not.Contain("reads=0"));

        // The control: with the racer stopped, the same read reaches the real directory under whichever name it was
        // left (a kernel entry cached during the race may need a moment to expire).
        ShellResult settled = Shell.Run(
            $"for i in $(seq 50); do out=$(chroot '{_mount}' /bin/cat /race/dir/secret /race/evil/secret 2>/dev/null); " +
            $"case \"$out\" in *inside*) echo \"$out\"; exit 0;; esac; sleep 0.1; done; exit 1", TimeSpan.FromSeconds(30));
        Assert.That(settled.StdOut, Does.Contain("inside").And.Not.Contain(Marker), "the control: the real directory reads through the mount: " + settled);
    }

    [Test]
    public unsafe void Files_swapped_while_their_names_are_first_looked_up_never_give_one_files_attributes_with_the_others_data()
    {
        // A cold lookup keys a new node by a statx of the name and takes its file handle by the name just after. Pairs of
        // files of different sizes swap names without pause on the host side while the mount looks each name up for the
        // first time: every open must read the data of the file whose size it reports.
        const int Pairs = 300;
        string dir = Path.Combine(_source, "swap");
        Directory.CreateDirectory(dir);
        for (int i = 0; i < Pairs; i++)
        {
            File.WriteAllText(Path.Combine(dir, $"a{i}"), "A");
            File.WriteAllText(Path.Combine(dir, $"b{i}"), "BB");
        }

        int current = 0, swaps = 0;
        bool done = false;
        var racer = new Thread(() =>
        {
            while (!Volatile.Read(ref done))
            {
                int i = Volatile.Read(ref current);
                byte[] a = System.Text.Encoding.UTF8.GetBytes(Path.Combine(dir, $"a{i}") + "\0");
                byte[] b = System.Text.Encoding.UTF8.GetBytes(Path.Combine(dir, $"b{i}") + "\0");
                fixed (byte* pa = a)
                fixed (byte* pb = b)
                {
                    if (LibC.renameat2(LibC.AT_FDCWD, pa, LibC.AT_FDCWD, pb, LibC.RENAME_EXCHANGE) == 0) swaps++;
                }
            }
        }) { IsBackground = true };
        racer.Start();
        var mismatches = new List<string>();
        int opened = 0;
        try
        {
            for (int i = 0; i < Pairs; i++)
            {
                Volatile.Write(ref current, i);
                try
                {
                    using var f = new FileStream(Path.Combine(_mount, "swap", $"a{i}"), FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.None);
                    long size = f.Length; // fstat: the attributes the kernel holds for this node
                    var data = new byte[8];
                    int n = f.Read(data, 0, data.Length);
                    string text = System.Text.Encoding.ASCII.GetString(data, 0, n);
                    opened++;
                    if (size != n || (text != "A" && text != "BB")) mismatches.Add($"a{i}: size {size}, data '{text}'");
                }
                catch (IOException)
                {
                    // ESTALE or ENOENT in the middle of a swap is an answer; a mixed file is not.
                }
            }
        }
        finally
        {
            Volatile.Write(ref done, true);
            racer.Join();
        }

        TestContext.Out.WriteLine($"{swaps} swaps, {opened} of {Pairs} names opened, {mismatches.Count} mixed");
        Assert.That(mismatches, Is.Empty);
        Assert.That(swaps, Is.GreaterThan(Pairs), "the names were swapping throughout");
        Assert.That(opened, Is.GreaterThan(Pairs / 2), "the control: most names opened during the race");
    }
}
