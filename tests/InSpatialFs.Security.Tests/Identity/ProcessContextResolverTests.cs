using System.Diagnostics;
using System.Globalization;
using InSpatialFs.Security.Identity;

namespace InSpatialFs.Security.Tests.Identity;

/// <summary>The Falco process fields as read from /proc for a real process, against what the test started it with.</summary>
public sealed class ProcessContextResolverTests
{
    [Test]
    public void Links_are_read_whole_up_to_the_longest_target_a_symlink_can_hold_and_a_missing_one_is_null()
    {
        string dir = Directory.CreateTempSubdirectory("links-").FullName;
        try
        {
            string longest = "/" + new string('t', 4094); // 4095 bytes: PATH_MAX less its terminating NUL
            File.CreateSymbolicLink(Path.Combine(dir, "long"), longest);
            File.CreateSymbolicLink(Path.Combine(dir, "named"), "/tmp/caf\u00e9 x");
            Assert.Multiple(() =>
            {
                Assert.That(ProcFs.TryReadLink(Path.Combine(dir, "long")), Is.EqualTo(longest));
                Assert.That(ProcFs.TryReadLink(Path.Combine(dir, "named")), Is.EqualTo("/tmp/caf\u00e9 x"), "UTF-8 targets decode");
                Assert.That(ProcFs.TryReadLink(Path.Combine(dir, "missing")), Is.Null);
                Assert.That(ProcFs.TryReadLink("/proc/self/exe"), Is.EqualTo(new FileInfo("/proc/self/exe").LinkTarget), "as the runtime reads it");
            });
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void Capability_names_are_the_same_text_however_often_a_set_is_asked()
    {
        const ulong chownAndKill = (1UL << 0) | (1UL << 5);
        Assert.That(Capabilities.Names(chownAndKill), Is.EqualTo("CAP_CHOWN CAP_KILL"));
        Assert.That(Capabilities.Names(chownAndKill), Is.EqualTo("CAP_CHOWN CAP_KILL"), "a remembered set");
        Assert.That(Capabilities.Names(0), Is.Empty);
    }

    [Test]
    public void A_process_s_fields_come_from_its_stat_status_cmdline_and_links()
    {
        string cwd = Directory.CreateTempSubdirectory("pcr-").FullName;
        // setpriv: another uid, no capabilities, its own session; then exec sleep with two arguments.
        using Process child = Process.Start(new ProcessStartInfo("setpriv", ["--reuid", "1234", "--regid", "1234", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "setsid", "sleep", "30", "0"]) { UseShellExecute = false, WorkingDirectory = cwd })!;
        try
        {
            ProcessContext? c = null;
            var sw = Stopwatch.StartNew();
            while ((c = new ProcessContextResolver().Resolve(child.Id)) is not { Name: "sleep" } && sw.ElapsedMilliseconds < 5000) Thread.Sleep(10);
            string stat = File.ReadAllText($"/proc/{child.Id}/stat");
            Assert.That(c, Is.Not.Null);
            Assert.Multiple(() =>
            {
                Assert.That((c!.Pid, c.VPid, c.PPid), Is.EqualTo((child.Id, child.Id, Environment.ProcessId)), "pid, pid in its own namespace (the host's), parent");
                Assert.That((c.Name, c.Exe, c.Args), Is.EqualTo(("sleep", "sleep", "30 0")));
                Assert.That(c.ExePath, Does.EndWith("/sleep"));
                Assert.That(c.Cwd, Is.EqualTo(cwd + "/"));
                Assert.That(c.Uid, Is.EqualTo(1234u), "the effective uid (Uid: line, second value)");
                Assert.That((c.CapEffective, c.CapPermitted, c.CapInheritable), Is.EqualTo(("", "", "")), "no capabilities after setpriv");
                Assert.That(c.Sid, Is.EqualTo(child.Id), "setsid made it a session leader");
                Assert.That(c.StartTime, Is.EqualTo(ulong.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[19], CultureInfo.InvariantCulture)));
                Assert.That(c.Parent?.Pid, Is.EqualTo(Environment.ProcessId), "the ancestors follow");
                Assert.That(new ProcessContextResolver().Resolve(Environment.ProcessId)!.CapEffective, Does.Contain("CAP_SYS_ADMIN"), "positive control: this root test host has capabilities");
            });
        }
        finally
        {
            child.Kill();
            child.WaitForExit();
        }
    }

    [Test]
    public void The_cache_stays_within_its_capacity()
    {
        // This process and its ancestors are cached as one resolve reads them (more than two on any host: the test
        // host, its runner, init...).
        var roomy = new ProcessContextResolver(capacity: 100);
        Assert.That(roomy.Resolve(Environment.ProcessId), Is.Not.Null);
        Assert.That(roomy.Count, Is.GreaterThan(2), "positive control: a resolve caches the ancestry");

        var tight = new ProcessContextResolver(capacity: 2);
        for (int i = 0; i < 3; i++)
        {
            Assert.That(tight.Resolve(Environment.ProcessId)?.Pid, Is.EqualTo(Environment.ProcessId), "a full cache is cleared, never refused");
            Assert.That(tight.Count, Is.LessThanOrEqualTo(2));
        }
    }

    [Test]
    public void Within_a_pin_each_stat_file_is_read_once()
    {
        using Process child = Process.Start(new ProcessStartInfo("sleep", ["30"]) { UseShellExecute = false })!;
        try
        {
            var resolver = new ProcessContextResolver();
            Assert.That(resolver.Resolve(Environment.ProcessId), Is.Not.Null, "the parent's context is cached before the pin");
            ProcessContext? c = null;
            var sw = Stopwatch.StartNew();
            StatReads reads;
            do
            {
                // The pin's identity step reads the caller's stat first; the context must not read it again, nor the
                // parent's more than once (its cached context is found by reading its stat once).
                reads = new StatReads("/proc");
                Assert.That(reads.Read(child.Id), Is.Not.Null);
                c = resolver.Resolve(child.Id, reads);
            }
            while (c is not { Name: "sleep" } && sw.ElapsedMilliseconds < 5000 && WaitBriefly());

            Assert.That(c, Is.Not.Null);
            Assert.That(c!.Parent?.Pid, Is.EqualTo(Environment.ProcessId));
            Assert.That(reads.Reads, Is.EqualTo(2), "the child's stat (read by the pin) and the parent's, once each");
            Assert.That(reads.Read(child.Id), Is.Not.Null);
            Assert.That(reads.Read(Environment.ProcessId), Is.Not.Null);
            Assert.That(reads.Reads, Is.EqualTo(2), "read again within the pin: from what the pin kept");
            Assert.That(new StatReads("/proc").Read(int.MaxValue), Is.Null, "positive control: a pid that does not exist reads as gone");
        }
        finally
        {
            child.Kill();
            child.WaitForExit();
        }
    }

    [Test]
    public void A_script_run_through_its_interpreter_is_cached_as_any_process_is()
    {
        // #!/bin/sh in a script: the kernel runs "/bin/sh SCRIPT" and names the process after the script, so comm and
        // argv[0] differ for as long as it runs. Every child it starts names it as parent.
        string dir = Directory.CreateTempSubdirectory("pcr-script-").FullName;
        string script = Path.Combine(dir, "entrypoint.sh");
        File.WriteAllText(script, "#!/bin/sh\nsleep 30\necho done\n");
        File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        using Process child = Process.Start(new ProcessStartInfo(script) { UseShellExecute = false })!;
        try
        {
            var resolver = new ProcessContextResolver();
            Assert.That(resolver.Resolve(Environment.ProcessId), Is.Not.Null, "the ancestors first (the test host's own name may disagree with its argv[0])");
            int unsettledAncestors = resolver.UnsettledCount;
            ProcessContext? first = null;
            var sw = Stopwatch.StartNew();
            while ((first = resolver.Resolve(child.Id)) is not { Name: "entrypoint.sh" } && sw.ElapsedMilliseconds < 5000) Thread.Sleep(10);
            Assert.That(first, Is.Not.Null);
            Assert.That((first!.Exe, first.Args), Is.EqualTo(("/bin/sh", script)), "argv as /proc shows it");
            Assert.That(resolver.Resolve(child.Id), Is.SameAs(first), "cached: read once, not at every child's request");
            Assert.That(resolver.UnsettledCount, Is.EqualTo(unsettledAncestors), "a script is a settled process, not one caught inside execve");
        }
        finally
        {
            child.Kill();
            child.WaitForExit();
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void A_renamed_process_is_reused_while_its_arguments_read_the_same_and_read_afresh_once_they_change()
    {
        // A /proc of one process (pid 4242, no parent) whose comm names no argument: renamed without an exec, or caught
        // inside one.
        string proc = Directory.CreateTempSubdirectory("pcr-proc-").FullName;
        string dir = Path.Combine(proc, "4242");
        Directory.CreateDirectory(dir);
        string fields = string.Join(' ', Enumerable.Range(3, 50).Select(i => i switch { 3 => "S", 4 => "0", 22 => "777", _ => "0" }));
        File.WriteAllText(Path.Combine(dir, "stat"), $"4242 (worker-7) {fields}\n");
        File.WriteAllText(Path.Combine(dir, "status"), "Name:\tworker-7\nUid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000000000\n");
        File.WriteAllText(Path.Combine(dir, "loginuid"), "4294967295");
        File.CreateSymbolicLink(Path.Combine(dir, "exe"), "/usr/bin/python3");
        File.CreateSymbolicLink(Path.Combine(dir, "cwd"), "/srv");
        File.WriteAllBytes(Path.Combine(dir, "cmdline"), "python3\0pool.py\0"u8.ToArray());
        try
        {
            var resolver = new ProcessContextResolver(proc);
            ProcessContext? first = resolver.Resolve(4242);
            Assert.That(first, Is.Not.Null);
            Assert.That((first!.Name, first.Exe, first.Args, first.Uid, first.Cwd), Is.EqualTo(("worker-7", "python3", "pool.py", 1000u, "/srv/")));
            Assert.That(resolver.UnsettledCount, Is.EqualTo(1), "kept apart: comm and arguments disagree");
            Assert.That(resolver.Resolve(4242), Is.SameAs(first), "the same arguments: the context is reused");

            // execve finished meanwhile (or the process changed its arguments): read afresh, not the kept context.
            File.WriteAllBytes(Path.Combine(dir, "cmdline"), "worker-7\0--serve\0"u8.ToArray());
            ProcessContext? after = resolver.Resolve(4242);
            Assert.That(after, Is.Not.SameAs(first));
            Assert.That((after!.Exe, after.Args), Is.EqualTo(("worker-7", "--serve")));
            Assert.That(resolver.Resolve(4242), Is.SameAs(after), "now consistent: cached as any process is");
        }
        finally
        {
            Directory.Delete(proc, recursive: true);
        }
    }

    [TestCase("entrypoint.sh", "/bin/sh\0./entrypoint.sh\0", true)]
    [TestCase("run.py", "/usr/bin/python3\0-u\0/app/run.py\0", true)]
    [TestCase("bash", "-bash\0", true)]
    [TestCase("sleep", "sleep\030\0", true)]
    [TestCase("averyveryverylo", "/opt/averyveryverylongname\0", true)]
    [TestCase("cat", "\0", false)]
    [TestCase("cat", "", false)]
    [TestCase("u", "/bin/sh\0-u\0", false)]
    [TestCase("evil", "/bin/sh\0-c\0x\0/tmp/evil\0", false)]
    public void Comm_names_argv0_or_the_script_its_interpreter_was_given(string comm, string cmdline, bool consistent)
    {
        Assert.That(ProcessContextResolver.Consistent(comm, System.Text.Encoding.UTF8.GetBytes(cmdline)), Is.EqualTo(consistent));
    }

    private static bool WaitBriefly()
    {
        Thread.Sleep(10);
        return true;
    }
}
