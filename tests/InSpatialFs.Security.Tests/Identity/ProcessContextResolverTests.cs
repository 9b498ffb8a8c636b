using System.Diagnostics;
using System.Globalization;
using InSpatialFs.Security.Identity;

namespace InSpatialFs.Security.Tests.Identity;

/// <summary>The Falco process fields as read from /proc for a real process, against what the test started it with.</summary>
public sealed class ProcessContextResolverTests
{
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
}
