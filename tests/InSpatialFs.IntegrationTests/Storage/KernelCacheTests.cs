using System.Globalization;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Storage;

/// <summary>
/// Issue 14, kernel caches: on a read-only mount the kernel keeps names, attributes and listings for long (warm `stat`
/// and `find` send no LOOKUP or GETATTR, even after the 1 s timeout of writable mounts has passed), and a policy reload
/// drops them all before `reload` returns, so a path the new rules refuse is refused at once, never answered from a
/// stale cache. Counted through `status` (kernel_lookups, kernel_getattrs), driven with coreutils and findutils.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class KernelCacheTests
{
    private const int Files = 40;

    private const string HarmlessRules = """
        - rule: Nothing here
          condition: fs.path = /no/such/path
          severity: low
          actions: [deny]
        """;

    private const string SecretRules = """
        - rule: Secret refused
          condition: fs.path startswith /d/secret
          severity: low
          actions: [deny]
        """;

    private string _rules = "";

    private ControlledMount StartReadOnly()
    {
        _rules = Path.Combine("/var/tmp", "inspatialfs-kc-rules-" + Guid.NewGuid().ToString("N")[..8] + ".yaml");
        File.WriteAllText(_rules, HarmlessRules);
        ControlledMount m = ControlledMount.Start("/var/tmp", withSource: true, "--read-only", "--rules", _rules);
        Shell.Check($"cd '{m.Source}' && mkdir -p d/sub && for i in $(seq 1 {Files}); do echo $i > d/sub/f$i; done && echo top-secret > d/secret.txt && echo open > d/open.txt");
        return m;
    }

    [TearDown]
    public void RemoveRules()
    {
        if (_rules.Length > 0)
        {
            File.Delete(_rules);
        }
    }

    /// <summary>
    /// Runs <paramref name="pass"/> to warm the caches, waits past the 1 s timeout of writable mounts, runs it again and
    /// checks <paramref name="quiet"/> on the counters before and after. Other tests on this machine write
    /// /proc/sys/vm/drop_caches, which empties every kernel cache at once, so this is tried up to three times and one
    /// quiet pass is enough; with short timeouts no pass would be quiet.
    /// </summary>
    private static void AssertAWarmPassIsQuiet(Func<long[]> counters, Action pass, Func<long[], long[], bool> quiet, string what)
    {
        var seen = new List<string>();
        for (int attempt = 0; attempt < 3; attempt++)
        {
            pass();
            long[] before = counters();
            Thread.Sleep(1500);
            pass();
            long[] after = counters();
            if (quiet(before, after))
            {
                return;
            }

            seen.Add($"[{string.Join(", ", before)}] -> [{string.Join(", ", after)}]");
        }

        Assert.Fail($"{what}: every warm pass reached the daemon: {string.Join("; ", seen)}");
    }

    private static (long Lookups, long GetAttrs) Requests(ControlledMount m) => (m.StatusValue("kernel_lookups"), m.StatusValue("kernel_getattrs"));

    private static long ControlledStatus(string control, string key)
    {
        string line = File.ReadAllLines(Path.Combine(control, "status")).Single(l => l.StartsWith(key + ": ", StringComparison.Ordinal));
        return long.Parse(line[(key.Length + 2)..], CultureInfo.InvariantCulture);
    }

    private static void Reload(ControlledMount m)
    {
        ShellResult r = Shell.Run($"'{DaemonProcess.Binary}' ctl '{m.Control}' reload", TimeSpan.FromSeconds(60));
        Assert.That(r.ExitCode, Is.Zero, "ctl reload: " + r);
        Assert.That(r.Both, Does.Contain("kernel caches dropped"), "reload waits for the cache drop: " + r);
    }

    [Test]
    public void Warm_stat_and_find_on_a_read_only_mount_send_no_lookup_or_getattr_past_the_short_timeout()
    {
        using ControlledMount m = StartReadOnly();
        string files = string.Join(' ', Enumerable.Range(1, Files).Select(i => $"'{m.MountPoint}/d/sub/f{i}'"));

        (long lookups0, long getattrs0) = Requests(m);
        Assert.That(Shell.Check($"stat -c %s {files} | wc -l").Trim(), Is.EqualTo(Files.ToString(CultureInfo.InvariantCulture)));
        (long lookups1, long getattrs1) = Requests(m);
        Assert.That(lookups1 - lookups0, Is.GreaterThanOrEqualTo(Files), "positive control: a cold stat of each file reaches the daemon");

        long[] StatCounters() => [m.StatusValue("kernel_lookups"), m.StatusValue("kernel_getattrs")];
        AssertAWarmPassIsQuiet(StatCounters, () => Shell.Check($"stat -c %s {files}"), (a, b) => a.SequenceEqual(b),
            "a warm stat is answered by the kernel alone");

        // find: the first walk lists and looks up; a warm one (past 1 s) sends no LOOKUP and no READDIR, and no GETATTR
        // of a file. Each directory gets one GETATTR: after a listing the kernel drops its cached atime (fuse_invalidate_atime,
        // on any mount not mounted MS_RDONLY), so find's stat of the directory asks again.
        string count = Shell.Check($"find '{m.MountPoint}' -printf '%s %p\\n' | wc -l").Trim();
        Assert.That(count, Is.EqualTo((Files + 5).ToString(CultureInfo.InvariantCulture)), "root, d, d/sub, secret, open and the files");
        long[] FindCounters() => [m.StatusValue("kernel_lookups"), m.StatusValue("kernel_readdirs"), m.StatusValue("kernel_getattrs")];
        AssertAWarmPassIsQuiet(FindCounters, () => Shell.Check($"find '{m.MountPoint}' -printf '%s %p\\n' > /dev/null"),
            (a, b) => a[0] == b[0] && a[1] == b[1] && b[2] - a[2] <= 3,
            "a warm find: no LOOKUP, no READDIR, at most one GETATTR per directory (root, d, d/sub), none per file");
        TestContext.Out.WriteLine($"cold stat: {lookups1 - lookups0} lookups, {getattrs1 - getattrs0} getattrs; warm stat and find: none");
    }

    /// <summary>
    /// A writable host directory: the kernel keeps its listing from one `ls` to the next while nothing changes (no
    /// READDIR reaches the daemon), and a change made on the host behind the mount (add, remove, rename; on ext4 and on
    /// tmpfs, whose unlink can leave the directory's ctime as it was) shows in the very next `ls`.
    /// </summary>
    [TestCase("/var/tmp")]
    [TestCase("/dev/shm")]
    public void A_writable_listing_is_kept_between_opens_and_a_change_on_the_host_shows_in_the_next_ls(string baseDirectory)
    {
        _rules = Path.Combine("/var/tmp", "inspatialfs-kc-rules-" + Guid.NewGuid().ToString("N")[..8] + ".yaml");
        File.WriteAllText(_rules, HarmlessRules);
        using ControlledMount m = ControlledMount.Start(baseDirectory, withSource: true, "--rules", _rules);
        string host = Path.Combine(m.Source, "w"), through = Path.Combine(m.MountPoint, "w");
        Shell.Check($"mkdir '{host}' && touch '{host}/a' '{host}/b'");
        Thread.Sleep(100); // past the moment a just-changed directory gets no stamp
        string[] Ls() => Shell.Check($"ls '{through}'").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        long ReadDirs() => m.StatusValue("kernel_readdirs");

        Assert.That(Ls(), Is.EqualTo(new[] { "a", "b" }));
        AssertAWarmPassIsQuiet(() => [ReadDirs()], () => Assert.That(Ls(), Is.EqualTo(new[] { "a", "b" })), (x, y) => x.SequenceEqual(y),
            "an unchanged writable directory lists from the kernel's cache");

        // A listing from the kernel's copy still opens the directory through the proxy: each `ls` is decided and recorded.
        static int OpenDirsOfW(List<System.Text.Json.JsonElement> all) =>
            all.Count(e => e.GetProperty("evt.op").GetString() == "opendir" && e.GetProperty("fs.path").GetString() == "/w");
        int opened = OpenDirsOfW(m.Events());
        long readDirs = ReadDirs();
        for (int i = 0; i < 3; i++) Ls();
        Assert.That(OpenDirsOfW(m.WaitForEvents(all => OpenDirsOfW(all) >= opened + 3, TimeSpan.FromSeconds(10))), Is.EqualTo(opened + 3),
            "an opendir event for each of 3 listings");
        TestContext.Out.WriteLine($"3 listings: {ReadDirs() - readDirs} READDIR requests (0 when served from the kernel's copy)");

        void ChangedOnHost(string change, string[] expected)
        {
            // Two listings of the unchanged directory, the last change well past: the kernel holds a kept copy again.
            Thread.Sleep(100);
            Ls();
            Ls();
            long before = ReadDirs();
            Shell.Check(change);
            Assert.That(Ls(), Is.EqualTo(expected), "the next ls after: " + change);
            Assert.That(ReadDirs(), Is.GreaterThan(before), "the listing was asked again after: " + change);
        }

        ChangedOnHost($"touch '{host}/c'", ["a", "b", "c"]);
        ChangedOnHost($"rm '{host}/a'", ["b", "c"]);
        ChangedOnHost($"mv '{host}/b' '{host}/b2'", ["b2", "c"]);
        ChangedOnHost($"rm '{host}/c'", ["b2"]);

        // Through the mount the kernel drops its own copy.
        Shell.Check($"touch '{through}/d'");
        Assert.That(Ls(), Is.EqualTo(new[] { "b2", "d" }));
    }

    [Test]
    public void A_reload_that_forbids_a_cached_file_refuses_its_next_stat_and_cat_at_once()
    {
        using ControlledMount m = StartReadOnly();
        string secret = Path.Combine(m.MountPoint, "d", "secret.txt");

        // Positive control: readable, and cached (a second stat does not reach the daemon).
        Assert.That(Shell.Check($"cat '{secret}'").Trim(), Is.EqualTo("top-secret"));
        AssertAWarmPassIsQuiet(() => [m.StatusValue("kernel_lookups"), m.StatusValue("kernel_getattrs")], () => Shell.Check($"stat '{secret}'"),
            (a, b) => a.SequenceEqual(b), "the kernel answers the stat from its cache");

        File.WriteAllText(_rules, SecretRules);
        Reload(m);

        // At once, not after the hour-long timeout: the cached name is gone, so the kernel asks, and the rule refuses.
        ShellResult stat = Shell.Run($"stat '{secret}'");
        ShellResult cat = Shell.Run($"cat '{secret}'");
        ShellResult ls = Shell.Run($"ls -l '{secret}'");
        Assert.That(stat.ExitCode, Is.Not.Zero, "stat after the reload: " + stat);
        Assert.That(stat.StdErr, Does.Contain("Permission denied").Or.Contain("Operation not permitted"));
        Assert.That(cat.ExitCode, Is.Not.Zero, "cat after the reload: " + cat);
        Assert.That(cat.StdOut, Does.Not.Contain("top-secret"));
        Assert.That(ls.ExitCode, Is.Not.Zero, "ls after the reload: " + ls);

        // The neighbour the rules do not name still reads (the drop refused nothing else).
        Assert.That(Shell.Check($"cat '{Path.Combine(m.MountPoint, "d", "open.txt")}'").Trim(), Is.EqualTo("open"));
    }

    [Test]
    public void A_cached_listing_is_used_until_a_reload_of_the_config_paths_drops_it_and_the_forbidden_names_vanish_at_once()
    {
        string work = Path.Combine("/var/tmp", "inspatialfs-kc-" + Guid.NewGuid().ToString("N")[..8]);
        string source = Path.Combine(work, "source"), mnt = Path.Combine(work, "mnt"), control = Path.Combine(work, "ctl");
        string config = Path.Combine(work, "instance.yaml");
        Shell.Check($"mkdir -p '{source}/d/secret-dir' && echo x > '{source}/d/secret-dir/inside' && echo h > '{source}/d/hidden.txt' && echo o > '{source}/d/open.txt'");
        string Config(string forbidden) => $$"""
            name: kc-{{Path.GetFileName(work)[^8..]}}
            mountpoint: {{mnt}}
            control: {{control}}
            state_dir: {{work}}/state
            mounts:
              - { path: /, source: {{source}}, readonly: true }
            paths:
              forbidden: [{{forbidden}}]
            """;
        File.WriteAllText(config, Config("/nothing/here"));
        DaemonProcess? daemon = null;
        try
        {
            daemon = DaemonProcess.Start(mnt, ["--config", config], appendMountPoint: false);
            Security.ControlFiles.WaitUntilServing(control, daemon);
            string d = Path.Combine(mnt, "d");

            Assert.That(Shell.Check($"ls '{d}'").Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(new[] { "hidden.txt", "open.txt", "secret-dir" }),
                "positive control: every name lists before the reload");
            Assert.That(Shell.Check($"ls '{d}/secret-dir'").Trim(), Is.EqualTo("inside"));

            // The listing is cached (FOPEN_CACHE_DIR): listed again past the 1 s of writable mounts, it sends no READDIR.
            AssertAWarmPassIsQuiet(() => [ControlledStatus(control, "kernel_readdirs")], () => Assert.That(Shell.Check($"ls '{d}'"), Does.Contain("hidden.txt")),
                (a, b) => a.SequenceEqual(b), "the second listing comes from the kernel's cache");
            long readdirs = ControlledStatus(control, "kernel_readdirs");

            File.WriteAllText(config, Config("/d/hidden.txt, /d/secret-dir, /d/secret-dir/**"));
            ShellResult reload = Shell.Run($"'{DaemonProcess.Binary}' ctl '{control}' reload", TimeSpan.FromSeconds(60));
            Assert.That(reload.ExitCode, Is.Zero, "ctl reload: " + reload);
            Assert.That(reload.Both, Does.Contain("paths reloaded").And.Contain("kernel caches dropped"));
            Assert.That(reload.Both, Does.Not.Contain("not applied"), "only paths: changed");

            Assert.That(Shell.Check($"ls '{d}'").Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(new[] { "open.txt" }),
                "the listing is asked again at once, and the forbidden names are gone from it");
            Assert.That(ControlledStatus(control, "kernel_readdirs"), Is.GreaterThan(readdirs));
            ShellResult ls = Shell.Run($"ls '{d}/secret-dir'");
            Assert.That(ls.ExitCode, Is.Not.Zero, "ls of the now forbidden directory: " + ls);
            Assert.That(ls.StdOut, Does.Not.Contain("inside"));
            ShellResult stat = Shell.Run($"stat '{d}/hidden.txt'");
            Assert.That(stat.ExitCode, Is.Not.Zero, "stat of the now forbidden file: " + stat);
            Assert.That(stat.StdErr, Does.Contain("Permission denied"));
            Assert.That(Shell.Check($"cat '{d}/open.txt'").Trim(), Is.EqualTo("o"), "what the new paths do not name still reads");

            // An edit reload cannot apply is said, not silently left out.
            File.WriteAllText(config, Config("/d/hidden.txt, /d/secret-dir, /d/secret-dir/**") + "\nisolation: maximum\n");
            ShellResult partly = Shell.Run($"'{DaemonProcess.Binary}' ctl '{control}' reload", TimeSpan.FromSeconds(60));
            Assert.That(partly.ExitCode, Is.Zero, partly.ToString());
            Assert.That(partly.Both, Does.Contain("not applied until a restart: isolation changed in the config"), partly.ToString());
        }
        finally
        {
            daemon?.Dispose();
            Shell.Run($"umount -l '{control}' 2>/dev/null; umount -l '{mnt}' 2>/dev/null; rm -rf '{work}'");
        }
    }

    [Test]
    public void An_image_layer_file_is_cached_long_until_a_write_through_the_mount_copies_it_up()
    {
        string work = Path.Combine("/var/tmp", "inspatialfs-kco-" + Guid.NewGuid().ToString("N")[..8]);
        string mnt = Path.Combine(work, "mnt"), control = Path.Combine(work, "ctl"), config = Path.Combine(work, "instance.yaml");
        Shell.Check($"mkdir -p '{work}/lower/d' '{work}/upper' '{work}/work' && echo image > '{work}/lower/d/img.txt' && chmod 0755 '{work}' '{work}/lower' '{work}/upper'");
        File.WriteAllText(config, $$"""
            name: kco-{{Path.GetFileName(work)[^8..]}}
            mountpoint: {{mnt}}
            control: {{control}}
            state_dir: {{work}}/state
            mounts:
              - { path: /, overlay: { lower: [{{work}}/lower], upper: {{work}}/upper, work: {{work}}/work } }
            """);
        DaemonProcess? daemon = null;
        try
        {
            daemon = DaemonProcess.Start(mnt, ["--config", config], appendMountPoint: false);
            Security.ControlFiles.WaitUntilServing(control, daemon);
            string img = Path.Combine(mnt, "d", "img.txt");
            (long, long) Counts() => (ControlledStatus(control, "kernel_lookups"), ControlledStatus(control, "kernel_getattrs"));

            (long lookups0, _) = Counts();
            Assert.That(Shell.Check($"stat -c %s '{img}'").Trim(), Is.EqualTo("6"));
            (long lookups1, _) = Counts();
            Assert.That(lookups1, Is.GreaterThan(lookups0), "positive control: the cold stat reaches the daemon");
            AssertAWarmPassIsQuiet(() => [ControlledStatus(control, "kernel_lookups"), ControlledStatus(control, "kernel_getattrs")],
                () => Shell.Check($"stat -c %s '{img}'"), (a, b) => a[0] == b[0] && b[1] - a[1] <= 1,
                "d and img.txt, only in the image layer, are not looked up again past 1 s (at most the root's attributes: it has an upper part)");

            // A write through the mount copies it up; the kernel saw the write, so nothing it answers is stale.
            Shell.Check($"echo changed-and-longer > '{img}'");
            Assert.That(Shell.Check($"stat -c %s '{img}'").Trim(), Is.EqualTo("19"));
            Assert.That(Shell.Check($"cat '{img}'").Trim(), Is.EqualTo("changed-and-longer"));
            Assert.That(File.ReadAllText(Path.Combine(work, "upper", "d", "img.txt")), Is.EqualTo("changed-and-longer\n"), "copied up");

            // Copied up, it is an upper file like any writable one: the 1 s timeout again.
            (long, long) afterWrite = Counts();
            Thread.Sleep(1500);
            Shell.Check($"stat -c %s '{img}'");
            Assert.That(Counts(), Is.Not.EqualTo(afterWrite), "the copied-up file is asked again after 1 s");
        }
        finally
        {
            daemon?.Dispose();
            Shell.Run($"umount -l '{control}' 2>/dev/null; umount -l '{mnt}' 2>/dev/null; rm -rf '{work}'");
        }
    }

    [Test]
    public void A_process_blocked_by_a_rule_is_refused_a_name_it_had_cached()
    {
        using ControlledMount m = StartReadOnly();
        File.WriteAllText(_rules, """
            - rule: Marker blocks its reader
              condition: evt.op = open and fs.path = /d/open.txt
              severity: low
              actions: [block-process]
            """);
        Reload(m);
        string secret = Path.Combine(m.MountPoint, "d", "secret.txt");
        string marker = Path.Combine(m.MountPoint, "d", "open.txt");
        // One process: stat (cached), stat again (served by the kernel), open the marker (the rule blocks this process),
        // then stat the cached name again. The block drops the caches (queued from the reader thread that took it), so
        // the last stat asks the daemon, which refuses the blocked process.
        string script = $$"""
            import os, time, errno
            os.stat('{{secret}}'); os.stat('{{secret}}')
            print('readable before the block')
            try:
                open('{{marker}}').read()
            except OSError as e:
                print('marker', e.errno)
            time.sleep(0.5)
            try:
                os.stat('{{secret}}'); print('after block: ok')
            except OSError as e:
                print('after block:', errno.errorcode[e.errno])
            """;
        string scriptPath = Path.Combine(m.Work, "blocked.py");
        File.WriteAllText(scriptPath, script);
        ShellResult r = Shell.Run($"python3 '{scriptPath}'", TimeSpan.FromSeconds(30));
        Assert.That(r.StdOut, Does.Contain("readable before the block"), "positive control: the first stats worked: " + r);
        Assert.That(r.StdOut, Does.Contain("after block: EPERM"), "the blocked process is refused the name it had cached: " + r);
        Assert.That(Shell.Check($"stat -c %s '{secret}'").Trim(), Is.EqualTo("11"), "another process is not blocked");
        Assert.That(m.Status(), Does.Contain("cache_invalidations: 2"), "the reload and the block each dropped the caches");
    }
}
