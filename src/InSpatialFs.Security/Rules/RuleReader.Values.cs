using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace InSpatialFs.Security.Rules;

/// <summary>Stage 1, values of rule keys: priority, actions, mode and Falco's exceptions.</summary>
internal sealed partial class RuleReader
{
    /// <summary>Falco's priority name: the one written when it is Falco's, else the one our severity maps to.</summary>
    internal static string PriorityName(string written, Severity severity) => written.ToLowerInvariant() switch
    {
        "emergency" => "Emergency",
        "alert" => "Alert",
        "critical" => "Critical",
        "error" => "Error",
        "warning" => "Warning",
        "notice" => "Notice",
        "informational" or "info" => "Informational",
        "debug" => "Debug",
        _ => DefaultPriority(severity),
    };

    internal static string DefaultPriority(Severity severity) => severity switch
    {
        Severity.Info => "Informational",
        Severity.Low => "Notice",
        Severity.Medium => "Warning",
        Severity.High => "Error",
        _ => "Critical",
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

    /// <summary>Falco exceptions: name, fields (a list or one field), comps (same shape, default = or in), values.</summary>
    private List<ExceptionSpec> ReadExceptions(YamlNode v)
    {
        var result = new List<ExceptionSpec>();
        if (v is YamlScalarNode { Value: null or "" })
        {
            return result;
        }

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

            if (result.Exists(e => e.Name == name))
            {
                _diagnostics.Warning(RuleDiagnosticCodes.Redefined, Pos(m), $"exception '{name}' is given twice in this rule");
            }

            YamlNode? fields = Get(m, "fields"), comps = Get(m, "comps");
            var ex = new ExceptionSpec
            {
                Name = name,
                At = Pos(m),
                Fields = fields is null ? [] : TextList(fields, "exception field"),
                FieldsIsList = fields is YamlSequenceNode,
                Comps = comps is null ? [] : TextList(comps, "exception comparison"),
                CompsIsList = comps is YamlSequenceNode,
            };
            if (Get(m, "values") is YamlSequenceNode values)
            {
                foreach (YamlNode row in values)
                {
                    ex.Values.Add(ReadExceptionValue(row));
                }
            }
            else if (Get(m, "values") is { } bad && bad is not YamlScalarNode { Value: null or "" })
            {
                _diagnostics.Error(RuleDiagnosticCodes.BadValue, Pos(bad), $"exception '{name}': values must be a sequence");
            }

            result.Add(ex);
        }

        return result;
    }

    private ExceptionValue ReadExceptionValue(YamlNode node)
    {
        if (node is YamlSequenceNode seq)
        {
            var items = new List<ExceptionValue>();
            foreach (YamlNode child in seq)
            {
                items.Add(ReadExceptionValue(child));
            }

            return new ExceptionValue(null, items, Pos(node));
        }

        return new ExceptionValue(Text(node, "exception value"), null, Pos(node));
    }
}
