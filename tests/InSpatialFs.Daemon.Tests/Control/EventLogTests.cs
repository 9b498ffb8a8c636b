using System.Text;
using InSpatialFs.Daemon.Control;

namespace InSpatialFs.Daemon.Tests.Control;

public sealed class EventLogTests
{
    /// <summary>One reader the way the control file serves it: kernel offsets from 0, the skew and line state kept per open file.</summary>
    private sealed class Reader(EventLog log)
    {
        private long _offset, _skew;
        private bool _atLineStart = true;

        public string Read(int chunk, int maxBytes = int.MaxValue)
        {
            var text = new StringBuilder();
            var buffer = new byte[chunk];
            while (text.Length < maxBytes)
            {
                long position = _offset + _skew;
                int n = log.Read(ref position, buffer.AsSpan(0, Math.Min(chunk, maxBytes - text.Length)), TimeSpan.Zero, _atLineStart);
                _skew = position - _offset;
                if (n == 0)
                {
                    break;
                }

                _atLineStart = buffer[n - 1] == (byte)'\n';
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
    public void A_reader_overtaken_mid_line_gets_that_line_ended_and_then_whole_lines()
    {
        var log = new EventLog(60);
        AppendLines(log, 0, 5);
        var reader = new Reader(log);
        Assert.That(reader.Read(chunk: 16, maxBytes: 12), Is.EqualTo("line-00\nline"));

        AppendLines(log, 5, 15); // 160 bytes written: the window now starts inside line 12
        string rest = reader.Read(chunk: 16);
        Assert.That(rest, Is.EqualTo("\n" + Lines(13, 7)), "the cut line ends where it was cut; no stranger's tail is glued to it");
        Assert.That(reader.Read(chunk: 16), Is.Empty);
        AppendLines(log, 20, 1);
        Assert.That(reader.Read(chunk: 16), Is.EqualTo(Lines(20, 1)), "and it goes on from there");
    }
}
