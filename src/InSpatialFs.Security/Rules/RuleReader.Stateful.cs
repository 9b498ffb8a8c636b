using System.Globalization;
using System.Text.Json;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace InSpatialFs.Security.Rules;

/// <summary>Stage 1, our own keys: threshold, sequence, suppress and the embedded tests.</summary>
internal sealed partial class RuleReader
{
    /// <summary>Durations: 500ms, 10s, 5m, 1h, 1d (an integer and a unit).</summary>
    internal static bool TryParseDuration(string s, out long nanos)
    {
        nanos = 0;
        s = s.Trim();
        int i = 0;
        while (i < s.Length && char.IsAsciiDigit(s[i]))
        {
            i++;
        }

        if (i == 0 || !long.TryParse(s.AsSpan(0, i), NumberStyles.None, CultureInfo.InvariantCulture, out long n))
        {
            return false;
        }

        long unit = s[i..] switch
        {
            "ns" => 1,
            "us" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            _ => 0,
        };
        if (unit == 0 || n <= 0 || n > long.MaxValue / unit)
        {
            return false;
        }

        nanos = n * unit;
        return true;
    }

    private long Duration(YamlNode? v, string what)
    {
        if (v == null)
        {
            return 0;
        }

        string? s = Scalar(v, what);
        if (s == null)
        {
            return 0;
        }

        if (!TryParseDuration(s, out long nanos))
        {
            _diagnostics.Error(RuleDiagnosticCodes.BadDuration, Pos(v), $"bad duration '{s}' for {what} (e.g. 500ms, 10s, 5m, 1h)");
        }

        return nanos;
    }

    private int? PositiveInt(YamlNode? v, string what)
    {
        if (v == null)
        {
            return null;
        }

        string? s = Scalar(v, what);
        if (s != null && int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0)
        {
            return n;
        }

        _diagnostics.Error(RuleDiagnosticCodes.BadValue, Pos(v), $"{what} must be a positive integer");
        return null;
    }

    private ThresholdSpec? ReadThreshold(YamlNode v)
    {
        if (v is not YamlMappingNode m)
        {
            return Fail<ThresholdSpec>(v, RuleDiagnosticCodes.BadValue, "threshold must be a mapping {by, window, count|distinct}");
        }

        long window = Duration(Get(m, "window"), "threshold window");
        if (Get(m, "window") == null)
        {
            _diagnostics.Error(RuleDiagnosticCodes.BadDuration, Pos(m), "threshold needs a window");
        }

        int? count = null;
        SourceText? distinctField = null;
        int distinctAtLeast = 0;
        if (Get(m, "count") is { } c)
        {
            count = c is YamlMappingNode cm ? PositiveInt(Get(cm, "gte"), "count.gte") : PositiveInt(c, "count");
        }
        else if (Get(m, "distinct") is YamlMappingNode dm)
        {
            distinctField = Text(Get(dm, "field"), "distinct.field");
            distinctAtLeast = PositiveInt(Get(dm, "gte"), "distinct.gte") ?? 0;
            if (distinctField == null)
            {
                _diagnostics.Error(RuleDiagnosticCodes.BadValue, Pos(dm), "distinct needs a field");
            }
        }
        else
        {
            _diagnostics.Error(RuleDiagnosticCodes.BadValue, Pos(m), "threshold needs count: {gte: N} or distinct: {field: F, gte: N}");
        }

        return new ThresholdSpec
        {
            At = Pos(m),
            By = Get(m, "by") is { } by ? TextList(by, "by field") : [],
            WindowNanos = window,
            CountAtLeast = count,
            DistinctField = distinctField,
            DistinctAtLeast = distinctAtLeast,
        };
    }

    private SequenceSpec? ReadSequence(YamlNode v)
    {
        if (v is not YamlMappingNode m)
        {
            return Fail<SequenceSpec>(v, RuleDiagnosticCodes.BadValue, "sequence must be a mapping {by, maxspan, steps, until}");
        }

        long maxspan = 0;
        if (Get(m, "maxspan") is { } ms)
        {
            maxspan = Duration(ms, "maxspan");
        }
        else
        {
            _diagnostics.Error(RuleDiagnosticCodes.SequenceWithoutMaxspan, Pos(m), "a sequence needs maxspan (pending state must expire)");
        }

        var steps = new List<SequenceStepSpec>();
        if (Get(m, "steps") is YamlSequenceNode stepNodes)
        {
            int i = 0;
            foreach (YamlNode s in stepNodes)
            {
                i++;
                if (s is YamlMappingNode sm && Text(Get(sm, "condition"), "step condition") is { } cond)
                {
                    string name = Get(sm, "name") is { } n ? Scalar(n, "step name") ?? $"step{i}" : $"step{i}";
                    steps.Add(new SequenceStepSpec { Name = name, Condition = cond });
                }
                else
                {
                    _diagnostics.Error(RuleDiagnosticCodes.BadValue, Pos(s), "a sequence step is {name, condition}");
                }
            }
        }

        if (steps.Count < 2)
        {
            _diagnostics.Error(RuleDiagnosticCodes.BadValue, Pos(m), "a sequence needs at least two steps");
        }

        return new SequenceSpec
        {
            At = Pos(m),
            By = Get(m, "by") is { } by ? TextList(by, "by field") : [],
            MaxspanNanos = maxspan,
            Steps = steps,
            Until = Text(Get(m, "until"), "until"),
        };
    }

