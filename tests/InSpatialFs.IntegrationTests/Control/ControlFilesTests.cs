using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Control;

/// <summary>
/// The control directory (issue 6, "Control files") through a real mount, read and written the way an operator
/// does: cat, tail -f, echo into `control`, and as an unprivileged user.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed partial class ControlFilesTests
{
    private string _work = "";
    private string _mount = "";
    private string _control = "";
    private DaemonProcess? _daemon;

    [OneTimeSetUp]
    public void MountWithControlDirectory()
    {
        DaemonProcess.RequireMountable();
        _work = Path.Combine("/var/tmp", "inspatialfs-ctl-" + Guid.NewGuid().ToString("N")[..8]);
        string source = Path.Combine(_work, "source");
        _mount = Path.Combine(_work, "mnt");
        _control = Path.Combine(_work, "control");
        Directory.CreateDirectory(Path.Combine(source, "secret"));
        File.WriteAllText(Path.Combine(source, "secret", "key"), "k\n");
        _daemon = DaemonProcess.Start(_mount, ["--source", source, "--forbid", "/secret/**", "--control", _control, "--state-dir", Path.Combine(_work, "state"), "--name", "ctltest"]);
        for (int i = 0; i < 200 && !File.Exists(Path.Combine(_control, "status")); i++)
        {
            Thread.Sleep(25);
        }
    }

    [OneTimeTearDown]
    public void Cleanup()
    {
        _daemon?.Dispose();
        if (_work.Length > 0)
        {
            Mounts.ForceUnmount(_control);
            Shell.Run($"rm -rf '{_work}'");
        }
    }

    private string Cat(string file) => Shell.Check($"cat '{_control}/{file}'");

    private string Status(string key) =>
        Cat("status").Split('\n').First(l => l.StartsWith(key + ": ", StringComparison.Ordinal))[(key.Length + 2)..];

    [TestCase("status")]
    [TestCase("policy")]
    [TestCase("rules")]
    [TestCase("mounts")]
    [TestCase("metrics")]
    public void Snapshot_file_is_readable_with_cat_and_not_empty(string file)
    {
        Assert.That(Cat(file), Is.Not.Empty);
    }

    [Test]
    public void Stats_lists_operations_after_traffic()
    {
        Shell.Check($"ls '{_mount}' >/dev/null && cat /dev/null > '{_mount}/stats-probe'");
        Assert.That(Cat("stats"), Does.StartWith("# op").And.Contain("lookup").Or.Contain("create"));
    }

    [Test]
    public void Directory_is_mode_0700_owned_by_root()
    {
        Assert.That(Shell.Check($"stat -c '%a %u %g' '{_control}'").Trim(), Is.EqualTo("700 0 0"));
    }

    [Test]
    public void Non_root_can_neither_list_nor_read_the_control_directory()
    {
        ShellResult list = Shell.Run($"setpriv --reuid=1000 --regid=1000 --clear-groups ls '{_control}'");
        ShellResult read = Shell.Run($"setpriv --reuid=1000 --regid=1000 --clear-groups cat '{_control}/status'");
        Assert.That(list.ExitCode, Is.Not.Zero, list.ToString());
        Assert.That(read.ExitCode, Is.Not.Zero, read.ToString());
        Assert.That(read.StdOut, Does.Not.Contain("state:"));
        ShellResult control = Shell.Run("setpriv --reuid=1000 --regid=1000 --clear-groups id -u");
        Assert.That(control.StdOut.Trim(), Is.EqualTo("1000"), "the control: setpriv runs the same user: " + control);
        Assert.That(File.ReadAllText(Path.Combine(_control, "status")), Does.Contain("state:"), "the control: root reads the status");
    }

    [GeneratedRegex(@"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*=""[^""]*""(,[a-zA-Z_][a-zA-Z0-9_]*=""[^""]*"")*\})? -?([0-9.e+-]+|\+Inf|NaN)$")]
    private static partial Regex SampleLine();

    [Test]
    public void Metrics_is_valid_prometheus_text_with_help_type_and_a_histogram()
    {
        Shell.Check($"ls -la '{_mount}' > /dev/null");
        string text = Cat("metrics");
        var typed = new Dictionary<string, string>(StringComparer.Ordinal);
        var helped = new HashSet<string>(StringComparer.Ordinal);
        foreach (string line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.StartsWith("# HELP ", StringComparison.Ordinal))
            {
                helped.Add(line.Split(' ')[2]);
            }
            else if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                string[] parts = line.Split(' ');
                Assert.That(parts[3], Is.AnyOf("counter", "gauge", "histogram", "summary", "untyped"), line);
                Assert.That(typed.TryAdd(parts[2], parts[3]), Is.True, "TYPE repeated: " + line);
            }
            else
            {
                Assert.That(SampleLine().IsMatch(line), Is.True, "not a sample line: " + line);
                string metric = line.Split('{', ' ')[0];
                string family = typed.ContainsKey(metric) ? metric : Regex.Replace(metric, "_(bucket|sum|count)$", "");
                Assert.That(typed, Contains.Key(family), "sample before its TYPE: " + line);
                Assert.That(helped, Does.Contain(family), "no HELP for " + family);
            }
        }

        string histogram = typed.First(t => t.Value == "histogram").Key;
        string[] buckets = text.Split('\n').Where(l => l.StartsWith(histogram + "_bucket{", StringComparison.Ordinal)).ToArray();
        Assert.That(buckets.Any(b => b.Contains("le=\"+Inf\"", StringComparison.Ordinal)), Is.True, "histogram without a +Inf bucket");
        Assert.That(text, Does.Contain(histogram + "_sum{").And.Contain(histogram + "_count{"));
    }

    private static Process StartReader(string command, StringBuilder sink)
    {
        var info = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true, UseShellExecute = false };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add("exec " + command);
        var p = Process.Start(info)!;
        p.OutputDataReceived += (_, e) =>
        {
            lock (sink)
            {
                sink.Append(e.Data).Append('\n');
            }
        };
        p.BeginOutputReadLine();
        return p;
    }

    private static bool WaitFor(StringBuilder sink, string text, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            lock (sink)
            {
                if (sink.ToString().Contains(text, StringComparison.Ordinal))
                {
                    return true;
                }
            }

            Thread.Sleep(50);
        }

        return false;
    }

    private static void Stop(Process p)
    {
        if (!p.HasExited)
        {
            p.Kill();
        }

        Assert.That(p.WaitForExit(10_000), Is.True, "reader did not end when killed (blocked in the daemon?)");
    }

    [Test]
    public void Events_stream_the_same_new_events_to_two_concurrent_cat_readers()
    {
        StringBuilder first = new(), second = new();
        Process a = StartReader($"cat '{_control}/events'", first);
        Process b = StartReader($"cat '{_control}/events'", second);
        try
        {
            string marker = "two-readers-" + Guid.NewGuid().ToString("N")[..8];
            Thread.Sleep(300); // both are now blocked at the end of the log
            Shell.Check($"touch '{_mount}/{marker}'");
            Assert.That(WaitFor(first, marker, TimeSpan.FromSeconds(10)), Is.True, "first reader did not see the event");
            Assert.That(WaitFor(second, marker, TimeSpan.FromSeconds(10)), Is.True, "second reader did not see the event");
            Assert.That(a.HasExited || b.HasExited, Is.False, "a reader hit end of file instead of blocking");
        }
        finally
        {
            Stop(a);
            Stop(b);
        }
    }

    [Test]
    public void Tail_f_on_events_prints_new_lines()
    {
        StringBuilder lines = new();
        Process tail = StartReader($"tail -n 0 -f '{_control}/events'", lines);
        try
        {
            string marker = "tail-f-" + Guid.NewGuid().ToString("N")[..8];
            Thread.Sleep(500);
            Shell.Check($"mkdir '{_mount}/{marker}'");
            Assert.That(WaitFor(lines, marker, TimeSpan.FromSeconds(10)), Is.True, "tail -f printed nothing new: " + lines);
        }
        finally
        {
            Stop(tail);
        }
    }

    [Test]
    public void Suspend_then_resume_change_the_state()
    {
        // Suspend needs a container member: a process rooted in the mount.
        Shell.Check($"mkdir -p '{_work}/source/bin' && cp /bin/busybox '{_work}/source/bin/busybox'");
        Process member = Process.Start("chroot", [_mount, "/bin/busybox", "sleep", "30"])!;
        try
        {
            Thread.Sleep(300);
            Shell.Check($"echo suspend > '{_control}/control'");
            Assert.That(Status("state"), Is.EqualTo("suspended"));
            Shell.Check($"echo resume > '{_control}/control'");
            Assert.That(Status("state"), Is.EqualTo("running"));
        }
        finally
        {
            Shell.Run($"echo resume > '{_control}/control'");
            member.Kill();
            member.WaitForExit(10_000);
        }
    }

    [Test]
    public void Reload_is_accepted()
    {
        ShellResult r = Shell.Run($"echo reload > '{_control}/control'");
        Assert.That(r.ExitCode, Is.Zero, r.ToString());
        Assert.That(Cat("rules"), Does.Contain("reloads 1").Or.Contain("reloads 2").Or.Contain("reloads 3"));
    }

    [Test]
    public void Ack_and_resolve_change_an_incidents_status()
    {
        Shell.Run($"cat '{_mount}/secret/key'");
        string id = "";
        for (int i = 0; i < 100 && id.Length == 0; i++)
        {
            Match m = Regex.Match(Cat("incidents"), "\"id\":\"(inc-[0-9]+)\",[^\\n]*\"status\":\"open\"");
            id = m.Success ? m.Groups[1].Value : "";
            Thread.Sleep(50);
        }

        Assert.That(id, Is.Not.Empty, "the forbidden read produced no open incident");
        Shell.Check($"echo 'ack {id}' > '{_control}/control'");
        Assert.That(IncidentLine(id), Does.Contain("\"status\":\"acknowledged\""));
        Shell.Check($"echo 'resolve {id}' > '{_control}/control'");
        Assert.That(IncidentLine(id), Does.Contain("\"status\":\"resolved\""));
        ShellResult reopen = Shell.Run($"echo 'ack {id}' > '{_control}/control'");
        Assert.That(reopen.ExitCode, Is.Not.Zero, "a resolved incident is not acknowledged back: " + reopen);
        Assert.That(IncidentLine(id), Does.Contain("\"status\":\"resolved\""));
    }

    [Test]
    public void Replies_are_read_back_on_the_same_open_file_whatever_its_offset()
    {
        // A shell holding the file open read-write: the write moves the file offset past where the reply starts.
        string reply = Shell.Check($"exec 3<> '{_control}/control'; echo reload >&3; head -c 4096 <&3; exec 3>&-");
        Assert.That(reply, Does.StartWith("ok: "), reply);
        // Two commands, then two reads: each reply once, in order.
        string two = Shell.Check($"exec 3<> '{_control}/control'; printf 'reload\\nreload\\n' >&3; cat <&3; exec 3>&-");
        Assert.That(two.Split('\n', StringSplitOptions.RemoveEmptyEntries), Has.Length.EqualTo(2).And.All.StartWith("ok: "), two);
    }

    [Test]
    public void After_a_too_long_line_the_commands_that_follow_its_newline_run()
    {
        string before = Cat("rules");
        string script = "import os; fd = os.open('" + _control + "/control', os.O_RDWR)\n" +
            "try:\n    os.write(fd, b'x' * 5000)\nexcept OSError as e:\n    print('first', e.errno)\n" +
            "os.write(fd, b'tail of it\\nreload\\n'); print('second ok')\n" +
            "print(os.read(fd, 4096).decode())";
        ShellResult r = Shell.Run($"python3 -c \"{script}\"");
        Assert.That(r.StdOut, Does.Contain("first 22"), "the too-long line fails with EINVAL: " + r);
        Assert.That(r.StdOut, Does.Contain("second ok").And.Contain("ok: "), "the rest of it is dropped, and reload runs: " + r);
        Assert.That(r.StdOut, Does.Contain("refused: 1:1: a command line longer than 4096 bytes"), r.ToString());
        Assert.That(Cat("rules"), Is.Not.EqualTo(before), "the reload counter moved");
    }

    private string IncidentLine(string id) => Cat("incidents").Split('\n').Single(l => l.Contains($"\"id\":\"{id}\"", StringComparison.Ordinal));

    [TestCase("frobnicate")]
    [TestCase("ack no-such-incident")]
    [TestCase("isolation relaxed")]
    public void Bad_command_fails_the_write_with_EINVAL_leaves_state_and_is_logged(string command)
    {
        string before = Status("state");
        ShellResult r = Shell.Run($"echo '{command}' > '{_control}/control'");
        Assert.That(r.ExitCode, Is.Not.Zero, r.ToString());
        Assert.That(r.StdErr, Does.Contain("Invalid argument"));
        Assert.That(Status("state"), Is.EqualTo(before));
        var clock = Stopwatch.StartNew();
        while (!_daemon!.Output.Contains(command, StringComparison.Ordinal) && clock.Elapsed < TimeSpan.FromSeconds(5))
        {
            Thread.Sleep(50);
        }

        Assert.That(_daemon.Output, Does.Contain(command), "no log line for the refused command");
    }
}
