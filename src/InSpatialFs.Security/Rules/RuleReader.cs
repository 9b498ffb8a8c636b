using System.Globalization;
using System.Text.Json;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace InSpatialFs.Security.Rules;

/// <summary>
/// Stage 1: YAML text → item specs with file:line:column. Knows the shape of items, not what conditions
/// mean; local checks (durations, severity and action names) happen here because the position is at hand.
/// </summary>
internal sealed class RuleReader
{
    private static readonly HashSet<string> RuleKeys =
    [
        "rule", "desc", "condition", "output", "severity", "priority", "tags", "enabled", "exceptions", "actions",
        "mode", "tests", "threshold", "sequence", "suppress", "append", "override", "source",
    ];

    private readonly DiagnosticBag _diagnostics;
    private string _file = "";

    public RuleReader(DiagnosticBag diagnostics) => _diagnostics = diagnostics;

    public RuleFileSpec Read(string file, string yamlText)
    {
        _file = file;
        var spec = new RuleFileSpec { File = file };
        var stream = new YamlStream();
        try
        {
            using var reader = new StringReader(yamlText);
            stream.Load(reader);
        }
        catch (YamlException ex)
        {
            _diagnostics.Error(RuleDiagnosticCodes.BadYaml, new SourcePosition(file, (int)ex.Start.Line, (int)ex.Start.Column), ex.Message);
            return spec;
        }

        foreach (YamlDocument doc in stream.Documents)
        {
            if (doc.RootNode is YamlScalarNode { Value: null or "" })
            {
                continue;
            }

            if (doc.RootNode is not YamlSequenceNode items)
            {
                _diagnostics.Error(RuleDiagnosticCodes.BadYaml, Pos(doc.RootNode), "a rules file is a sequence of list, macro and rule items");
                continue;
            }

            foreach (YamlNode node in items)
            {
                ItemSpec? item = ReadItem(node);
                if (item != null)
                {
                    spec.Items.Add(item);
                }
            }
        }

        return spec;
    }

    private SourcePosition Pos(YamlNode n) => new(_file, (int)n.Start.Line, (int)n.Start.Column);

    private ItemSpec? ReadItem(YamlNode node)
    {
        if (node is not YamlMappingNode map)
        {
            _diagnostics.Error(RuleDiagnosticCodes.BadItem, Pos(node), "an item must be a mapping with a list, macro or rule key");
            return null;
        }

        if (Get(map, "list") is { } listName)
        {
            return ReadList(map, listName);
        }

        if (Get(map, "macro") is { } macroName)
        {
            return ReadMacro(map, macroName);
        }

        if (Get(map, "rule") is { } ruleName)
        {
            return ReadRule(map, ruleName);
        }

        if (Get(map, "required_engine_version") != null || Get(map, "required_plugin_versions") != null)
        {
            return null; // Falco file headers: accepted and ignored so Falco-style files load.
        }

        _diagnostics.Error(RuleDiagnosticCodes.BadItem, Pos(map), "item has none of the keys list, macro, rule");
        return null;
    }

    private static YamlNode? Get(YamlMappingNode map, string key) =>
        map.Children.TryGetValue(new YamlScalarNode(key), out YamlNode? v) ? v : null;

    private string? Scalar(YamlNode node, string what)
    {
        if (node is YamlScalarNode s)
        {
            return s.Value ?? "";
        }

        _diagnostics.Error(RuleDiagnosticCodes.BadValue, Pos(node), $"{what} must be a scalar");
        return null;
    }

    private SourceText? Text(YamlNode? node, string what)
    {
        if (node == null)
        {
            return null;
        }

        string? s = Scalar(node, what);
        if (s == null)
        {
            return null;
        }

        // Block scalars (| and >) start their text on the next line.
        SourcePosition at = Pos(node);
        if (node is YamlScalarNode { Style: ScalarStyle.Literal or ScalarStyle.Folded })
        {
            at = at with { Line = at.Line + 1, Column = 1 };
        }
        else if (node is YamlScalarNode { Style: ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted })
        {
            at = at.Offset(1);
        }

        return new SourceText(s, at);
    }

    private List<SourceText> TextList(YamlNode node, string what)
    {
        var result = new List<SourceText>();
        if (node is YamlSequenceNode seq)
        {
            foreach (YamlNode child in seq)
            {
                if (Text(child, what) is { } t)
                {
                    result.Add(t);
                }
            }
        }
        else if (Text(node, what) is { } single)
        {
            result.Add(single);
        }

        return result;
    }

    private bool? Bool(YamlNode node, string what)
    {
        string? s = Scalar(node, what);
        if (s == null)
        {
            return null;
        }

        if (bool.TryParse(s, out bool b))
        {
            return b;
        }

        _diagnostics.Error(RuleDiagnosticCodes.BadValue, Pos(node), $"{what} must be true or false, not '{s}'");
        return null;
    }

