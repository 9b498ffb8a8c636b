using System.Text;
using InSpatialFs.Security;
using InSpatialFs.Security.Incidents;
using InSpatialFs.Security.Outputs;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.Daemon.Tests.Outputs;

/// <summary>
/// The file output writes incidents (command lines included) as root: it opens its file as the daemon's own files are
/// opened, so a directory another user controls, a symlink on the way or a planted fifo gets nothing.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class FileAlertChannelTests
{
    private string _work = "";

    [SetUp]
    public void Work()
    {
        if (Environment.UserName != "root") Assert.Ignore("needs root (chown to another user)");
        _work = Path.Combine("/var/tmp", "isfs-fileout-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_work);
    }

    [TearDown]
    public void Remove()
    {
        if (_work.Length > 0) Shell.Run($"rm -rf '{_work}'");
    }

    private static Alert Sample(string id) => new(
        Encoding.UTF8.GetBytes("{\"incident\":\"" + id + "\"}"), "r", "Warning", "x " + id, "syscall", ["t"],
        [new("fd.name", "/x")], 0, "h", new Incident { Id = id, Time = DateTimeOffset.UtcNow, Source = "r", Severity = Severity.Medium });

    private static AlertChannelStatus Deliver(string path)
    {
        using var channel = new FileAlertChannel(path, retry: new RetryPolicy(TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(20), TimeSpan.FromMilliseconds(200)));
        Assert.That(channel.TryEnqueue(Sample("inc-1")), Is.True);
        Assert.That(channel.WaitIdle(TimeSpan.FromSeconds(10)), Is.True);
        return channel.Status();
    }

    [Test]
    public void Alerts_go_to_a_file_in_a_root_directory_and_nowhere_another_user_could_steer_them()
    {
        string ours = Path.Combine(_work, "ours", "alerts.jsonl");
        Assert.That(Deliver(ours).Delivered, Is.EqualTo(1), "positive control: a root directory (created 0700)");
        Assert.That(File.ReadAllText(ours), Does.Contain("inc-1"));
        Assert.That(Shell.Check($"stat -c %a '{ours}'").Trim(), Is.EqualTo("600"));

        // A directory user 1000 owns (they could read the file, or move it and put a link in its place).
        Shell.Check($"mkdir -m 0777 '{_work}/theirs' && chown 1000:1000 '{_work}/theirs'");
        AlertChannelStatus theirs = Deliver(Path.Combine(_work, "theirs", "alerts.jsonl"));
        Assert.That((theirs.Delivered, theirs.Failed), Is.EqualTo((0L, 1L)), theirs.ToString());
        Assert.That(theirs.LastError, Does.Contain("theirs"), theirs.ToString());
        Assert.That(File.Exists(Path.Combine(_work, "theirs", "alerts.jsonl")), Is.False);

        // A symlink on the way (to a directory root owns): not followed.
        Shell.Check($"mkdir '{_work}/target' && ln -s '{_work}/target' '{_work}/link'");
        AlertChannelStatus linked = Deliver(Path.Combine(_work, "link", "alerts.jsonl"));
        Assert.That(linked.Delivered, Is.Zero, linked.ToString());
        Assert.That(Directory.GetFileSystemEntries(Path.Combine(_work, "target")), Is.Empty);

        // A fifo planted at the path: refused at once, not waited on.
        Shell.Check($"mkdir -m 0700 '{_work}/fifo' && mkfifo '{_work}/fifo/alerts.jsonl'");
        AlertChannelStatus fifo = Deliver(Path.Combine(_work, "fifo", "alerts.jsonl"));
        Assert.That(fifo.Delivered, Is.Zero, fifo.ToString());
        Assert.That(fifo.LastError, Does.Contain("is a fifo or socket (refused)"), fifo.ToString());
    }
}
