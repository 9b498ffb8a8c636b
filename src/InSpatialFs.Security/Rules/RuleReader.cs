using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;
using Version = System.Version;

namespace InSpatialFs.Security.Rules;

/// <summary>
/// Stage 1: YAML text → item specs with file:line:column. Knows the shape of items, not what conditions
/// mean; local checks (durations, severity and action names, override keys) happen here because the position is
/// at hand. Nothing a rule file contains escapes as an exception: malformed YAML, an alias bomb or an oversized
/// file is a positioned R001 error.
/// </summary>
internal sealed partial class RuleReader
{
    /// <summary>Largest rules file read (characters).</summary>
    public const int MaxFileChars = 16 << 20;

    /// <summary>Most YAML nodes a document may expand to (aliases count each time they are used).</summary>
    public const int MaxNodes = 2_000_000;

    /// <summary>The Falco engine version whose rules-file semantics we implement (Falco 0.42).</summary>
    public static readonly Version EngineVersion = new(0, 57, 0);

    private static readonly HashSet<string> RuleKeys =
    [
        "rule", "desc", "condition", "output", "severity", "priority", "tags", "enabled", "exceptions", "actions",
        "mode", "tests", "threshold", "sequence", "suppress", "append", "override", "source", "skip-if-unknown-filter",
        "warn_evttypes", "capture", "capture_duration",
    ];

    /// <summary>Keys an override may append to (Falco's, plus actions and tests of ours).</summary>
    /// <summary>What Falco's loader requires of a rule that is not an append or override (priority is kept as severity).</summary>
    private static readonly string[] FalcoRequiredKeys = ["desc", "output", "severity"];

    private static readonly HashSet<string> Appendable = ["condition", "output", "desc", "tags", "exceptions", "actions", "tests"];

    /// <summary>Keys an override may replace (Falco's, plus ours).</summary>
    private static readonly HashSet<string> Replaceable =
    [
        "condition", "output", "desc", "severity", "tags", "exceptions", "enabled", "warn_evttypes", "skip-if-unknown-filter",
        "capture", "capture_duration", "actions", "mode", "threshold", "sequence", "suppress", "tests", "items",
    ];

    private readonly DiagnosticBag _diagnostics;
    private readonly bool _readTests;
    private string _file = "";
    private SourceLines _lines = new("");

    /// <param name="readTests">Read rules' <c>tests:</c> (false: the key is noted and its value left unread; a serving
    /// engine never runs them, only <c>rules test</c> does).</param>
    public RuleReader(DiagnosticBag diagnostics, bool readTests = true)
    {
        _diagnostics = diagnostics;
        _readTests = readTests;
    }

    public RuleFileSpec Read(string file, string yamlText)
    {
        _file = file;
        var spec = new RuleFileSpec { File = file };
        if (yamlText.Length > MaxFileChars)
        {
            _diagnostics.Error(RuleDiagnosticCodes.BadYaml, new SourcePosition(file, 1, 1), $"the file has {yamlText.Length} characters; at most {MaxFileChars} are read");
            return spec;
        }

        _lines = new SourceLines(yamlText);
        var stream = new YamlStream();
        try
        {
            using var reader = new StringReader(yamlText);
            stream.Load(reader);
        }
        catch (YamlException ex)
        {
            _diagnostics.Error(RuleDiagnosticCodes.BadYaml, new SourcePosition(file, Math.Max(1, (int)ex.Start.Line), Math.Max(1, (int)ex.Start.Column)), ex.Message);
            return spec;
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or FormatException or NotSupportedException or OverflowException)
        {
            // YamlDotNet reports some malformed input (unclosed flow collections at the end of the file) this way.
            (int line, int column) = _lines.LineColumn(Math.Max(0, yamlText.Length - 1));
            _diagnostics.Error(RuleDiagnosticCodes.BadYaml, new SourcePosition(file, line, column), "malformed YAML: " + ex.Message);
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

            int budget = MaxNodes;
            if (!WithinBudget(items, ref budget))
            {
                _diagnostics.Error(RuleDiagnosticCodes.BadYaml, Pos(doc.RootNode), $"the document expands to more than {MaxNodes} YAML nodes (aliases count each time they are used)");
                continue;
            }

            foreach (YamlNode node in items)
            {
                if (node is YamlScalarNode { Value: null or "" })
                {
                    continue;
                }

                if (ReadItem(node, spec) is { } item)
                {
                    spec.Items.Add(item);
                }
            }
        }

        return spec;
    }

