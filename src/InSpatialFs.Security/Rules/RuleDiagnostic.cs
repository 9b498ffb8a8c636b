namespace InSpatialFs.Security.Rules;

public enum DiagnosticSeverity : byte
{
    Warning,
    Error,
}

/// <summary>Diagnostic codes: stable identifiers a rule author can search for.</summary>
public static class RuleDiagnosticCodes
{
    public const string BadYaml = "R001";
    public const string BadItem = "R002";
    public const string UnknownField = "R003";
    public const string BadOperator = "R004";
    public const string UndefinedMacro = "R005";
    public const string UndefinedList = "R006";
    public const string UnusedList = "R007";
    public const string UnusedMacro = "R008";
    public const string SequenceWithoutMaxspan = "R009";
    public const string BadDuration = "R010";
    public const string UnknownAction = "R011";
    public const string BadCondition = "R012";
    public const string BadValue = "R013";
    public const string UnknownKey = "R014";
    public const string OverrideOfUnknown = "R015";
    public const string BadSeverity = "R016";
    public const string BadCapture = "R017";
    public const string BadTestEvent = "R019";
    public const string FileNotFound = "R020";
    public const string MacroCycle = "R021";
    /// <summary>A condition (or list) grows past the compiler's limits once macros and lists are expanded.</summary>
    public const string TooLarge = "R022";
    /// <summary>Warning: a rule needs fields or events a filesystem cannot have, or is for another source; it is not loaded.</summary>
    public const string RuleSkipped = "R023";
    /// <summary>Warning: an item redefines an earlier one of the same name (the later one wins, as in Falco).</summary>
    public const string Redefined = "R024";
    /// <summary>The file requires a newer Falco engine version than the one whose semantics we implement.</summary>
    public const string EngineVersion = "R025";
    /// <summary>Warning: a rule matches only operations that become events rarely (lookup, access: when denied) or never (read, getattr, ...).</summary>
    public const string QuietOperations = "R026";
    /// <summary>Warning: a new rule lacks desc, output or priority, which Falco's loader requires (ours fills them in).</summary>
    public const string IncompleteRule = "R027";
}

/// <summary>A load error or warning with its position (1-based line and column; 0 when unknown).</summary>
public sealed record RuleDiagnostic(
    string Code,
    DiagnosticSeverity Severity,
    string File,
    int Line,
    int Column,
    string Message)
{
    public bool IsError => Severity == DiagnosticSeverity.Error;

    public override string ToString() =>
        $"{File}:{Line}:{Column}: {(IsError ? "error" : "warning")} {Code}: {Message}";
}

/// <summary>Where a spec came from, for diagnostics.</summary>
public readonly record struct SourcePosition(string File, int Line, int Column)
{
    public static readonly SourcePosition None = new("<none>", 0, 0);

    public SourcePosition Offset(int columns) => this with { Column = Column + columns };
}

/// <summary>Collects diagnostics across the pipeline stages.</summary>
public sealed class DiagnosticBag
{
    private readonly List<RuleDiagnostic> _items = [];

    public IReadOnlyList<RuleDiagnostic> Items => _items;

    public bool HasErrors => _items.Exists(d => d.IsError);

    public void Error(string code, SourcePosition at, string message) =>
        _items.Add(new RuleDiagnostic(code, DiagnosticSeverity.Error, at.File, at.Line, at.Column, message));

    public void Warning(string code, SourcePosition at, string message) =>
        _items.Add(new RuleDiagnostic(code, DiagnosticSeverity.Warning, at.File, at.Line, at.Column, message));
}
