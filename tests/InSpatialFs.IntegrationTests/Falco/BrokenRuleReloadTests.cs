using System.Diagnostics;
using System.Text;
using System.Text.Json;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Falco;

/// <summary>
/// Issue 10 through a mount: the daemon runs with a rule file; the file is broken (an unclosed flow sequence, lists
/// that double at each level), and `reload` / SIGHUP is refused with a positioned error while the daemon keeps
/// serving and the old rules keep firing; a fixed file then reloads.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class BrokenRuleReloadTests
{
    private const string GoodRules = """
        - rule: Marker opened
          desc: a marker file is opened
          condition: evt.type = openat and fd.filename startswith marker
          output: marker %fd.name opened by %proc.name
          priority: NOTICE
        """;

    private string _work = "";
    private string _mount = "";
    private string _control = "";
    private string _rules = "";
    private DaemonProcess? _daemon;

    [OneTimeSetUp]
    public void Start()
    {
        DaemonProcess.RequireMountable();
        _work = Path.Combine("/var/tmp", "inspatialfs-reload-" + Guid.NewGuid().ToString("N")[..8]);
        _mount = Path.Combine(_work, "mnt");
        _control = Path.Combine(_work, "control");
        _rules = Path.Combine(_work, "site.yaml");
        Directory.CreateDirectory(_work);
        File.WriteAllText(_rules, GoodRules);
        string config = Path.Combine(_work, "instance.yaml");
        File.WriteAllText(config, $$"""
            name: reload-{{Path.GetFileName(_work)[^8..]}}
            mountpoint: {{_mount}}
            control: {{_control}}
            state_dir: {{_work}}/state
            mounts:
              - { path: /, memory: { size: 16MiB } }
            rules: { files: [{{_rules}}] }
            """);
        _daemon = DaemonProcess.Start(_mount, ["--config", config], appendMountPoint: false);
        var clock = Stopwatch.StartNew();
        while (!File.Exists(Path.Combine(_control, "status")))
        {
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(20)), "control files did not appear:\n" + _daemon.Output);
            Thread.Sleep(20);
        }
    }

    [OneTimeTearDown]
    public void Stop()
    {
        _daemon?.Dispose();
        Shell.Run($"umount -l '{_control}' 2>/dev/null; rm -rf '{_work}'");
    }

    private int MarkerIncidents() => File.ReadAllLines(Path.Combine(_control, "incidents"))
        .Count(l => l.Length > 0 && JsonDocument.Parse(l).RootElement.GetProperty("source").GetString() == "Marker opened");

    private void OpenMarkerAndExpectIncident(string name)
    {
        int before = MarkerIncidents();
        File.WriteAllText(Path.Combine(_mount, name), "x");
        ShellResult cat = Shell.Run($"cat '{Path.Combine(_mount, name)}'");
        Assert.That((cat.ExitCode, cat.StdOut.Trim()), Is.EqualTo((0, "x")), "the daemon serves: " + cat);
        var clock = Stopwatch.StartNew();
        while (MarkerIncidents() <= before)
        {
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(20)), $"the rule did not fire for {name}:\n{_daemon!.Output}");
            Thread.Sleep(50);
        }
    }

    private int Refusals() => _daemon!.Output.Split("rules not reloaded").Length - 1;

    private ShellResult Reload() => Shell.Run($"echo reload > '{Path.Combine(_control, "control")}'");

    [Test]
    [Order(1)]
    public void The_rule_fires_before_anything_is_broken() => OpenMarkerAndExpectIncident("marker0");

    [TestCase("- rule: Marker opened\n  condition: [unclosed\n", 3)]
    [TestCase("- list: l\n  items: [a, b\n- rule: r\n  condition: fd.name in (l)\n", 3)]
    [TestCase("- rule: r\n  condition: {a: b\n", 3)]
    [Order(2)]
    public void A_broken_file_is_refused_on_reload_and_the_old_rules_keep_firing(string broken, int line)
    {
        File.WriteAllText(_rules, broken);
        ShellResult reload = Reload();
        Assert.That(reload.ExitCode, Is.Not.Zero, "the write of reload fails (EINVAL): " + reload);
        Assert.That(reload.StdErr, Does.Contain("Invalid argument"));
        Assert.That(_daemon!.HasExited, Is.False);
        Assert.That(() => _daemon.Output, Does.Match(System.Text.RegularExpressions.Regex.Escape(_rules) + @":[1-" + line + @"]:\d+: error R001")
            .After(10000).MilliSeconds.PollEvery(50).MilliSeconds, "logged by the console logger's thread");
        Assert.That(_daemon.Output, Does.Not.Contain("Unhandled exception"));
        OpenMarkerAndExpectIncident("marker-" + line + "-" + broken.Length);
    }

    [Test]
    [Order(3)]
    public void Lists_that_double_at_each_level_are_refused_without_taking_the_daemon_down()
    {
        var yaml = new StringBuilder("- list: l0\n  items: [a, b]\n");
        for (int i = 1; i <= 40; i++)
        {
            yaml.Append($"- list: l{i}\n  items: [l{i - 1}, l{i - 1}]\n");
        }

        File.WriteAllText(_rules, yaml + "- rule: bomb\n  condition: proc.name in (l40)\n");
        var clock = Stopwatch.StartNew();
        ShellResult reload = Reload();
        Assert.That(reload.ExitCode, Is.Not.Zero, reload.ToString());
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(20)));
        Assert.That(_daemon!.HasExited, Is.False, _daemon.Output);
        // The log line is written by the console logger's own thread, possibly just after the control reply.
        Assert.That(() => _daemon.Output, Does.Contain("R022").After(10000).MilliSeconds.PollEvery(50).MilliSeconds);
        OpenMarkerAndExpectIncident("marker-bomb");
    }

    [Test]
    [Order(4)]
    public void Sighup_with_a_broken_file_keeps_the_daemon_and_its_rules()
    {
        File.WriteAllText(_rules, "- rule: Marker opened\n  condition: fd.name in (\n");
        int refusedBefore = Refusals();
        Shell.Check($"kill -HUP {_daemon!.Pid}");
        var clock = Stopwatch.StartNew();
        while (Refusals() == refusedBefore)
        {
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(20)), "no reload attempt logged:\n" + _daemon.Output);
            Thread.Sleep(50);
        }

        Assert.That(_daemon.HasExited, Is.False);
        OpenMarkerAndExpectIncident("marker-hup");
    }

    [Test]
    [Order(5)]
    public void A_fixed_file_reloads_and_its_rule_fires()
    {
        File.WriteAllText(_rules, GoodRules.Replace("startswith marker", "startswith fixed", StringComparison.Ordinal));
        ShellResult reload = Reload();
        Assert.That(reload.ExitCode, Is.Zero, reload + "\n" + _daemon!.Output);
        OpenMarkerAndExpectIncident("fixed1");
    }
}