    /// <summary>Counts nodes as the reader will visit them; aliases make a document a graph, so this bounds the work.</summary>
    private static bool WithinBudget(YamlNode root, ref int budget)
    {
        var stack = new Stack<YamlNode>();
        stack.Push(root);
        while (stack.Count > 0)
        {
            if (--budget < 0)
            {
                return false;
            }

            switch (stack.Pop())
            {
                case YamlSequenceNode s:
                    foreach (YamlNode c in s)
                    {
                        stack.Push(c);
                    }

                    break;
                case YamlMappingNode m:
                    foreach ((YamlNode k, YamlNode v) in m.Children)
                    {
                        stack.Push(k);
                        stack.Push(v);
                    }

                    break;
                default:
                    break;
            }
        }

        return true;
    }

    private SourcePosition Pos(YamlNode n) => new(_file, Math.Max(1, (int)n.Start.Line), Math.Max(1, (int)n.Start.Column));

    private ItemSpec? ReadItem(YamlNode node, RuleFileSpec spec)
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

        if (Get(map, "required_engine_version") is { } version)
        {
            ReadEngineVersion(version, spec);
            return null;
        }

        if (Get(map, "required_plugin_versions") != null)
        {
            return null; // Falco plugins: the fields we serve do not come from plugins.
        }

