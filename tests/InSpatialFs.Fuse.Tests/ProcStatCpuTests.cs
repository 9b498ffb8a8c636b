using System.Text;
using InSpatialFs.Fuse.Transport;

namespace InSpatialFs.Fuse.Tests;

/// <summary>The per-CPU lines of /proc/stat that reader placement judges busy CPUs by.</summary>
[TestFixture]
public sealed class ProcStatCpuTests
{
    [Test]
    public void Each_cpu_line_gives_idle_plus_iowait_and_the_ticks_from_user_to_steal()
    {
        byte[] text = Encoding.ASCII.GetBytes(
            "cpu  900 10 300 5000 20 0 7 0 0 0\n" +
            "cpu0 400 5 100 2500 10 0 3 2 50 0\n" +
            "cpu1 500 5 200 2500 10 0 4 0 0 0\n" +
            "intr 12345 0 0\n" +
            "cpu12 1 2 3 4 5 6 7 8\n");
        Assert.That(ProcStatCpu.Parse(text), Is.EqualTo(new[]
        {
            new ProcStatCpu(0, 2510, 400 + 5 + 100 + 2500 + 10 + 0 + 3 + 2),
            new ProcStatCpu(1, 2510, 500 + 5 + 200 + 2500 + 10 + 0 + 4 + 0),
            new ProcStatCpu(12, 4 + 5, 1 + 2 + 3 + 4 + 5 + 6 + 7 + 8),
        }));
    }

    [Test]
    public void A_line_cut_short_or_not_a_cpu_is_left_out()
    {
        byte[] text = Encoding.ASCII.GetBytes("cpu0 1 2 3 4 5 6 7\ncpux 1 2 3 4 5 6 7 8 9\ncpu1 1 2 3 4 5 6 7 8 9");
        Assert.That(ProcStatCpu.Parse(text), Is.EqualTo(new[] { new ProcStatCpu(1, 4 + 5, 1 + 2 + 3 + 4 + 5 + 6 + 7 + 8) }));
    }

    [Test]
    public void This_machine_s_proc_stat_has_a_line_for_every_cpu_in_use()
    {
        List<ProcStatCpu> cpus = ProcStatCpu.Parse(File.ReadAllBytes("/proc/stat"));
        Assert.That(cpus.Select(c => c.Cpu), Is.Unique);
        Assert.That(cpus, Has.Count.GreaterThanOrEqualTo(Environment.ProcessorCount));
        Assert.That(cpus, Has.All.Matches<ProcStatCpu>(c => c.Total > 0 && c.Idle <= c.Total));
    }
}