    private (bool Append, Dictionary<string, OverrideMode> Overrides) ReadOverride(YamlMappingNode map)
    {
        bool append = Get(map, "append") is { } a && Bool(a, "append") == true;
        var overrides = new Dictionary<string, OverrideMode>();
        if (Get(map, "override") is { } o)
        {
            if (o is not YamlMappingNode om)
            {
                _diagnostics.Error(RuleDiagnosticCodes.BadValue, Pos(o), "override must be a mapping of key: append|replace");
            }
            else
            {
                foreach ((YamlNode k, YamlNode v) in om.Children)
                {
                    string key = ((YamlScalarNode)k).Value ?? "";
                    switch (Scalar(v, "override mode"))
                    {
                        case "append": overrides[key] = OverrideMode.Append; break;
                        case "replace": overrides[key] = OverrideMode.Replace; break;
                        default:
                            _diagnostics.Error(RuleDiagnosticCodes.BadValue, Pos(v), $"override of '{key}' must be append or replace");
                            break;
                    }
                }
            }
        }

        return (append, overrides);
    }

    private ListSpec? ReadList(YamlMappingNode map, YamlNode nameNode)
    {
        string? name = Scalar(nameNode, "list name");
        if (name == null)
        {
            return null;
        }

        (bool append, Dictionary<string, OverrideMode> overrides) = ReadOverride(map);
        var list = new ListSpec { Name = name, At = Pos(map), Append = append, Overrides = overrides };
        if (Get(map, "items") is { } items)
        {
            if (items is not YamlSequenceNode)
            {
                _diagnostics.Error(RuleDiagnosticCodes.BadValue, Pos(items), "list items must be a sequence");
            }
            else
            {
                list.Items = TextList(items, "list item");
            }
        }
        else
        {
            _diagnostics.Error(RuleDiagnosticCodes.BadItem, Pos(map), $"list '{name}' has no items key");
        }

        return list;
    }

    private MacroSpec? ReadMacro(YamlMappingNode map, YamlNode nameNode)
    {
        string? name = Scalar(nameNode, "macro name");
        if (name == null)
        {
            return null;
        }

        (bool append, Dictionary<string, OverrideMode> overrides) = ReadOverride(map);
        var macro = new MacroSpec { Name = name, At = Pos(map), Append = append, Overrides = overrides };
        macro.Condition = Text(Get(map, "condition"), "condition");
        if (macro.Condition == null)
        {
            _diagnostics.Error(RuleDiagnosticCodes.BadItem, Pos(map), $"macro '{name}' has no condition");
        }

        return macro;
    }

    private RuleSpec? ReadRule(YamlMappingNode map, YamlNode nameNode)
    {
        string? name = Scalar(nameNode, "rule name");
        if (name == null)
        {
            return null;
        }

        (bool append, Dictionary<string, OverrideMode> overrides) = ReadOverride(map);
        var rule = new RuleSpec { Name = name, At = Pos(map), Append = append, Overrides = overrides };
        foreach ((YamlNode keyNode, YamlNode v) in map.Children)
        {
            string key = ((YamlScalarNode)keyNode).Value ?? "";
            if (!RuleKeys.Contains(key))
            {
                _diagnostics.Error(RuleDiagnosticCodes.UnknownKey, Pos(keyNode), $"unknown rule key '{key}'");
                continue;
            }

            if (key is "rule" or "append" or "override" or "source")
            {
                continue;
            }

            rule.Keys.Add(key == "priority" ? "severity" : key);
            switch (key)
            {
                case "desc": rule.Desc = Text(v, "desc"); break;
                case "condition": rule.Condition = Text(v, "condition"); break;
                case "output": rule.Output = Text(v, "output"); break;
                case "severity" or "priority": rule.Severity = ReadSeverity(v); break;
                case "tags": rule.Tags = TextList(v, "tag").ConvertAll(t => t.Text); break;
                case "enabled": rule.Enabled = Bool(v, "enabled"); break;
                case "exceptions": rule.Exceptions = ReadExceptions(v); break;
                case "actions": rule.Actions = ReadActions(v); break;
                case "mode": rule.Mode = ReadMode(v); break;
                case "tests": rule.Tests = ReadTests(v); break;
                case "threshold": rule.Threshold = ReadThreshold(v); break;
                case "sequence": rule.Sequence = ReadSequence(v); break;
                case "suppress": rule.Suppress = ReadSuppress(v); break;
                default: break;
            }
        }

        if (!rule.IsOverride && rule.Condition == null && rule.Sequence == null && rule.Keys.Count > 0
            && !(rule.Keys.Count == 1 && rule.Enabled != null))
        {
            _diagnostics.Error(RuleDiagnosticCodes.BadItem, rule.At, $"rule '{name}' has neither condition nor sequence");
        }

        return rule;
    }

