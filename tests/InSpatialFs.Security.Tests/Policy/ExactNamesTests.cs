using System.Text;
using InSpatialFs.Security.Policy;

namespace InSpatialFs.Security.Tests.Policy;

public sealed class ExactNamesTests
{
    [Test]
    public void Valid_utf8_decodes_as_usual_and_round_trips()
    {
        foreach (string s in new[] { "plain", "ünïcödé", "日本語", "emoji-😀-x", "" })
        {
            byte[] bytes = Encoding.UTF8.GetBytes(s);
            Assert.That(ExactNames.Decode(bytes), Is.EqualTo(s));
            Assert.That(ExactNames.Encode(s), Is.EqualTo(bytes));
            Assert.That(ExactNames.ForDisplay(s), Is.SameAs(s), "nothing to escape: no copy");
        }
    }

    [Test]
    public void Names_that_differ_only_in_invalid_bytes_never_fold_together()
    {
        // The attack: two names that a lossy decoder turns into the same "shad\uFFFDw".
        byte[] a = [(byte)'s', (byte)'h', (byte)'a', (byte)'d', 0x80, (byte)'w'];
        byte[] b = [(byte)'s', (byte)'h', (byte)'a', (byte)'d', 0xFF, (byte)'w'];
        Assert.That(Encoding.UTF8.GetString(a), Is.EqualTo(Encoding.UTF8.GetString(b)), "positive control: the lossy decoder folds them");
        Assert.That(ExactNames.Decode(a), Is.Not.EqualTo(ExactNames.Decode(b)));
        Assert.That(ExactNames.Decode(a), Is.Not.EqualTo("shad\uFFFDw"));
        Assert.That(ExactNames.Encode(ExactNames.Decode(a)), Is.EqualTo(a));
        Assert.That(ExactNames.ForDisplay(ExactNames.Decode(a)), Is.EqualTo("shad\\x80w"));
    }

    [Test]
    public void Every_byte_string_round_trips_exactly()
    {
        var random = new Random(1234);
        for (int round = 0; round < 20_000; round++)
        {
            byte[] bytes = new byte[random.Next(1, 24)];
            random.NextBytes(bytes);
            for (int i = 0; i < bytes.Length; i++)
            {
                if (bytes[i] is 0 or (byte)'/') bytes[i] = (byte)'x'; // names hold neither
            }

            string decoded = ExactNames.Decode(bytes);
            Assert.That(ExactNames.Encode(decoded), Is.EqualTo(bytes), Convert.ToHexString(bytes));
            Assert.That(Encoding.UTF8.GetBytes(ExactNames.ForDisplay(decoded)), Is.Not.Empty);
        }
    }

    [Test]
    public void A_truncated_sequence_at_the_end_is_escaped_byte_by_byte()
    {
        byte[] bytes = [(byte)'a', 0xE2, 0x82];
        Assert.That(ExactNames.ForDisplay(ExactNames.Decode(bytes)), Is.EqualTo("a\\xe2\\x82"));
        Assert.That(ExactNames.Encode(ExactNames.Decode(bytes)), Is.EqualTo(bytes));
    }
}
