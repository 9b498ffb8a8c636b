using InSpatialFs.IntegrationTests.Security;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Overlay;

/// <summary>
/// Issue 13, the overlay mount kind: layers in the formats containers/storage and the kernel write are merged as the
/// kernel merges them, and what the container changes is written to the upper layer in the kernel's format, checked
/// by mounting the very same layers with the kernel's overlayfs afterwards and comparing the trees.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class OverlayFormatTests
{
    private string _work = "";

    private string L1 => Path.Combine(_work, "l1");
    private string L2 => Path.Combine(_work, "l2");
    private string Upper => Path.Combine(_work, "upper");
    private string Mnt => Path.Combine(_work, "mnt");

    [SetUp]
    public void Layers()
    {
        DaemonProcess.RequireMountable();
        _work = Path.Combine("/var/tmp", "isfs-ovl-" + Guid.NewGuid().ToString("N")[..8]);
        Shell.Check($"""
            set -e
            mkdir -p '{_work}'/l1 '{_work}'/l2 '{_work}'/upper '{_work}'/work '{_work}'/mnt
            cd '{_work}'
            echo base > l2/shadowed; echo top > l1/shadowed
            mkdir -p l2/merged/deep l1/merged; echo two > l2/merged/from-l2; echo one > l1/merged/from-l1
            echo gone > l2/chardev-whiteout; mknod l1/chardev-whiteout c 0 0
            echo gone > l2/aufs-whiteout; touch l1/.wh.aufs-whiteout
            mkdir l2/opaque-x l1/opaque-x; echo hidden > l2/opaque-x/h; echo shown > l1/opaque-x/s; setfattr -n trusted.overlay.opaque -v y l1/opaque-x
            mkdir l2/opaque-user l1/opaque-user; echo hidden > l2/opaque-user/h; setfattr -n user.overlay.opaque -v y l1/opaque-user
            mkdir l2/opaque-aufs l1/opaque-aufs; echo hidden > l2/opaque-aufs/h; touch l1/opaque-aufs/.wh..wh..opq
            mkdir l1/xw; setfattr -n trusted.overlay.whiteouts -v y l1/xw; echo gone > l2/xw-target 2>/dev/null || true
            mkdir -p l2/xw; echo gone > l2/xw/f; touch l1/xw/f; setfattr -n trusted.overlay.whiteout -v y l1/xw/f
            echo data > l2/file-to-change; chmod 0640 l2/file-to-change; chown 1000:1000 l2/file-to-change
            setfattr -n user.note -v kept l2/file-to-change; touch -d '2001-02-03 04:05:06' l2/file-to-change
            truncate -s 64M l2/sparse; echo end >> l2/sparse
            echo x > l2/remove-me; mkdir l2/dir-to-remove; echo y > l2/dir-to-remove/z
            mkdir -p l2/tree/a/b; echo leaf > l2/tree/a/b/leaf; echo top > l1/tree-top 2>/dev/null || true
            mkdir -p l2/links/other; echo linked > l2/links/first; ln l2/links/first l2/links/other/second
            """);
    }

    [TearDown]
    public void Remove() => Shell.Run($"umount -l '{Mnt}' 2>/dev/null; umount -l '{_work}/control' 2>/dev/null; rm -rf '{_work}'");

    private DaemonProcess Start(bool direct = false, string extra = "")
    {
        string config = Path.Combine(_work, "overlay.yaml");
        File.WriteAllText(config, $$"""
            name: ovf-{{Path.GetFileName(_work)[^8..]}}
            mountpoint: {{Mnt}}
            control: {{_work}}/control
            state_dir: {{_work}}/state
            mounts:
              - { path: /, direct: {{(direct ? "true" : "false")}}, overlay: { lower: [{{L1}}, {{L2}}], upper: {{Upper}}, work: {{_work}}/work } }
            controls: { refuse_devices: false }
            {{extra}}
            """);
        return DaemonProcess.Start(Mnt, ["--config", config], appendMountPoint: false);
    }

    private static string Tree(string root) =>
        Shell.Check($"cd '{root}' && find . -mindepth 1 | LC_ALL=C sort | while read -r p; do " +
            "if [ -f \"$p\" ]; then echo \"$p $(stat -c '%a %u:%g %s' \"$p\") $(sha256sum < \"$p\" | cut -c1-16)\"; else echo \"$p $(stat -c '%F %a' \"$p\")\"; fi; done");

    /// <summary>The instance's events so far (ctl events --json), parsed.</summary>
    private List<System.Text.Json.JsonElement> Events() =>
        [.. Shell.Check($"'{DaemonProcess.Binary}' ctl '{_work}/control' events --json", TimeSpan.FromSeconds(60))
            .Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement.Clone())];

    [Test]
    public void With_direct_lower_files_and_copied_up_files_move_their_bytes_by_kernel_passthrough()
    {
        using DaemonProcess daemon = Start(direct: true);
        // A lower file read through the mount: kernel passthrough on the lower file (the image's binaries read natively).
        string sparse = Shell.Check($"tail -c 4 '{Mnt}/sparse'");
        Assert.That(sparse, Is.EqualTo("end\n"), "positive control: the lower file is served");
        Shell.Check($"cat '{Mnt}/sparse' > /dev/null");
        // A lower file opened for writing is copied up, and the copy is written by passthrough too.
        Shell.Check($"echo appended >> '{Mnt}/file-to-change'");
        Assert.That(File.ReadAllText(Path.Combine(Upper, "file-to-change")), Is.EqualTo("data\nappended\n"), "the write landed in the upper copy");
        Assert.That(File.ReadAllText(Path.Combine(L2, "file-to-change")), Is.EqualTo("data\n"), "the lower layer is untouched");

        List<System.Text.Json.JsonElement> events = [];
        bool Released(string path) => events.Any(e => e.GetProperty("evt.op").GetString() == "release" && e.GetProperty("fs.path").GetString() == path);
        Assert.That(ControlFiles.Eventually(() => { events = Events(); return Released("/sparse") && Released("/file-to-change"); }, TimeSpan.FromSeconds(20)), Is.True);
        foreach (string path in new[] { "/sparse", "/file-to-change" })
        {
            var mine = events.Where(e => e.GetProperty("fs.path").GetString() == path).ToList();
            Assert.That(mine.Where(e => e.GetProperty("evt.op").GetString() == "open").Select(e => e.GetProperty("evt.decision").GetString()),
                Is.Not.Empty.And.All.EqualTo("allow_direct"), path + ": every open was decided and granted DirectFS");
            Assert.That(mine.Where(e => e.GetProperty("evt.op").GetString() == "release").Select(e => e.GetProperty("evt.size").GetInt64()),
                Is.All.Zero, path + ": no byte went through the daemon");
        }

        Assert.That(File.ReadAllText(Path.Combine(_work, "control", "status")), Does.Contain("kernel-passthrough"));
    }

    [Test]
    public void A_lower_program_overwritten_through_copy_up_is_runtime_written_and_its_exec_refused()
    {
        Shell.Check($"mkdir -p '{L2}/app' && cp /bin/true '{L2}/app/tool' && cp /bin/true '{L2}/app/other'");
        using DaemonProcess daemon = Start(extra: "exec: { runtime_written: deny }");
        Assert.That(Shell.Run($"'{Mnt}/app/other'").ExitCode, Is.Zero, "positive control: an image program runs");
        // The overwrite copies the lower file up first; the mark must land on the copy that is then executed.
        Shell.Check($"cat /bin/echo > '{Mnt}/app/tool'");
        ShellResult run = Shell.Run($"'{Mnt}/app/tool' hello");
        Assert.That(run.ExitCode, Is.Not.Zero, run.ToString());
        Assert.That(run.StdErr, Does.Contain("Operation not permitted"), run.ToString());
        Assert.That(run.StdOut, Does.Not.Contain("hello"));
        Assert.That(File.Exists(Path.Combine(Upper, "app", "tool")), Is.True, "the copy is in the upper layer");

        // The kernel forgetting the node (memory pressure), and a restart of the container, must not forget the mark:
        // it is on the copy the name now resolves to, not on the lower file the node first was.
        File.WriteAllText("/proc/sys/vm/drop_caches", "2");
        Assert.That(Shell.Run($"'{Mnt}/app/tool' hello").StdOut, Does.Not.Contain("hello"), "after the kernel dropped the node");
        Assert.That(daemon.Stop(), Is.Zero, daemon.Output);
        using DaemonProcess again = Start(extra: "exec: { runtime_written: deny }");
        ShellResult rerun = Shell.Run($"'{Mnt}/app/tool' hello");
        Assert.That(rerun.StdOut, Does.Not.Contain("hello"), "after a remount: " + rerun);
        Assert.That(rerun.StdErr, Does.Contain("Operation not permitted"), rerun.ToString());
        Assert.That(Shell.Run($"'{Mnt}/app/other'").ExitCode, Is.Zero, "positive control: the untouched image program still runs");
    }

    [Test]
    public void A_protected_files_other_name_keeps_its_class_when_a_rename_copies_it_up()
    {
        // An image that links /etc/shadow as /opt/s and /etc/passwd as /opt/p. Renaming /opt copies its tree up, and the
        // copies are new host files: the class must move with them, now and after the kernel forgot the nodes.
        Shell.Check($"""
            set -e
            mkdir -p '{L2}/etc' '{L2}/opt'
            echo 'root:SECRET:1::::::' > '{L2}/etc/shadow'; echo 'root:x:0:0::/root:/bin/sh' > '{L2}/etc/passwd'
            ln '{L2}/etc/shadow' '{L2}/opt/s'; ln '{L2}/etc/passwd' '{L2}/opt/p'; echo free > '{L2}/opt/free'
            """);
        using DaemonProcess daemon = Start(extra: "paths: { forbidden: [/etc/shadow], readonly: [/etc/passwd] }");
        Assert.That(Shell.Run($"cat '{Mnt}/opt/s'").ExitCode, Is.Not.Zero, "the other name is forbidden before the rename");
        Shell.Check($"mv '{Mnt}/opt' '{Mnt}/opt2'");
        Assert.That(File.Exists(Path.Combine(Upper, "opt2", "s")), Is.True, "positive control: the rename copied the alias up");
        Assert.That(File.ReadAllText(Path.Combine(Mnt, "opt2", "free")), Is.EqualTo("free\n"), "positive control: an unprotected file is readable");
        for (int round = 0; round < 2; round++)
        {
            string when = round == 0 ? "after the rename" : "after the kernel dropped its nodes";
            ShellResult read = Shell.Run($"cat '{Mnt}/opt2/s'");
            Assert.That(read.StdOut, Does.Not.Contain("SECRET"), when + ": " + read);
            ShellResult write = Shell.Run($"echo 'evil::0:0::/:/bin/sh' >> '{Mnt}/opt2/p'");
            Assert.That(write.ExitCode, Is.Not.Zero, when + ": " + write);
            Assert.That(File.ReadAllText(Path.Combine(Mnt, "etc", "passwd")), Does.Not.Contain("evil"), when);
            File.WriteAllText("/proc/sys/vm/drop_caches", "2");
        }
    }

    [Test]
    public void Exchanging_a_new_directory_with_an_image_directory_keeps_the_image_entries_out_of_it()
    {
        Shell.Check($"mkdir -p '{L2}/xsub' && echo image > '{L2}/xsub/f'");
        const string Exchange = "python3 -c 'import ctypes,sys; l=ctypes.CDLL(None,use_errno=True); " +
            "sys.exit(0 if l.renameat2(-100,b\"xsub\",-100,b\"newdir\",2)==0 else ctypes.get_errno())'";
        using (DaemonProcess daemon = Start())
        {
            Shell.Check($"cd '{Mnt}' && mkdir newdir && echo mine > newdir/m && {Exchange}");
            for (int round = 0; round < 2; round++)
            {
                string when = round == 0 ? "after the exchange" : "after the kernel dropped its nodes";
                Assert.That(Shell.Check($"ls -A '{Mnt}/xsub'").Trim(), Is.EqualTo("m"), when + ": the directory swapped in holds only its own entry");
                Assert.That(Shell.Check($"ls -A '{Mnt}/newdir'").Trim(), Is.EqualTo("f"), when + ": the image directory took the other name");
                File.WriteAllText("/proc/sys/vm/drop_caches", "2");
            }

            Assert.That(daemon.Stop(), Is.Zero, daemon.Output);
        }

        using DaemonProcess again = Start();
        Assert.That(Shell.Check($"ls -A '{Mnt}/xsub'").Trim(), Is.EqualTo("m"), "after a remount the lower f stays out");
        Assert.That(Shell.Check($"ls -A '{Mnt}/newdir'").Trim(), Is.EqualTo("f"));
    }

    [Test]
    public void Layers_merge_whiteouts_hide_and_opaque_directories_stop_the_merge()
    {
        using DaemonProcess daemon = Start();
        string[] names = Shell.Check($"cd '{Mnt}' && ls -A | LC_ALL=C sort").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(names, Does.Contain("shadowed").And.Contain("merged").And.Contain("opaque-x"), "positive control");
        Assert.That(names, Has.None.StartWith(".wh.").And.None.EqualTo("chardev-whiteout").And.None.EqualTo("aufs-whiteout"));
        Assert.That(File.ReadAllText(Path.Combine(Mnt, "shadowed")), Is.EqualTo("top\n"), "the upper layer of two wins");
        Assert.That(Shell.Check($"ls '{Mnt}/merged'").Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.EquivalentTo(new[] { "deep", "from-l1", "from-l2" }));
        Assert.That(Shell.Check($"ls -A '{Mnt}/opaque-x'").Trim(), Is.EqualTo("s"), "trusted.overlay.opaque");
        Assert.That(Shell.Check($"ls -A '{Mnt}/opaque-user'").Trim(), Is.Empty, "user.overlay.opaque");
        Assert.That(Shell.Check($"ls -A '{Mnt}/opaque-aufs'").Trim(), Is.Empty, ".wh..wh..opq");
        Assert.That(Shell.Check($"ls -A '{Mnt}/xw'").Trim(), Is.Empty, "xattr whiteout in a marked directory");
        Assert.That(File.Exists(Path.Combine(Mnt, "chardev-whiteout")), Is.False);
        Assert.That(Shell.Run($"getfattr -n trusted.overlay.opaque '{Mnt}/opaque-x'").ExitCode, Is.Not.Zero, "the overlay's own xattrs are not shown");
    }

    [Test]
    public void Hard_links_keep_their_identity_across_copy_up_and_a_remount()
    {
        using (DaemonProcess daemon = Start())
        {
            string before = Shell.Check($"stat -c %i '{Mnt}/links/first' '{Mnt}/links/other/second'");
            Shell.Check($"echo more >> '{Mnt}/links/first'");
            Assert.That(File.ReadAllText(Path.Combine(Mnt, "links", "other", "second")), Is.EqualTo("linked\nmore\n"), "the other name sees the write");
            string[] inodes = Shell.Check($"stat -c %i '{Mnt}/links/first' '{Mnt}/links/other/second'").Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.That(inodes[0], Is.EqualTo(inodes[1]), "one inode, two names");
            Assert.That(before.Split('\n', StringSplitOptions.RemoveEmptyEntries).Distinct().Count(), Is.EqualTo(1), "positive control: they were one before too");
            Assert.That(daemon.Stop(), Is.Zero, daemon.Output);
        }

        using DaemonProcess again = Start();
        Assert.That(File.ReadAllText(Path.Combine(Mnt, "links", "other", "second")), Is.EqualTo("linked\nmore\n"), "after a remount the other name finds the copy");
        Shell.Check($"echo last >> '{Mnt}/links/other/second'");
        Assert.That(File.ReadAllText(Path.Combine(Mnt, "links", "first")), Is.EqualTo("linked\nmore\nlast\n"));
        Assert.That(Shell.Check($"stat -c %i '{Upper}/links/first' '{Upper}/links/other/second'").Split('\n', StringSplitOptions.RemoveEmptyEntries).Distinct().Count(), Is.EqualTo(1),
            "in the upper layer they are hard links, as the kernel's index leaves them");
    }

    [Test]
    public void Changes_land_in_the_upper_layer_in_the_kernels_format_and_the_kernel_reads_them_alike()
    {
        string ours;
        using (DaemonProcess daemon = Start())
        {
            Shell.Check($"""
                set -e
                cd '{Mnt}'
                echo more >> file-to-change
                echo tail >> sparse
                rm remove-me
                rm -r dir-to-remove && mkdir dir-to-remove && echo new > dir-to-remove/new
                mv tree tree-moved
                echo created > merged/created
                rm merged/from-l2
                ln -s shadowed a-link
                """);
            ours = Tree(Mnt);
            Assert.That(daemon.Stop(), Is.Zero, daemon.Output);
        }

        // The upper layer as the kernel writes it.
        Assert.That(Shell.Check($"stat -c '%F %t:%T' '{Upper}/remove-me' '{Upper}/merged/from-l2' '{Upper}/tree'").Split('\n', StringSplitOptions.RemoveEmptyEntries),
            Is.All.EqualTo("character special file 0:0"), "0/0 character devices are the whiteouts");
        Assert.That(Shell.Check($"getfattr --only-values -n trusted.overlay.opaque '{Upper}/dir-to-remove'").Trim(), Is.EqualTo("y"));
        Assert.That(Shell.Check($"stat -c '%a %u:%g %y' '{Upper}/file-to-change'").Trim(), Does.StartWith("640 1000:1000"), "copy-up keeps mode and owner");
        Assert.That(Shell.Check($"getfattr --only-values -n user.note '{Upper}/file-to-change'").Trim(), Is.EqualTo("kept"), "and xattrs");
        Assert.That(long.Parse(Shell.Check($"stat -c %b '{Upper}/sparse'").Trim(), System.Globalization.CultureInfo.InvariantCulture), Is.LessThan(1024),
            "a 64 MiB sparse file copies up as a sparse file");
        Assert.That(File.Exists(Path.Combine(Upper, "tree-moved", "a", "b", "leaf")), Is.True, "a renamed lower directory is copied up whole");
        Assert.That(Directory.GetFiles(Path.Combine(_work, "work", "work")), Is.Empty, "nothing left in the work directory");

        // The kernel's overlayfs over the same layers shows the same tree.
        string kernelMnt = Path.Combine(_work, "kernel");
        Shell.Check($"mkdir -p '{kernelMnt}' '{_work}/kwork' && mount -t overlay overlay -o lowerdir='{L1}':'{L2}',upperdir='{Upper}',workdir='{_work}/kwork' '{kernelMnt}'");
        try
        {
            // The kernel does not read fuse-overlayfs's aufs names nor, without userxattr, the user.overlay.* forms.
            static string KernelFormats(string tree) => string.Join('\n', tree.Split('\n').Where(l =>
                !l.Contains("aufs", StringComparison.Ordinal) && !l.StartsWith("./.wh.", StringComparison.Ordinal) && !l.StartsWith("./opaque-user", StringComparison.Ordinal)
                && !l.StartsWith("./xw/", StringComparison.Ordinal))); // this kernel lists an xattr whiteout of a merged directory that stat then misses
            Assert.That(KernelFormats(Tree(kernelMnt)), Is.EqualTo(KernelFormats(ours)));
            Assert.That(KernelFormats(ours), Does.Contain("./tree-moved/a/b/leaf").And.Contain("./dir-to-remove/new"), "positive control: the trees hold the changes");
        }
        finally
        {
            Shell.Run($"umount '{kernelMnt}'");
        }
    }
}
