using System.Diagnostics;
using InSpatialFs.IntegrationTests.Security;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Hardening;

/// <summary>One config key, the operation that shows it, and the outcome with the key and under the plain level.</summary>
public sealed record KeyRow(string Key, string Yaml, string Setup, string Op, string With, string Without)
{
    public override string ToString() => Key;
}

/// <summary>
/// Issue 10, "Every accepted setting has its effect": each key whose effect no other test shows is set in a config file,
/// and the operation it governs is run twice, on an instance with the key and on the plain standard level: the outcomes
/// must differ as the row says (so the key is not silently ignored, as `exec.runtime_written: alert` once was). Operations:
/// <c>fsop ...</c> (native/build/fsop: OK or the errno), <c>sh ...</c> (OK or FAIL), <c>time ...</c> (fast or slow, for
/// rates), <c>incident RULE: ...</c> (whether the rule raised an incident). $M is the mountpoint; setup runs in the source.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class ConfigKeyEffectTests
{
    private const string Member = "cp /bin/busybox data/busybox"; // a container member is a process whose root is the mount: chroot $M /data/busybox ...

    public static readonly KeyRow[] Rows =
    [
        new("controls.refuse_setuid", "controls: { refuse_setuid: false }", "touch data/s", "fsop chmod $M/data/s 04755", "OK", "EPERM"),
        new("controls.refuse_devices", "controls: { refuse_devices: false }", "", "fsop mknod $M/data/dev chr", "OK", "EPERM"),
        new("controls.refuse_fifos_sockets", "controls: { refuse_fifos_sockets: true }", "", "fsop mknod $M/data/fifo fifo", "EPERM", "OK"),
        new("controls.refuse_security_xattrs", "controls: { refuse_security_xattrs: false }", "touch data/xs", "fsop setxattr $M/data/xs security.evil x", "OK", "EPERM"),
        new("controls.refuse_all_xattr_writes", "controls: { refuse_all_xattr_writes: true }", "touch data/xu", "fsop setxattr $M/data/xu user.note x", "EPERM", "OK"),
        new("controls.restrict_hardlinks", "controls: { restrict_hardlinks: true }", "touch data/l && chown 1000:1000 data/l", "fsop link $M/data/l $M/data/l2", "EPERM", "OK"),
        new("controls.restrict_symlinks", "controls: { restrict_symlinks: true }", "", "fsop symlink ../../../outside $M/data/up", "EPERM", "OK"),
        new("controls.exec_runtime_written", "controls: { exec_runtime_written: deny }", "cp /bin/true $M/tmp/dropped", "fsop exec $M/tmp/dropped", "EPERM", "OK"),
        new("exec.runtime_written", "exec: { runtime_written: deny }", "cp /bin/true $M/tmp/dropped", "fsop exec $M/tmp/dropped", "EPERM", "OK"),
        new("resources.memory", "resources: { memory: 1MiB }", "", "sh head -c 2M /dev/zero > $M/tmp/big", "FAIL", "OK"),
        new("resources.open_files", "resources: { open_files: 3 }", Member, "sh chroot $M /data/busybox sh -c 'exec 3</data/busybox 4</data/busybox 5</data/busybox 6</data/busybox 7</data/busybox'", "FAIL", "OK"),
        new("resources.ops_per_second", "resources: { ops_per_second: 20 }", Member, "time chroot $M /data/busybox sh -c 'for i in $(/data/busybox seq 80); do [ -e /data/n$i ]; done; true'", "slow", "fast"),
        new("host_users.root", "host_users: { root: read-only }", "", "fsop create $M/data/by-host-root 0644", "EACCES", "OK"),
        new("rules.files", "rules: { files: [{rules}] }", "", "incident Canary created: touch $M/data/canary", "incident", "none"),
    ];

    private SecuredMount? _plain;

    [OneTimeSetUp]
    public void StartPlainLevel() => _plain = SecuredMount.Start("standard");

    [OneTimeTearDown]
    public void StopPlainLevel() => _plain?.Dispose();

    [TestCaseSource(nameof(Rows))]
    public void Each_key_changes_the_outcome_of_its_operation(KeyRow row)
    {
        string rules = Path.Combine("/var/tmp", "isfs-canary-" + Guid.NewGuid().ToString("N")[..8] + ".yaml");
        File.WriteAllText(rules, """
            - rule: Canary created
              desc: test rule loaded from the config's rules.files
              condition: evt.op = create and fs.path = /data/canary
              output: canary created by %proc.name
              severity: medium
              actions: [alert]
            """);
        using var cleanup = new RemoveOnDispose(rules);
        using SecuredMount keyed = SecuredMount.Start("standard", row.Yaml.Replace("{rules}", rules, StringComparison.Ordinal));
        string with = Outcome(keyed, row);
        string without = Outcome(_plain!, row);
        Assert.That((with, without), Is.EqualTo((row.With, row.Without)), $"{row.Key}: `{row.Op}` with `{row.Yaml}` vs the plain standard level\n{keyed.Daemon.Output}");
    }

    [Test]
    public void Allow_direct_and_memory_size_take_effect()
    {
        DaemonProcess.RequireMountable();
        string work = Path.Combine("/var/tmp", "isfs-direct-" + Guid.NewGuid().ToString("N")[..8]);
        Shell.Check($"mkdir -p '{work}/source' && echo data > '{work}/source/file'");
        try
        {
            string Decision(string extra, string name)
            {
                string config = Path.Combine(work, name + ".yaml");
                File.WriteAllText(config, $"""
                    name: {name}-{work[^8..]}
                    mountpoint: {work}/mnt
                    control: {work}/ctl
                    state_dir: {work}/state-{name}
                    mounts:
                      - {"{"} path: /, source: {work}/source, direct: true {"}"}
                      - {"{"} path: /small, memory: {"{"} size: 1MiB {"}"} {"}"}
                    {extra}
                    """);
                using DaemonProcess daemon = DaemonProcess.Start(Path.Combine(work, "mnt"), ["--config", config], appendMountPoint: false);
                ControlFiles.WaitUntilServing(Path.Combine(work, "ctl"), daemon);
                Shell.Check($"cat '{work}/mnt/file' > /dev/null");
                Assert.That(Shell.Run($"head -c 512K /dev/zero > '{work}/mnt/small/fits'").ExitCode, Is.Zero, "memory.size: a write within the size");
                ShellResult over = Shell.Run($"head -c 2M /dev/zero > '{work}/mnt/small/over'");
                Assert.That(over.StdErr, Does.Contain("No space left"), "memory.size: a write past the size");
                string decision = ControlFiles.Str(ControlFiles.WaitForEvent(Path.Combine(work, "ctl"), e => ControlFiles.Str(e, "evt.op") == "open" && ControlFiles.Str(e, "fs.path") == "/file", "open of /file"), "evt.decision");
                Assert.That(daemon.Stop(), Is.Zero, daemon.Output);
                return decision;
            }

            Assert.That(Decision("", "direct"), Is.EqualTo("allow_direct"), "positive control: standard grants DirectFS on a direct mount");
            Assert.That(Decision("controls: { allow_direct: false }", "nodirect"), Is.EqualTo("allow"), "controls.allow_direct: false keeps every byte mediated");
        }
        finally
        {
            Mounts.ForceUnmount(Path.Combine(work, "mnt"));
            Mounts.ForceUnmount(Path.Combine(work, "ctl"));
            Shell.Run($"rm -rf '{work}'");
        }
    }

    private static string Outcome(SecuredMount mount, KeyRow row)
    {
        if (row.Setup.Length > 0)
        {
            ShellResult setup = mount.Sh(row.Setup);
            Assert.That(setup.ExitCode, Is.Zero, $"setup of {row.Key}: {setup}");
        }

        string kind = row.Op[..row.Op.IndexOf(' ', StringComparison.Ordinal)];
        string rest = row.Op[(kind.Length + 1)..];
        switch (kind)
        {
            case "fsop":
                return mount.Fsop(rest);
            case "sh":
                return mount.Sh(rest).ExitCode == 0 ? "OK" : "FAIL";
            case "time":
                var clock = Stopwatch.StartNew();
                ShellResult timed = mount.Sh(rest);
                Assert.That(timed.ExitCode, Is.Zero, $"{row.Key}: a rate delays, it never fails: {timed}");
                TestContext.Out.WriteLine($"{row.Key}: {clock.Elapsed.TotalSeconds:0.00} s");
                return clock.Elapsed > TimeSpan.FromSeconds(1.5) ? "slow" : "fast";
            default:
                string rule = rest[..rest.IndexOf(':', StringComparison.Ordinal)];
                Assert.That(mount.Sh(rest[(rule.Length + 1)..]).ExitCode, Is.Zero);
                bool raised = ControlFiles.Eventually(() => mount.Incidents().Any(i => ControlFiles.Str(i, "source") == rule), TimeSpan.FromSeconds(5));
                return raised ? "incident" : "none";
        }
    }

    private sealed class RemoveOnDispose(string path) : IDisposable
    {
        public void Dispose() => File.Delete(path);
    }
}
