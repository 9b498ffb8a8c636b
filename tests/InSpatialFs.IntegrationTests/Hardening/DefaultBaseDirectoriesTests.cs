using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Hardening;

/// <summary>
/// The attack of issue 10 on the real defaults (/var/lib/inspatialfs, /run/inspatialfs) with a unique instance name:
/// the base directories, left 0777 by earlier versions, are tightened and logged; what nobody planted below them for an
/// instance that has not started yet (its state directory with an instance.pid symlink, its control directory as a
/// symlink) refuses the start and touches nothing outside.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class DefaultBaseDirectoriesTests
{
    private const string StateRoot = "/var/lib/inspatialfs";
    private const string ControlRoot = "/run/inspatialfs";

    private string _work = "";
    private string _name = "";

    [SetUp]
    public void SetUp()
    {
        DaemonProcess.RequireMountable();
        _name = "isfs-defaults-" + Guid.NewGuid().ToString("N")[..8];
        _work = Path.Combine("/var/tmp", _name);
        Shell.Check($"mkdir -m 0755 '{_work}' '{_work}/mnt' '{_work}/target-dir' && echo original > '{_work}/target-file' && chmod 0644 '{_work}/target-file'");
    }

    [TearDown]
    public void TearDown()
    {
        Mounts.ForceUnmount(Path.Combine(_work, "mnt"));
        Mounts.ForceUnmount(Path.Combine(ControlRoot, _name));
        Shell.Run($"rm -rf '{_work}' '{StateRoot}/{_name}'; rm -rf '{ControlRoot}/{_name}'");
    }

    [Test]
    public void Open_base_directories_are_tightened_and_plants_below_them_refuse_the_start()
    {
        // What an earlier version left behind (mode 0777), and what nobody then planted there.
        Shell.Check($"mkdir -p {StateRoot} {ControlRoot} && chmod 0777 {StateRoot} {ControlRoot}");
        Shell.Check($"setpriv --reuid nobody --regid nogroup --clear-groups sh -c 'mkdir {StateRoot}/{_name} && ln -s {_work}/target-file {StateRoot}/{_name}/instance.pid && ln -s {_work}/target-dir {ControlRoot}/{_name}'");
        string start = $"timeout -s KILL 60 '{DaemonProcess.Binary}' mount --memory --name {_name} '{_work}/mnt'";
        TestContext.Out.WriteLine($"tried: {StateRoot}/{_name} (nobody's, instance.pid -> target-file), {ControlRoot}/{_name} -> target-dir");

        ShellResult first = Shell.Run(start, TimeSpan.FromSeconds(90));
        Assert.Multiple(() =>
        {
            Assert.That(first.ExitCode, Is.EqualTo(1), first.ToString());
            Assert.That(first.Both, Does.Contain($"{StateRoot}/{_name} is owned by uid 65534"));
            Assert.That(first.Both, Does.Contain($"{StateRoot} was writable by group or others (mode 0777").And.Contain("tightened to 0755"));
            Assert.That(Shell.Check($"stat -c %a {StateRoot}").Trim(), Is.EqualTo("755"), "the state base is repaired");
        });

        Shell.Check($"rm -rf '{StateRoot}/{_name}'");
        ShellResult second = Shell.Run(start, TimeSpan.FromSeconds(90));
        Assert.Multiple(() =>
        {
            Assert.That(second.ExitCode, Is.EqualTo(1), second.ToString());
            Assert.That(second.Both, Does.Contain($"{ControlRoot}/{_name} is a symbolic link"));
            Assert.That(Shell.Check($"stat -c %a {ControlRoot}").Trim(), Is.EqualTo("755"), "the control base is repaired");
            Assert.That(Mounts.IsFuse(Path.Combine(_work, "mnt")) || Mounts.IsFuse(Path.Combine(_work, "target-dir")), Is.False, "nothing mounted");
            Assert.That(Shell.Check($"stat -c %a '{_work}/target-dir' '{_work}/target-file'").Split('\n', StringSplitOptions.RemoveEmptyEntries), Is.EqualTo(new[] { "755", "644" }));
            Assert.That(File.ReadAllText(Path.Combine(_work, "target-file")), Is.EqualTo("original\n"));
        });

        // Positive control: with the plants gone the defaults work, owned by root, 0700 and 0600. What an earlier version
        // left there itself (root's state directory 0777, its files 0666) is tightened and logged, not refused.
        Shell.Check($"rm -f '{ControlRoot}/{_name}' && rm -rf {StateRoot}/{_name} && mkdir -m 0777 {StateRoot}/{_name} && : > {StateRoot}/{_name}/incidents.jsonl && chmod 0666 {StateRoot}/{_name}/incidents.jsonl");
        using DaemonProcess daemon = DaemonProcess.Start(Path.Combine(_work, "mnt"), ["--memory", "--name", _name]);
        Assert.That(daemon.Output, Does.Contain($"{StateRoot}/{_name} was writable by group or others (mode 0777").And.Contain($"{StateRoot}/{_name}/incidents.jsonl was writable by group or others (mode 0666"));
        Assert.That(Shell.Run($"for i in $(seq 100); do [ -e {ControlRoot}/{_name}/status ] && break; sleep 0.1; done; cat {ControlRoot}/{_name}/status").StdOut, Does.Contain("name: " + _name));
        Assert.That(Shell.Check($"stat -c '%a %U' {StateRoot}/{_name} {StateRoot}/{_name}/instance.pid {StateRoot}/{_name}/incidents.jsonl").Split('\n', StringSplitOptions.RemoveEmptyEntries),
            Is.EqualTo(new[] { "700 root", "600 root", "600 root" }));
        Assert.That(daemon.Stop(), Is.Zero, daemon.Output);
    }

    [Test]
    public void A_background_start_tightens_an_open_base_as_the_foreground_start_does()
    {
        Shell.Check($"mkdir -p {StateRoot} && chmod 0777 {StateRoot}");
        ShellResult started = Shell.Run($"timeout -s KILL 60 '{DaemonProcess.Binary}' mount -b --memory --name {_name} '{_work}/mnt'", TimeSpan.FromSeconds(90));
        Assert.That(started.ExitCode, Is.Zero, started.ToString());
        Assert.That(started.Both, Does.Contain($"{StateRoot} was writable by group or others (mode 0777").And.Contain("tightened to 0755"), started.ToString());
        Assert.That(Shell.Check($"stat -c %a {StateRoot}").Trim(), Is.EqualTo("755"));
        Assert.That(Mounts.IsFuse(Path.Combine(_work, "mnt")), Is.True, "and it serves");
        Shell.Check($"umount '{_work}/mnt'");
    }

    [Test]
    public void A_clean_stop_removes_its_default_control_directory_and_leaves_one_the_operator_chose()
    {
        string mnt = Path.Combine(_work, "mnt");
        string control = Path.Combine(ControlRoot, _name);
        using (DaemonProcess daemon = DaemonProcess.Start(mnt, ["--memory", "--name", _name]))
        {
            Assert.That(ControlServes(control), Is.True, daemon.Output);
            Assert.That(daemon.Stop(), Is.Zero, daemon.Output);
        }

        Assert.That(Directory.Exists(control), Is.False, "every container ever started would leave an empty directory in /run/inspatialfs");

        string chosen = Path.Combine(_work, "control");
        using (DaemonProcess daemon = DaemonProcess.Start(mnt, ["--memory", "--name", _name, "--control", chosen]))
        {
            Assert.That(ControlServes(chosen), Is.True, daemon.Output);
            Assert.That(daemon.Stop(), Is.Zero, daemon.Output);
        }

        Assert.That(Directory.Exists(chosen) && !Mounts.IsFuse(chosen), Is.True, "a control directory outside /run/inspatialfs is the operator's: it stays, unmounted");
    }

    private static bool ControlServes(string control) =>
        Shell.Run($"for i in $(seq 100); do [ -e '{control}/status' ] && exit 0; sleep 0.1; done; exit 1").ExitCode == 0;
}
