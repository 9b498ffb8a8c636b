using System.Text;
using InSpatialFs.Daemon.Control;

namespace InSpatialFs.Daemon.Tests.Control;

public sealed class EventLogTests
{
    /// <summary>Reads the log the way the control file's reader does: kernel offsets from 0, the skew kept per open file.</summary>
    private static string ReadAll(EventLog log, int chunk)
    {
        var text = new StringBuilder();
        var buffer = new byte[chunk];
        long offset = 0, skew = 0;
        while (true)
        {
            long position = offset + skew;
            int n = log.Read(ref position, buffer, TimeSpan.Zero);
            skew = position - offset;
            if (n == 0)
            {
                return text.ToString();
            }

            text.Append(Encoding.ASCII.GetString(buffer, 0, n));
            offset += n;
        }
    }

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
}