    internal static Severity? ParseSeverity(string s) => s.ToLowerInvariant() switch
    {
        "info" or "informational" or "debug" => Severity.Info,
        "low" or "notice" => Severity.Low,
        "medium" or "warning" => Severity.Medium,
        "high" or "error" => Severity.High,
        "critical" or "alert" or "emergency" => Severity.Critical,
        _ => null,
    };

    private Severity? ReadSeverity(YamlNode v)
    {
        string? s = Scalar(v, "severity");
        if (s == null)
        {
            return null;
        }

        Severity? sev = ParseSeverity(s);
        if (sev == null)
        {
            _diagnostics.Error(RuleDiagnosticCodes.BadSeverity, Pos(v), $"unknown severity '{s}' (info, low, medium, high, critical, or a Falco priority)");
        }

        return sev;
    }

    internal static ResponseAction? ParseAction(string s) => s.ToLowerInvariant() switch
    {
        "log" => ResponseAction.Log,
        "alert" => ResponseAction.Alert,
        "deny" => ResponseAction.Deny,
        "block-process" or "block_process" => ResponseAction.BlockProcess,
        "suspend" or "freeze" => ResponseAction.Suspend,
        "kill" => ResponseAction.Kill,
        _ => null,
    };

    private ResponseAction? ReadActions(YamlNode v)
    {
        ResponseAction actions = ResponseAction.None;
        foreach (SourceText t in TextList(v, "action"))
        {
            if (ParseAction(t.Text) is { } a)
            {
                actions |= a;
            }
            else
            {
                _diagnostics.Error(RuleDiagnosticCodes.UnknownAction, t.At, $"unknown action '{t.Text}' (log, alert, deny, block-process, suspend, kill)");
            }
        }

        return actions;
    }

    private RuleMode? ReadMode(YamlNode v) => Scalar(v, "mode") switch
    {
        "enforce" => RuleMode.Enforce,
        "monitor" => RuleMode.Monitor,
        null => null,
        var s => Fail<RuleMode?>(v, RuleDiagnosticCodes.BadValue, $"mode must be enforce or monitor, not '{s}'"),
    };

    private T? Fail<T>(YamlNode at, string code, string message)
    {
        _diagnostics.Error(code, Pos(at), message);
        return default;
    }

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

    private List<ExceptionSpec> ReadExceptions(YamlNode v)
    {
        var result = new List<ExceptionSpec>();
        if (v is not YamlSequenceNode seq)
        {
            _diagnostics.Error(RuleDiagnosticCodes.BadValue, Pos(v), "exceptions must be a sequence");
            return result;
        }

        foreach (YamlNode n in seq)
        {
            if (n is not YamlMappingNode m || Get(m, "name") is not { } nameNode || Scalar(nameNode, "exception name") is not { } name)
            {
                _diagnostics.Error(RuleDiagnosticCodes.BadValue, Pos(n), "an exception needs a name");
                continue;
            }

            var ex = new ExceptionSpec
            {
                Name = name,
                At = Pos(m),
                Fields = Get(m, "fields") is { } f ? TextList(f, "exception field") : [],
                Comps = Get(m, "comps") is { } c ? TextList(c, "exception comparison") : [],
            };
            if (Get(m, "values") is YamlSequenceNode values)
            {
                foreach (YamlNode row in values)
                {
                    ex.Values.Add(row is YamlSequenceNode ? TextList(row, "exception value") : [Text(row, "exception value")!.Value]);
                }
            }

            if (ex.Fields.Count == 0)
            {
                _diagnostics.Error(RuleDiagnosticCodes.BadValue, ex.At, $"exception '{name}' has no fields");
            }

            result.Add(ex);
        }

        return result;
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
            var events = new List<SourceText>();
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
                        events.Add(new SourceText(MapToJson(em, null), Pos(em)));
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
    private void ReadRepeat(YamlMappingNode m, YamlNode repeatNode, List<SourceText> events)
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

        for (int k = 0; k < count; k++)
        {
            string json = MapToJson(template, every > 0 ? TestBaseTime + (k * every) : null)
                .Replace("%i", k.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);
            events.Add(new SourceText(json, Pos(template)));
        }
    }

    /// <summary>evt.time of the first test event that does not give one (later ones follow 1 ms apart).</summary>
    internal static readonly long TestBaseTime = Events.FsEventJson.ParseTime("2026-01-01T00:00:00Z");

    /// <summary>A YAML map of field: value as a JSON object; plain scalars that read as numbers or booleans stay typed.</summary>
    private static string MapToJson(YamlMappingNode m, long? time)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            if (time is { } t)
            {
                w.WriteString("evt.time", Events.FsEventJson.FormatTime(t));
            }

            foreach ((YamlNode k, YamlNode v) in m.Children)
            {
                string key = ((YamlScalarNode)k).Value ?? "";
                if (time != null && key == "evt.time")
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
