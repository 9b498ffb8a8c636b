using System.Collections;
using System.Globalization;

namespace InSpatialFs.Security.Rules;

/// <summary>
/// The events of one rule test. A <c>{repeat: N, ...}</c> entry is kept as one rendered template and expanded only when
/// a test reads it: the daemon loads every rule's tests with the rules but never runs them, and expanding the built-in
/// rules' repeats eagerly was most of the daemon's start-up time and heap.
/// </summary>
internal sealed class TestEventList : IReadOnlyList<SourceText>
{
    private readonly List<Segment> _segments = [];

    public int Count { get; private set; }

    public void Add(SourceText text)
    {
        _segments.Add(new Segment(text, 1, IsRepeat: false, BaseTime: 0, Every: 0));
        Count++;
    }

    /// <summary>
    /// <paramref name="count"/> copies of <paramref name="template"/> (a JSON object without evt.time), "%i" in it
    /// replaced by the copy's index; with <paramref name="every"/> &gt; 0, copy k gets evt.time = base + k * every.
    /// </summary>
    public void AddRepeat(SourceText template, int count, long baseTime, long every)
    {
        if (count <= 0)
        {
            return;
        }

        _segments.Add(new Segment(template, count, IsRepeat: true, baseTime, every));
        Count += count;
    }

    public SourceText this[int index]
    {
        get
        {
            ArgumentOutOfRangeException.ThrowIfNegative(index);
            foreach (Segment s in _segments)
            {
                if (index < s.Count)
                {
                    return s.IsRepeat ? s.Copy(index) : s.Text;
                }

                index -= s.Count;
            }

            throw new ArgumentOutOfRangeException(nameof(index));
        }
    }

    public IEnumerator<SourceText> GetEnumerator()
    {
        for (int i = 0; i < Count; i++)
        {
            yield return this[i];
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    private readonly record struct Segment(SourceText Text, int Count, bool IsRepeat, long BaseTime, long Every)
    {
        public SourceText Copy(int k)
        {
            string body = Text.Text.Replace("%i", k.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);
            if (Every > 0)
            {
                // The template is a JSON object rendered without evt.time: put the copy's time first, as MapToJson does.
                string time = $"\"evt.time\":\"{Events.FsEventJson.FormatTime(BaseTime + (k * Every))}\"";
                body = body == "{}" ? "{" + time + "}" : "{" + time + "," + body[1..];
            }

            return Text with { Text = body };
        }
    }
}
