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

    private static bool WaitBriefly()
    {
        Thread.Sleep(10);
        return true;
    }
}