        _diagnostics.Error(RuleDiagnosticCodes.BadItem, Pos(map), "item has none of the keys list, macro, rule, required_engine_version");
        return null;
    }

    /// <summary>Falco's <c>required_engine_version</c>: an integer N means 0.N.0; a newer version than ours is an error.</summary>
    private void ReadEngineVersion(YamlNode node, RuleFileSpec spec)
    {
        string? text = Scalar(node, "required_engine_version");
        if (text == null)
        {
            return;
        }

        Version? v = int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int minor) ? new Version(0, minor, 0)
            : Version.TryParse(text, out Version? parsed) ? parsed : null;
        if (v == null)
        {
            _diagnostics.Error(RuleDiagnosticCodes.BadValue, Pos(node), $"required_engine_version '{text}' is not a version (x.y.z)");
            return;
        }

        if (v > EngineVersion)
        {
            _diagnostics.Error(RuleDiagnosticCodes.EngineVersion, Pos(node), $"the rules require Falco engine version {v}; we implement the semantics of engine {EngineVersion} (Falco 0.42)");
        }

        if (spec.RequiredEngineVersion == null || v > spec.RequiredEngineVersion)
        {
            spec.RequiredEngineVersion = v;
        }
    }

    private static YamlNode? Get(YamlMappingNode map, string key) =>
        map.Children.TryGetValue(new YamlScalarNode(key), out YamlNode? v) ? v : null;

    private static string KeyOf(YamlNode keyNode) => (keyNode as YamlScalarNode)?.Value ?? "";

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

        var scalar = (YamlScalarNode)node;
        SourcePosition at = Pos(node);
        if (scalar.Style is ScalarStyle.Literal or ScalarStyle.Folded)
        {
            at = at with { Line = at.Line + 1, Column = 1 };
        }
        else if (scalar.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted)
        {
            at = at.Offset(1);
        }

        return new SourceText(s, at, ScalarMap.For(scalar, s, _lines));
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

    /// <summary>Falco's <c>append: true</c> and <c>override: {key: append|replace}</c> (not both), checked against the overridable keys.</summary>
    private (bool Append, Dictionary<string, OverrideMode> Overrides) ReadOverride(YamlMappingNode map)
    {
        bool append = Get(map, "append") is { } a && Bool(a, "append") == true;
        var overrides = new Dictionary<string, OverrideMode>();
        if (Get(map, "override") is not { } o)
        {
            return (append, overrides);
        }

        if (o is not YamlMappingNode om)
        {
            _diagnostics.Error(RuleDiagnosticCodes.BadValue, Pos(o), "override must be a mapping of key: append|replace");
            return (append, overrides);
        }

        if (append)
        {
            _diagnostics.Error(RuleDiagnosticCodes.BadItem, Pos(map), "an item cannot have both append: true and override");
        }

        foreach ((YamlNode k, YamlNode v) in om.Children)
        {
            string key = KeyOf(k) is "priority" ? "severity" : KeyOf(k);
            switch (Scalar(v, "override mode"))
            {
                case "append" when Appendable.Contains(key) || key == "items":
                    overrides[key] = OverrideMode.Append;
                    break;
                case "append":
                    _diagnostics.Error(RuleDiagnosticCodes.BadValue, Pos(k), $"'{KeyOf(k)}' cannot be appended to; use replace");
                    break;
                case "replace" when Replaceable.Contains(key):
                    overrides[key] = OverrideMode.Replace;
                    break;
                case "replace":
                    _diagnostics.Error(RuleDiagnosticCodes.BadValue, Pos(k), $"'{KeyOf(k)}' cannot be replaced");
                    break;
                default:
                    _diagnostics.Error(RuleDiagnosticCodes.BadValue, Pos(v), $"override of '{KeyOf(k)}' must be append or replace");
                    break;
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
            if (items is YamlScalarNode { Value: null or "" })
            {
                list.Items = []; // "items:" with nothing after it: an empty list
            }
            else if (items is not YamlSequenceNode)
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
            string key = KeyOf(keyNode);
            if (!RuleKeys.Contains(key))
            {
                _diagnostics.Error(RuleDiagnosticCodes.UnknownKey, Pos(keyNode), $"unknown rule key '{key}'");
                continue;
            }

            if (key is "rule" or "append" or "override")
            {
                continue;
            }

            ReadRuleKey(rule, key, v);
        }

        foreach (string key in overrides.Keys)
        {
            if (!rule.Keys.Contains(key))
            {
                _diagnostics.Error(RuleDiagnosticCodes.BadItem, rule.At, $"override names '{key}' but the item does not give it");
            }
        }

        if (!rule.IsOverride && rule.Condition == null && rule.Sequence == null && rule.Keys.Count > 0 && !IsEnableOnly(rule))
        {
            _diagnostics.Error(RuleDiagnosticCodes.BadItem, rule.At, $"rule '{name}' has neither condition nor sequence");
        }
        else if (!rule.IsOverride && (rule.Condition != null || rule.Sequence != null)
            && FalcoRequiredKeys.Where(k => !rule.Keys.Contains(k)).ToList() is { Count: > 0 } missing)
        {
            // Falco refuses such a file; loading it here would let a rule file pass our check and fail Falco's.
            _diagnostics.Warning(RuleDiagnosticCodes.IncompleteRule, rule.At,
                $"rule '{name}' has no {string.Join(", ", missing.Select(k => k == "severity" ? "priority" : k))}: Falco's loader requires them " +
                "(here the output defaults to the rule name with the event, and the severity to medium)");
        }

        return rule;
    }

    /// <summary>A rule item that only sets <c>enabled</c> toggles an earlier rule (Falco's enabled override).</summary>
    internal static bool IsEnableOnly(RuleSpec rule) => rule.Enabled != null && rule.Keys.All(k => k is "enabled" or "source");

    private void ReadRuleKey(RuleSpec rule, string key, YamlNode v)
    {
        // Falco's keys we accept and do not act on: warn_evttypes (an indexing hint), capture (Falco's capture files).
        if (key is "warn_evttypes" or "capture" or "capture_duration")
        {
            rule.Keys.Add(key);
            return;
        }

        if (key == "source")
        {
            rule.Source = Scalar(v, "source");
            rule.Keys.Add(key);
            return;
        }

        rule.Keys.Add(key == "priority" ? "severity" : key);
        switch (key)
        {
            case "desc": rule.Desc = Text(v, "desc"); break;
            case "condition": rule.Condition = Text(v, "condition"); break;
            case "output": rule.Output = Text(v, "output"); break;
            case "severity" or "priority":
                rule.Severity = ReadSeverity(v);
                rule.Priority = rule.Severity is { } sev ? PriorityName((v as YamlScalarNode)?.Value ?? "", sev) : null;
                break;
            case "tags": rule.Tags = v is YamlScalarNode { Value: null or "" } ? [] : TextList(v, "tag").ConvertAll(t => t.Text); break;
            case "enabled": rule.Enabled = Bool(v, "enabled"); break;
            case "skip-if-unknown-filter": rule.SkipIfUnknownFilter = Bool(v, "skip-if-unknown-filter"); break;
            case "exceptions": rule.Exceptions = ReadExceptions(v); break;
            case "actions": rule.Actions = ReadActions(v); break;
            case "mode": rule.Mode = ReadMode(v); break;
            case "tests" when _readTests: rule.Tests = ReadTests(v); break;
            case "threshold": rule.Threshold = ReadThreshold(v); break;
            case "sequence": rule.Sequence = ReadSequence(v); break;
            case "suppress": rule.Suppress = ReadSuppress(v); break;
            default: break;
        }
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

}
