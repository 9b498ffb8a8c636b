using System.Text;
using InSpatialFs.Daemon.Control;

namespace InSpatialFs.Daemon.Tests.Control;

public sealed class EventLogTests
{
    /// <summary>One reader the way the control file serves it: kernel offsets from 0 through one open file's cursor.</summary>
    private sealed class Reader(EventLog log)
    {
        private readonly EventCursor _cursor = new(log);
        private long _offset;

        public string Read(int chunk, int maxBytes = int.MaxValue)
        {
            var text = new StringBuilder();
            var buffer = new byte[chunk];
            while (text.Length < maxBytes)
            {
                int n = _cursor.Read(_offset, buffer.AsSpan(0, Math.Min(chunk, maxBytes - text.Length)), TimeSpan.Zero);
                if (n == 0)
                {
                    break;
                }

                text.Append(Encoding.ASCII.GetString(buffer, 0, n));
                _offset += n;
            }

            return text.ToString();
        }
    }

    private static string ReadAll(EventLog log, int chunk) => new Reader(log).Read(chunk);

    private static void AppendLines(EventLog log, int from, int count)
    {
        for (int i = from; i < from + count; i++)
        {
            log.Append(Encoding.ASCII.GetBytes($"line-{i:D2}\n"));
        }
    }

    private static string Lines(int from, int count) => string.Concat(Enumerable.Range(from, count).Select(i => $"line-{i:D2}\n"));

    private static EventLog LogOfLines(int capacity, int lines)
    {
        var log = new EventLog(capacity);
        for (int i = 0; i < lines; i++)
        {
            log.Append(Encoding.ASCII.GetBytes($"line-{i:D2}\n"));
        }

        return log;
    }

    [Test]
    public void A_reader_within_the_window_reads_every_line_once()
    {
        Assert.That(ReadAll(LogOfLines(4096, 20), chunk: 16), Is.EqualTo(string.Concat(Enumerable.Range(0, 20).Select(i => $"line-{i:D2}\n"))));
    }

    [Test]
    public void A_reader_behind_the_window_continues_at_its_first_whole_line_and_never_rereads()
    {
        // 20 lines of 8 bytes = 160 bytes in a 60-byte window: it starts at byte 100, inside line 12.
        string read = ReadAll(LogOfLines(60, 20), chunk: 16);
        Assert.That(read, Is.EqualTo(string.Concat(Enumerable.Range(13, 7).Select(i => $"line-{i:D2}\n"))));
    }

    [Test]
    public void A_reader_overtaken_mid_line_still_gets_the_rest_of_that_line_and_then_whole_lines()
    {
        var log = new EventLog(60);
        AppendLines(log, 0, 5);
        var reader = new Reader(log);
        Assert.That(reader.Read(chunk: 16, maxBytes: 12), Is.EqualTo("line-00\nline"));

        AppendLines(log, 5, 15); // 160 bytes written: the window now starts inside line 12, line 01 is overwritten
        string rest = reader.Read(chunk: 16);
        Assert.That(rest, Is.EqualTo("-01\n" + Lines(13, 7)), "the cut line is completed from the reader's copy; no line is torn");
        Assert.That(reader.Read(chunk: 16), Is.Empty);
        AppendLines(log, 20, 1);
        Assert.That(reader.Read(chunk: 16), Is.EqualTo(Lines(20, 1)), "and it goes on from there");
    }

    [Test]
    public void Lines_longer_than_the_reader_s_buffer_arrive_whole_even_when_the_window_overwrites_them_between_reads()
    {
        // The JSON-lines reader's case: a 1 KiB buffer, 300-byte events, and the daemon appending while it reads.
        var log = new EventLog(4096);
        string Line(int i) => $"{{\"seq\":{i},\"pad\":\"{new string((char)('a' + (i % 26)), 280)}\"}}\n";
        for (int i = 0; i < 10; i++)
        {
            log.Append(Encoding.ASCII.GetBytes(Line(i)));
        }

        var reader = new Reader(log);
        var text = new StringBuilder();
        for (int i = 10; i < 200; i++)
        {
            text.Append(reader.Read(chunk: 100, maxBytes: 100)); // a third of a line per read
            log.Append(Encoding.ASCII.GetBytes(Line(i)));
        }

        text.Append(reader.Read(chunk: 100));
        string[] lines = text.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Is.Not.Empty);
        Assert.That(lines, Has.All.Matches<string>(l => System.Text.RegularExpressions.Regex.IsMatch(l, "^\\{\"seq\":[0-9]+,\"pad\":\"[a-z]{280}\"\\}$")), "every line whole");
        Assert.That(lines[^1], Does.StartWith("{\"seq\":199,"), "the reader reaches the end of the log");
    }

    [Test]
    public void A_positioned_read_elsewhere_drops_the_carried_rest_of_a_line()
    {
        var log = LogOfLines(4096, 3);
        var cursor = new EventCursor(log);
        var buffer = new byte[4];
        Assert.That(cursor.Read(0, buffer, TimeSpan.Zero), Is.EqualTo(4));
        Assert.That(Encoding.ASCII.GetString(buffer), Is.EqualTo("line"));
        var rest = new byte[64];
        int n = cursor.Read(16, rest, TimeSpan.Zero);
        Assert.That(Encoding.ASCII.GetString(rest, 0, n), Is.EqualTo(Lines(2, 1)), "offset 16 is line 02 in the log, not the carried rest of line 00");
    }
}