    private SuppressSpec? ReadSuppress(YamlNode v)
    {
        if (v is YamlMappingNode m)
        {
            return new SuppressSpec
            {
                WindowNanos = Duration(Get(m, "window"), "suppress window"),
                By = Get(m, "by") is { } by ? TextList(by, "by field") : [],
            };
        }

        return new SuppressSpec { WindowNanos = Duration(v, "suppress") };
    }

    private List<RuleTestSpec> ReadTests(YamlNode v)
    {
        var result = new List<RuleTestSpec>();
        if (v is not YamlSequenceNode seq)
        {
            _diagnostics.Error(RuleDiagnosticCodes.BadValue, Pos(v), "tests must be a sequence");
            return result;
        }

        int index = 0;
        foreach (YamlNode n in seq)
        {
            index++;
            if (n is not YamlMappingNode m)
            {
                _diagnostics.Error(RuleDiagnosticCodes.BadValue, Pos(n), "a test is {name, events, expect, actions}");
                continue;
            }

            string name = Get(m, "name") is { } nn ? Scalar(nn, "test name") ?? $"test {index}" : $"test {index}";
            var events = new TestEventList();
            if (Get(m, "events") is YamlSequenceNode evs)
            {
                foreach (YamlNode e in evs)
                {
                    if (e is YamlScalarNode)
                    {
                        events.Add(Text(e, "event")!.Value);
                    }
                    else if (e is YamlMappingNode rm && Get(rm, "repeat") is { } repeatNode)
                    {
                        ReadRepeat(rm, repeatNode, events);
                    }
                    else if (e is YamlMappingNode em)
                    {
                        events.Add(new SourceText(MapToJson(em, skipTime: false), Pos(em)));
                    }
                    else
                    {
                        _diagnostics.Error(RuleDiagnosticCodes.BadTestEvent, Pos(e), "an event is a JSON line or a mapping of field: value");
                    }
                }
            }
            else
            {
                _diagnostics.Error(RuleDiagnosticCodes.BadTestEvent, Pos(m), $"test '{name}' has no events sequence");
            }

            bool expectMatch = true;
            if (Get(m, "expect") is { } ex)
            {
                switch (Scalar(ex, "expect"))
                {
                    case "match": expectMatch = true; break;
                    case "no_match": expectMatch = false; break;
                    default: _diagnostics.Error(RuleDiagnosticCodes.BadValue, Pos(ex), "expect must be match or no_match"); break;
                }
            }

            result.Add(new RuleTestSpec
            {
                Name = name,
                At = Pos(m),
                Events = events,
                ExpectMatch = expectMatch,
                ExpectActions = Get(m, "actions") is { } a ? ReadActions(a) : null,
            });
        }

        return result;
    }

    /// <summary>
    /// <c>{repeat: N, every: 1ms, event: {...}}</c>: N copies of one event, "%i" in its values replaced by the
    /// copy's index; with <c>every</c>, copy k gets evt.time = test base time + k * every.
    /// </summary>
    private void ReadRepeat(YamlMappingNode m, YamlNode repeatNode, TestEventList events)
    {
        int count = PositiveInt(repeatNode, "repeat") ?? 0;
        long every = Get(m, "every") is { } ev ? Duration(ev, "every") : 0;
        if (Get(m, "event") is not YamlMappingNode template)
        {
            _diagnostics.Error(RuleDiagnosticCodes.BadTestEvent, Pos(m), "repeat needs an event mapping");
            return;
        }

        const int MaxRepeat = 1_000_000;
        if (count > MaxRepeat)
        {
            _diagnostics.Error(RuleDiagnosticCodes.BadTestEvent, Pos(repeatNode), $"repeat is limited to {MaxRepeat}");
            return;
        }

        // Rendered once without evt.time; TestEventList makes copy k (its index and time) when a test reads it.
        events.AddRepeat(new SourceText(MapToJson(template, skipTime: every > 0), Pos(template)), count, TestBaseTime, every);
    }

    /// <summary>evt.time of the first test event that does not give one (later ones follow 1 ms apart).</summary>
    internal static readonly long TestBaseTime = Events.FsEventJson.ParseTime("2026-01-01T00:00:00Z");

    /// <summary>A YAML map of field: value as a JSON object; plain scalars that read as numbers or booleans stay typed.
    /// <paramref name="skipTime"/>: leave evt.time out (a timed repeat sets each copy's own).</summary>
    private static string MapToJson(YamlMappingNode m, bool skipTime)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            foreach ((YamlNode k, YamlNode v) in m.Children)
            {
                string key = ((YamlScalarNode)k).Value ?? "";
                if (skipTime && key == "evt.time")
                {
                    continue;
                }

                string value = (v as YamlScalarNode)?.Value ?? "";
                bool plain = v is YamlScalarNode { Style: ScalarStyle.Plain };
                if (plain && long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long number))
                {
                    w.WriteNumber(key, number);
                }
                else if (plain && value is "true" or "false")
                {
                    w.WriteBoolean(key, value == "true");
                }
                else
                {
                    w.WriteString(key, value);
                }
            }

            w.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
