using System.Text;
using InSpatialFs.Interop.Durable;
using InSpatialFs.TestKit.Processes;

namespace InSpatialFs.Storage.Tests.Durable;

/// <summary>
/// The state log a restarted server adopts a live connection from: whatever a kill leaves of the file, replay gives
/// exactly a prefix of what was appended — a torn or damaged record is detected and ignored, never misread.
/// </summary>
[TestFixture(false)]
[TestFixture(true)]
public sealed class StateLogTests(bool mapped)
{
    private string _dir = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(Path.GetTempPath(), "isfs-statelog-" + Guid.NewGuid().ToString("N"));
    }

    [TearDown]
    public void TearDown()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    private static readonly (ushort Type, byte[] Payload)[] Sample = BuildSample();

    private static (ushort, byte[])[] BuildSample()
    {
        var rng = new Random(20261203);
        int[] sizes = [0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 64, 100, 255, 256, 1000, 4, 0, 2, 33, 500];
        return sizes.Select((size, i) =>
        {
            byte[] payload = new byte[size];
            rng.NextBytes(payload);
            return ((ushort)(i % 5 + 1), payload);
        }).ToArray();
    }

    private List<(ushort Type, byte[] Payload)> OpenAndReplay(out long discarded, Action<StateLog>? then = null)
    {
        var seen = new List<(ushort, byte[])>();
        using StateLog log = StateLog.Open(_dir, "state.log", (type, payload) => seen.Add((type, payload.ToArray())), mapped);
        discarded = log.DiscardedTailBytes;
        then?.Invoke(log);
        return seen;
    }

    private byte[] WriteSampleLog()
    {
        OpenAndReplay(out _, log =>
        {
            foreach ((ushort type, byte[] payload) in Sample)
            {
                log.Append(type, payload);
            }
        });
        return Records(File.ReadAllBytes(Path.Combine(_dir, "state.log")));
    }

    /// <summary>The records of a log file: a mapped log's file carries zero padding after them (checked to be zeros).</summary>
    private byte[] Records(byte[] file)
    {
        if (!mapped)
        {
            return file;
        }

        long end = RecordEnds()[^1];
        Assert.That(file.AsSpan((int)end).IndexOfAnyExcept((byte)0), Is.EqualTo(-1), "only zeros after the records");
        return file[..(int)end];
    }

    /// <summary>How many records a successor would read from the file as it is now (what a kill would leave).</summary>
    private int Persisted()
    {
        int count = 0;
        StateLogFormat.Replay(File.ReadAllBytes(Path.Combine(_dir, "state.log")), (_, _) => count++, out _);
        return count;
    }

    /// <summary>The end offset of each sample record in the file (the header is 16 bytes).</summary>
    private static long[] RecordEnds()
    {
        long end = StateLogFormat.HeaderSize;
        return Sample.Select(r => end += StateLogFormat.RecordSize(r.Payload.Length)).ToArray();
    }

    private static void AssertPrefix(IReadOnlyList<(ushort Type, byte[] Payload)> replayed, int expectedCount, string context)
    {
        Assert.That(replayed, Has.Count.EqualTo(expectedCount), context);
        for (int i = 0; i < replayed.Count; i++)
        {
            Assert.That(replayed[i].Type, Is.EqualTo(Sample[i].Type), $"{context}: type of record {i}");
            Assert.That(replayed[i].Payload, Is.EqualTo(Sample[i].Payload), $"{context}: payload of record {i}");
        }
    }

    [Test]
    public void Records_appended_are_replayed_in_order_after_reopen()
    {
        byte[] file = WriteSampleLog();
        Assert.That(file, Has.Length.EqualTo(RecordEnds()[^1]));

        var replayed = OpenAndReplay(out long discarded);

        AssertPrefix(replayed, Sample.Length, "whole log");
        Assert.That(discarded, Is.Zero);
    }

    [Test]
    public void Truncation_at_every_byte_offset_replays_exactly_the_wholeRecords_before_it_and_the_log_continues()
    {
        byte[] whole = WriteSampleLog();
        long[] ends = RecordEnds();
        string path = Path.Combine(_dir, "state.log");
        byte[] next = Encoding.UTF8.GetBytes("appended after the cut");

        for (int cut = 0; cut <= whole.Length; cut++)
        {
            File.WriteAllBytes(path, whole[..cut]);
            int wholeRecords = ends.Count(e => e <= cut);
            long intact = cut < StateLogFormat.HeaderSize ? StateLogFormat.HeaderSize : wholeRecords == 0 ? StateLogFormat.HeaderSize : ends[wholeRecords - 1];

            var replayed = OpenAndReplay(out long discarded, log => log.Append(9, next));

            AssertPrefix(replayed, wholeRecords, $"cut at {cut}");
            // A mapped log counts a torn tail up to its last non-zero byte (zeros after records are its padding).
            long torn = cut < StateLogFormat.HeaderSize ? 0 : mapped ? whole.AsSpan((int)intact, (int)(cut - intact)).TrimEnd((byte)0).Length : cut - intact;
            Assert.That(discarded, Is.EqualTo(torn), $"cut at {cut}: discarded tail");

            // What was appended after the cut follows the intact prefix (the torn tail was cut off, not written after).
            var again = OpenAndReplay(out long discardedAgain);
            Assert.That(again, Has.Count.EqualTo(wholeRecords + 1), $"cut at {cut}: reopened after an append");
            Assert.That(again[^1].Type, Is.EqualTo((ushort)9));
            Assert.That(again[^1].Payload, Is.EqualTo(next));
            Assert.That(discardedAgain, Is.Zero);
        }
    }

    [Test]
    public void A_changed_byte_anywhere_in_a_record_ends_the_replay_before_that_record_never_misreads_it()
    {
        byte[] whole = WriteSampleLog();
        long[] ends = RecordEnds();
        int misreads = 0;
        for (int at = StateLogFormat.HeaderSize; at < whole.Length; at++)
        {
            foreach (byte flip in new byte[] { 0x01, 0x80, 0xFF })
            {
                byte[] damaged = (byte[])whole.Clone();
                damaged[at] ^= flip;
                var replayed = new List<(ushort, byte[])>();
                StateLogFormat.Replay(damaged, (type, payload) => replayed.Add((type, payload.ToArray())), out _);
                int damagedRecord = ends.Count(e => e <= at);
                AssertPrefix(replayed, damagedRecord, $"byte {at} ^ 0x{flip:X2}");
                misreads += replayed.Count > damagedRecord ? 1 : 0;
            }
        }

        Assert.That(misreads, Is.Zero);
    }

    [Test]
    public void A_damaged_header_is_refused_and_the_file_left_as_it_was()
    {
        WriteSampleLog();
        string path = Path.Combine(_dir, "state.log");
        byte[] before = File.ReadAllBytes(path);
        byte[] damaged = (byte[])before.Clone();
        damaged[3] ^= 0x20;
        File.WriteAllBytes(path, damaged);

        Assert.That(() => OpenAndReplay(out _), Throws.TypeOf<InvalidDataException>().With.Message.Contains("not an InSpatialFs state log"));
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(damaged), "refused, not repaired or truncated");

        // Control: the undamaged file opens.
        File.WriteAllBytes(path, before);
        AssertPrefix(OpenAndReplay(out _), Sample.Length, "undamaged");
    }

    [Test]
    public void A_damaged_log_set_aside_keeps_its_bytes_and_a_fresh_log_opens_in_its_place()
    {
        WriteSampleLog();
        string path = Path.Combine(_dir, "state.log");
        byte[] damaged = File.ReadAllBytes(path);
        damaged[0] ^= 0x20;
        File.WriteAllBytes(path, damaged);

        string first = StateLog.SetAside(_dir, "state.log");
        File.WriteAllBytes(path, damaged); // the same damage again within the second: a second name, nothing overwritten
        string second = StateLog.SetAside(_dir, "state.log");

        Assert.That(first, Does.StartWith("state.log.damaged-"));
        Assert.That(second, Is.Not.EqualTo(first));
        Assert.That(File.ReadAllBytes(Path.Combine(_dir, first)), Is.EqualTo(damaged), "kept as it was");
        Assert.That(File.ReadAllBytes(Path.Combine(_dir, second)), Is.EqualTo(damaged));
        Assert.That(File.Exists(path), Is.False);
        Assert.That(OpenAndReplay(out _), Is.Empty, "a fresh log in its place");
        Assert.That(() => StateLog.SetAside(_dir, "absent.log"), Throws.TypeOf<IOException>().With.Message.Contains("ENOENT"));
    }

    [Test]
    public void Rewrite_replaces_history_with_live_state_and_appends_continue_after_it()
    {
        long before = WriteSampleLog().Length, after = 0;
        OpenAndReplay(out _, log =>
        {
            log.Rewrite(Sample.Take(2));
            Assert.That(log.RecordCount, Is.EqualTo(2));
            log.Append(Sample[2].Type, Sample[2].Payload);
            after = log.Length;
        });

        AssertPrefix(OpenAndReplay(out _), 3, "after rewrite");
        Assert.That(after, Is.LessThan(before));
        Assert.That(File.Exists(Path.Combine(_dir, "state.log.new")), Is.False, "the new file was renamed over the old one");
    }

    [Test]
    public void Staged_records_reach_the_file_only_with_the_next_write_in_order_and_a_rewrite_drops_them()
    {
        OpenAndReplay(out _, log =>
        {
            log.Stage(Sample[0].Type, Sample[0].Payload);
            log.Stage(Sample[1].Type, Sample[1].Payload);
            Assert.That((Persisted(), log.StagedCount), Is.EqualTo((0, 2)), "a kill now loses them");
            log.Append(Sample[2].Type, Sample[2].Payload);
            Assert.That((log.StagedCount, Persisted()), Is.EqualTo((0, 3)), "one write carried all three");
            log.Stage(Sample[3].Type, Sample[3].Payload);
            log.WriteStaged();
            log.Stage(Sample[9].Type, Sample[9].Payload);
            log.Rewrite(Sample.Take(4));
            Assert.That(log.StagedCount, Is.Zero, "the rewrite's live state replaces what was staged");
            log.Append(Sample[4].Type, Sample[4].Payload);
        });

        AssertPrefix(OpenAndReplay(out _), 5, "staged, appended, rewritten");
    }

    [Test]
    public void A_rewrite_killed_before_its_rename_leaves_the_old_log_in_force()
    {
        WriteSampleLog();
        string leftover = Path.Combine(_dir, "state.log.new");
        File.WriteAllBytes(leftover, [1, 2, 3]); // what a kill mid-rewrite leaves (here even with a careless mode)
        File.SetUnixFileMode(leftover, (UnixFileMode)0x1B6); // 0666

        AssertPrefix(OpenAndReplay(out _), Sample.Length, "old log");
        OpenAndReplay(out _, log => log.Rewrite(Sample.Take(1))); // the next rewrite overwrites the leftover
        AssertPrefix(OpenAndReplay(out _), 1, "after the next rewrite");
    }

    [Test]
    public void Concurrent_appends_are_wholeRecords_with_consecutive_sequences()
    {
        const int Threads = 4, PerThread = 500;
        OpenAndReplay(out _, log =>
        {
            Parallel.For(0, Threads, t =>
            {
                for (int i = 0; i < PerThread; i++)
                {
                    log.Append((ushort)(t + 1), BitConverter.GetBytes(i));
                }
            });
        });

        var replayed = OpenAndReplay(out long discarded);
        Assert.That(replayed, Has.Count.EqualTo(Threads * PerThread));
        Assert.That(discarded, Is.Zero);
        for (ushort t = 1; t <= Threads; t++)
        {
            int[] values = replayed.Where(r => r.Type == t).Select(r => BitConverter.ToInt32(r.Payload)).ToArray();
            Assert.That(values, Is.EqualTo(Enumerable.Range(0, PerThread)), $"thread {t}'s records in its own order");
        }
    }

    [Test]
    public void What_an_append_returned_for_is_in_the_file_while_the_log_is_still_open_as_a_kill_leaves_it()
    {
        OpenAndReplay(out _, log =>
        {
            for (int i = 0; i < Sample.Length; i++)
            {
                log.Append(Sample[i].Type, Sample[i].Payload);
                Assert.That(Persisted(), Is.EqualTo(i + 1), $"record {i} readable by a successor as soon as Append returned");
            }
        });
    }

    [Test]
    public void A_log_grows_past_its_first_mapping_and_replays_whole()
    {
        byte[] payload = new byte[3000];
        const int Count = 1000; // about 3 MiB: two growths of a mapped log
        OpenAndReplay(out _, log =>
        {
            for (int i = 0; i < Count; i++)
            {
                BitConverter.TryWriteBytes(payload, i);
                log.Append(7, payload);
            }
        });

        var replayed = OpenAndReplay(out long discarded);
        Assert.That(replayed.Select(r => BitConverter.ToInt32(r.Payload)), Is.EqualTo(Enumerable.Range(0, Count)));
        Assert.That(discarded, Is.Zero, "a mapped log's padding is not a torn tail");
    }

    [Test]
    public void A_mapped_log_appends_without_a_write_system_call()
    {
        // /proc/thread-self/io counts the bytes this thread passed to write(2) and its kin (wchar).
        static long WrittenByThisThread() => long.Parse(File.ReadAllLines("/proc/thread-self/io").First(l => l.StartsWith("wchar:", StringComparison.Ordinal))[6..]);
        byte[] payload = new byte[100];
        long written = 0;
        OpenAndReplay(out _, log =>
        {
            log.Append(1, payload); // the first append maps nothing new: the log was mapped when opened
            long before = WrittenByThisThread();
            for (int i = 0; i < 1000; i++)
            {
                log.Append(1, payload);
            }

            written = WrittenByThisThread() - before;
        });

        // Positive control in the unmapped fixture: the same appends write 120 KB.
        Assert.That(written, mapped ? Is.Zero : Is.GreaterThanOrEqualTo(1000L * StateLogFormat.RecordSize(payload.Length)));
    }

    [Test]
    public void A_log_on_a_filesystem_without_fallocate_goes_on_with_write_and_loses_nothing()
    {
        // ramfs allocates nothing ahead (fallocate: EOPNOTSUPP), so a mapped log cannot reserve its blocks there.
        // The state directory's ancestors must not be writable by others, whatever the umask (CI runs with 0).
        const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        Directory.CreateDirectory(_dir, Private);
        string fs = Path.Combine(_dir, "ramfs");
        Directory.CreateDirectory(fs, Private);
        Shell.Check($"mount -t ramfs -o mode=0700 none '{fs}'"); // the tests run as root
        try
        {
            string state = Path.Combine(fs, "state");
            var seen = new List<(ushort, byte[])>();
            using (StateLog log = StateLog.Open(state, "state.log", (_, _) => { }, mapped, reserveAhead: mapped ? 0 : 64 * 1024))
            {
                Assert.That(log.IsMapped, Is.False, "positive control: this filesystem refuses the reservation");
                foreach ((ushort type, byte[] payload) in Sample)
                {
                    log.Append(type, payload);
                }

                Assert.That(log.ReserveRunsOut, Is.False, "no fallocate is not a full disk");
            }

            using (StateLog.Open(state, "state.log", (type, payload) => seen.Add((type, payload.ToArray())), mapped))
            {
            }

            AssertPrefix(seen, Sample.Length, "replayed from ramfs");
        }
        finally
        {
            Shell.Run($"umount -l '{fs}'");
        }
    }

    [Test]
    public void The_log_file_is_private_to_its_owner()
    {
        WriteSampleLog();
        UnixFileMode mode = File.GetUnixFileMode(Path.Combine(_dir, "state.log"));
        Assert.That(mode, Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
        Assert.That(File.GetUnixFileMode(_dir), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute));
    }
}

