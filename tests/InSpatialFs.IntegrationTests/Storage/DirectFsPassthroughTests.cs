using System.IO.MemoryMappedFiles;
using System.Text.Json;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.IntegrationTests.Storage;

/// <summary>
/// DirectFS is kernel passthrough (issue 3): a 64 MiB file written and read through a `--direct` mount moves no
/// byte through the daemon — the RELEASE events, whose evt.size is the bytes the daemon moved on that handle,
/// say 0 — while the same I/O on a proxied mount, or on a direct mount with `--no-passthrough`, moves them all.
/// </summary>
[TestFixture]
[NonParallelizable]
[Category("Mount")]
public sealed class DirectFsPassthroughTests
{
    private const int Size = 64 << 20;
    private static readonly byte[] Payload = MakePayload();

    private static byte[] MakePayload()
    {
        var data = new byte[Size];
        new Random(64).NextBytes(data);
        return data;
    }

    /// <summary>Writes the payload through the mount, reads it back through the mount and checks the host file.</summary>
    private static void WriteAndReadBack(ControlledMount m, string name)
    {
        string onMount = Path.Combine(m.MountPoint, name);
        File.WriteAllBytes(onMount, Payload);
        Assert.That(File.ReadAllBytes(onMount).AsSpan().SequenceEqual(Payload), Is.True, "read back through the mount");
        Assert.That(File.ReadAllBytes(Path.Combine(m.Source, name)).AsSpan().SequenceEqual(Payload), Is.True, "the host file holds the bytes");
    }

    /// <summary>The RELEASE events of /NAME once both handles (writer and reader) were released.</summary>
    private static List<JsonElement> Releases(ControlledMount m, string name)
    {
        static bool IsRelease(JsonElement e, string path) =>
            e.GetProperty("evt.op").GetString() == "release" && e.GetProperty("fs.path").GetString() == path;
        List<JsonElement> events = m.WaitForEvents(es => es.Count(e => IsRelease(e, "/" + name)) >= 2, TimeSpan.FromSeconds(20));
        List<JsonElement> releases = events.Where(e => IsRelease(e, "/" + name)).ToList();
        Assert.That(releases, Has.Count.GreaterThanOrEqualTo(2), "a release event per handle");
        return releases;
    }

    private static long BytesThroughDaemon(List<JsonElement> releases) => releases.Sum(e => e.GetProperty("evt.size").GetInt64());

    [Test]
    public void A_direct_file_is_read_and_written_by_the_kernel_without_the_daemon()
    {
        using ControlledMount m = ControlledMount.Start("/var/tmp", withSource: true, "--direct");
        Assert.That(m.Status(), Does.Contain("direct: kernel-passthrough"));
        Assert.That(m.Daemon.Output, Does.Contain("direct: kernel-passthrough"), "the start line names the mode in use");

        WriteAndReadBack(m, "big");

        List<JsonElement> releases = Releases(m, "big");
        Assert.That(releases.Select(e => e.GetProperty("evt.size").GetInt64()), Is.All.Zero,
            "no byte of the 64 MiB went through the daemon on any handle");
        List<JsonElement> all = m.Events();
        Assert.That(all.Where(e => e.GetProperty("fs.path").GetString() == "/big").Select(e => e.GetProperty("evt.op").GetString()),
            Does.Not.Contain("write"), "the daemon never saw a WRITE (the first one on a proxied handle is an event)");
        Assert.That(all.Where(e => e.GetProperty("fs.path").GetString() == "/big" && e.GetProperty("evt.op").GetString() is "open" or "create")
            .Select(e => e.GetProperty("evt.decision").GetString()), Is.All.EqualTo("allow_direct"), "the opens were still decided by the policy");
        m.AssertAlive();
        Assert.That(m.Stop(), Is.Zero);
    }

