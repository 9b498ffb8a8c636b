using System.Globalization;
using System.Text.Json;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Policy;

namespace InSpatialFs.Security.Tests.Manager;

/// <summary>
/// The journal line of an event, field by field: the time stamp (whose whole-second part is formatted once per second
/// and reused), the values from fixed sets (written from encodings made once), and fs.dir / fs.name cut from fs.path.
/// </summary>
public sealed class EventJsonTests
{
    private static JsonElement Line(FsEvent e) => JsonDocument.Parse(FsEventJson.ToJsonLine(e)).RootElement;

    private static long Nanos(string utc, long nanos) =>
        (DateTime.Parse(utc, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal).Ticks - DateTime.UnixEpoch.Ticks) * 100 + nanos;

    [Test]
    public void Time_stamps_in_the_same_second_and_in_the_next_each_carry_their_own_date_and_nanoseconds()
    {
        (long Nanos, string Text)[] times =
        [
            (Nanos("2026-12-06T23:59:59", 7), "2026-12-06T23:59:59.000000007Z"),
            (Nanos("2026-12-06T23:59:59", 999_999_999), "2026-12-06T23:59:59.999999999Z"),
            (Nanos("2026-12-07T00:00:00", 0), "2026-12-07T00:00:00.000000000Z"), // the cached second changes, and the date with it
            (Nanos("2026-12-06T23:59:59", 120_000_000), "2026-12-06T23:59:59.120000000Z"), // and back: a replayed journal is not in order
            (-1, "1969-12-31T23:59:59.999999999Z"),
        ];

        foreach ((long nanos, string text) in times)
        {
            FsEvent e = new() { Op = FsOp.Open, Path = "/a", TimeUnixNanos = nanos };
            Assert.That(Line(e).GetProperty("evt.time").GetString(), Is.EqualTo(text));
            Assert.That(FsEventJson.FormatTime(nanos), Is.EqualTo(text));
            Assert.That(FsEventJson.ParseTime(text), Is.EqualTo(nanos), "it reads back to the same instant");
        }
    }

    [Test]
    public void Every_value_of_a_fixed_set_is_written_by_its_name()
    {
        for (int i = 0; i < FsOpNames.Count; i++)
        {
            var op = (FsOp)i;
            JsonElement o = Line(new FsEvent { Op = op, Path = "/x" });
            Assert.That(o.GetProperty("evt.op").GetString(), Is.EqualTo(op.Name()));
            Assert.That(o.GetProperty("evt.type").GetString(), Is.EqualTo(InSpatialFs.Security.Rules.SyscallMap.TypeOf(op)));
        }

        foreach (Decision d in Enum.GetValues<Decision>())
        {
            Assert.That(Line(new FsEvent { Path = "/x", Decision = d }).GetProperty("evt.decision").GetString(), Is.EqualTo(FsEventJson.DecisionName(d)));
        }

        foreach (IsolationLevel l in Enum.GetValues<IsolationLevel>())
        {
            Assert.That(Line(new FsEvent { Path = "/x", Level = l }).GetProperty("container.level").GetString(), Is.EqualTo(FsEventJson.LevelName(l)));
        }

        foreach (PathClass c in Enum.GetValues<PathClass>())
        {
            Assert.That(Line(new FsEvent { Path = "/x", PolicyClass = c }).GetProperty("policy.class").GetString(), Is.EqualTo(FsEventJson.ClassName(c)));
        }
    }

    [TestCase("/etc/ssh/sshd_config", "/etc/ssh", "sshd_config")]
    [TestCase("/etc", "/", "etc")]
    [TestCase("/", "/", "")]
    [TestCase("", "/", "")]
    [TestCase("relative", "/", "relative")]
    public void Dir_and_name_are_cut_from_the_path(string path, string dir, string name)
    {
        JsonElement o = Line(new FsEvent { Op = FsOp.Lookup, Path = path });
        Assert.That(o.GetProperty("fs.path").GetString(), Is.EqualTo(path));
        Assert.That(o.GetProperty("fs.dir").GetString(), Is.EqualTo(dir));
        Assert.That(o.GetProperty("fs.name").GetString(), Is.EqualTo(name));
        var e = new FsEvent { Path = path };
        Assert.That((e.Dir, e.Name), Is.EqualTo((dir, name)), "the same cut as the rule fields");
    }

    [Test]
    public void A_path_with_bytes_that_are_not_utf8_goes_out_in_display_form_in_all_three_fields()
    {
        byte[] raw = [.. "/data/d"u8.ToArray(), 0xFF, .. "/f"u8.ToArray(), 0xFE];
        string path = ExactNames.Decode(raw);
        JsonElement o = Line(new FsEvent { Op = FsOp.Create, Path = path });
        Assert.That(o.GetProperty("fs.path").GetString(), Is.EqualTo(@"/data/d\xff/f\xfe"));
        Assert.That(o.GetProperty("fs.dir").GetString(), Is.EqualTo(@"/data/d\xff"));
        Assert.That(o.GetProperty("fs.name").GetString(), Is.EqualTo(@"f\xfe"));
    }
}