/// <summary>
/// A write(2) log's reserve (the memory journal's): the disk filling up shows while records still fit, so its owner can
/// stop before a record is lost rather than after.
/// </summary>
[TestFixture]
public sealed class StateLogReserveTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Path.Combine(Path.GetTempPath(), "isfs-statelog-" + Guid.NewGuid().ToString("N"));

    [TearDown]
    public void TearDown()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    [Test]
    [NonParallelizable]
    [Category("Mount")]
    public void A_reserve_says_the_disk_is_full_while_appends_still_fit_and_clears_once_there_is_room()
    {
        using SmallDisk disk = SmallDisk.Mount(_dir, "1m");
        byte[] payload = new byte[300];
        using StateLog log = StateLog.Open(_dir, "state.log", (_, _) => { }, reserveAhead: 64 * 1024);
        Assert.That(log.ReserveRunsOut, Is.False, "reserved at open");
        disk.Fill();

        int appended = 0;
        while (!log.ReserveRunsOut && appended < 10_000)
        {
            log.Append(1, payload); // throws, failing the test, if a record met the full disk before the reserve said so
            appended++;
        }

        Assert.That(log.ReserveRunsOut, Is.True);
        Assert.That(appended * StateLogFormat.RecordSize(payload.Length), Is.GreaterThan(32 * 1024), "the reserve took the records after the disk filled");
        for (int i = 0; i < 40; i++)
        {
            log.Append(1, payload); // what is left of the reserve (a quarter of it or more) still takes records
        }

        disk.MakeRoom();
        log.Append(1, payload);
        Assert.That(log.ReserveRunsOut, Is.False, "topped up again once there is room");
    }
}