    [TestCase("--direct", "--no-passthrough", "--direct-fallback", "copy", TestName = "A_direct_mount_without_passthrough_falls_back_to_proxied_IO_that_still_works")]
    [TestCase("--direct", "--no-passthrough", "--direct-fallback", "splice", TestName = "A_direct_mount_without_passthrough_falls_back_to_spliced_reads_that_still_work")]
    [TestCase("--direct", "--no-passthrough", TestName = "A_direct_mount_without_passthrough_splices_by_default")]
    [TestCase(TestName = "A_proxied_host_mount_moves_every_byte_through_the_daemon")]
    public void Proxied_mounts_move_every_byte_through_the_daemon(params string[] arguments)
    {
        using ControlledMount m = ControlledMount.Start("/var/tmp", withSource: true, arguments);
        string status = m.Status();
        if (arguments.Contains("--direct"))
        {
            string mode = arguments.Contains("copy") ? "direct: proxied" : "direct: spliced";
            Assert.That(status, Does.Contain(mode));
            Assert.That(m.Daemon.Output, Does.Contain(mode), "the fallback is announced at start");
        }
        else
        {
            Assert.That(status, Does.Not.Contain("direct:"));
        }

        WriteAndReadBack(m, "big");

        List<JsonElement> releases = Releases(m, "big");
        Assert.That(BytesThroughDaemon(releases), Is.GreaterThanOrEqualTo(2L * Size), "the write and the read both went through the daemon");
        m.AssertAlive();
        Assert.That(m.Stop(), Is.Zero);
    }

    [Test]
    public void A_direct_file_can_be_memory_mapped_and_used_by_sqlite()
    {
        using ControlledMount m = ControlledMount.Start("/var/tmp", withSource: true, "--direct");
        string path = Path.Combine(m.MountPoint, "mapped");
        File.WriteAllBytes(path, Payload[..(8 << 20)]);

        // A shared mapping served from the backing file: read what was written, write through it, see it on the host.
        using (var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.ReadWrite))
        using (MemoryMappedViewAccessor view = map.CreateViewAccessor())
        {
            var head = new byte[4096];
            view.ReadArray(1 << 20, head, 0, head.Length);
            Assert.That(head, Is.EqualTo(Payload[(1 << 20)..((1 << 20) + 4096)]));
            view.Write(0, 0x5A5A5A5A5A5A5A5AL);
            view.Flush();
        }

        byte[] host = File.ReadAllBytes(Path.Combine(m.Source, "mapped"));
        Assert.That(host[..8], Is.All.EqualTo((byte)0x5A), "the mapped write reached the host file");
        Assert.That(host[8..(8 << 20)], Is.EqualTo(Payload[8..(8 << 20)]));

        if (Shell.Has("sqlite3"))
        {
            string db = Path.Combine(m.MountPoint, "app.db");
            string output = Shell.Check($"sqlite3 '{db}' 'PRAGMA journal_mode=WAL; CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT); " +
                                        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<5000) INSERT INTO t SELECT x, hex(randomblob(32)) FROM c; " +
                                        "SELECT count(*), sum(k) FROM t;'");
            Assert.That(output, Does.Contain("5000|12502500"));
            Assert.That(Shell.Check($"sqlite3 '{db}' 'PRAGMA integrity_check;'").Trim(), Is.EqualTo("ok"));
        }

        m.AssertAlive();
        Assert.That(m.Stop(), Is.Zero);
    }
    /// <summary>
    /// An exec open is mediated (not passthrough) and lasts as long as the program runs; the kernel fails with EIO any
    /// open whose io mode differs from the inode's, so reading a running binary, or running one that is open for
    /// reading, must still work — the proxy keeps one io mode per inode.
    /// </summary>
    [Test]
    public void A_running_direct_binary_can_be_read_and_a_binary_open_for_reading_can_run()
    {
        string? busybox = new[] { "/bin/busybox", "/usr/bin/busybox" }.FirstOrDefault(File.Exists);
        if (busybox is null)
        {
            Assert.Ignore("busybox (busybox-static) is not installed");
        }

        using ControlledMount m = ControlledMount.Start("/var/tmp", withSource: true, "--direct");
        File.Copy(busybox, Path.Combine(m.Source, "busybox"));
        Shell.Check($"chmod 0755 '{m.Source}/busybox'");
        string binary = Path.Combine(m.MountPoint, "busybox");
        string expected = Shell.Check($"md5sum < '{busybox}'");

        // Running (exec open held, mediated), then read by another process.
        string whileRunning = Shell.Check($"'{binary}' sleep 3 & sleep 0.5; md5sum < '{binary}'; wait");
        Assert.That(whileRunning, Is.EqualTo(expected), "a running binary reads back whole");

        // Open for reading (passthrough), then executed.
        string whileOpen = Shell.Check($"exec 3< '{binary}'; '{binary}' echo ran; md5sum <&3; exec 3<&-");
        Assert.That(whileOpen, Is.EqualTo("ran\n" + expected));
        m.AssertAlive();
        Assert.That(m.Stop(), Is.Zero);
    }
}
