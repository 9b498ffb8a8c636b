namespace InSpatialFs.Security.Rules;

/// <summary>How an override item changes one key of an earlier item with the same name.</summary>
internal enum OverrideMode : byte
{
    Append,
    Replace,
}

/// <summary>A scalar as written, with its position (and, for multi-line or escaped scalars, where each character came from).</summary>
internal readonly record struct SourceText(string Text, SourcePosition At, ScalarMap? Map = null)
{
    /// <summary>The file position of character <paramref name="offset"/> of <see cref="Text"/>.</summary>
    public SourcePosition PositionOf(int offset)
    {
        if (Map != null)
        {
            (int line, int column) = Map.Position(offset);
            return At with { Line = line, Column = column };
        }

        return At.Offset(offset);
    }
}

internal abstract class ItemSpec
{
    public required string Name { get; init; }
    public required SourcePosition At { get; init; }
    /// <summary>Falco's <c>append: true</c>: append the listed keys to an earlier item.</summary>
    public bool Append { get; init; }
    /// <summary><c>override: {key: append|replace}</c>.</summary>
    public Dictionary<string, OverrideMode> Overrides { get; init; } = [];
    public bool IsOverride => Append || Overrides.Count > 0;
}

internal sealed class ListSpec : ItemSpec
{
    public List<SourceText> Items { get; set; } = [];
}

internal sealed class MacroSpec : ItemSpec
{
    public SourceText? Condition { get; set; }
}

/// <summary>One value of an exception: a scalar, or a list (<c>[a, b]</c>: a tuple row, or the items of one value).</summary>
internal sealed record ExceptionValue(SourceText? Scalar, IReadOnlyList<ExceptionValue>? Items, SourcePosition At);

/// <summary>
/// Falco's exception: <c>fields</c> and <c>comps</c> are either lists (each row of <c>values</c> is then a tuple) or
/// single names (each value is then one item of the list the field is compared with; comps defaults to <c>in</c>).
/// </summary>
internal sealed class ExceptionSpec
{
    public required string Name { get; init; }
    public required SourcePosition At { get; init; }
    public List<SourceText> Fields { get; init; } = [];
    public bool FieldsIsList { get; init; }
    public bool HasFields => Fields.Count > 0;
    public List<SourceText> Comps { get; init; } = [];
    public bool CompsIsList { get; init; }
    public bool HasComps => Comps.Count > 0;
    /// <summary>Rows: a tuple per row for list fields, a single value per row for a single field.</summary>
    public List<ExceptionValue> Values { get; init; } = [];
}

internal sealed class ThresholdSpec
{
    public List<SourceText> By { get; init; } = [];
    public long WindowNanos { get; init; }
    /// <summary>count: {gte: N}, or null for the distinct form.</summary>
    public int? CountAtLeast { get; init; }
    public SourceText? DistinctField { get; init; }
    public int DistinctAtLeast { get; init; }
    public required SourcePosition At { get; init; }
}

internal sealed class SequenceStepSpec
{
    public required string Name { get; init; }
    public required SourceText Condition { get; init; }
}

internal sealed class SequenceSpec
{
    public List<SourceText> By { get; init; } = [];
    public long MaxspanNanos { get; init; }
    public List<SequenceStepSpec> Steps { get; init; } = [];
    public SourceText? Until { get; init; }
    public required SourcePosition At { get; init; }
}

internal sealed class SuppressSpec
{
    public long WindowNanos { get; init; }
    /// <summary>Empty: the rule's own grouping (threshold/sequence by), else container.id.</summary>
    public List<SourceText> By { get; init; } = [];
}

internal sealed class RuleTestSpec
{
    public required string Name { get; init; }
    public required SourcePosition At { get; init; }
    /// <summary>Events as JSON lines (YAML maps are converted at read time, repeats when a test reads them).</summary>
    public TestEventList Events { get; init; } = new();
    public bool ExpectMatch { get; init; }
    public ResponseAction? ExpectActions { get; init; }
}

internal sealed class RuleSpec : ItemSpec
{
    public SourceText? Desc { get; set; }
    public SourceText? Condition { get; set; }
    public SourceText? Output { get; set; }
    public Severity? Severity { get; set; }
    /// <summary>Falco's priority name for the severity as written (Warning, Error, ...).</summary>
    public string? Priority { get; set; }
    public List<string>? Tags { get; set; }
    public bool? Enabled { get; set; }
    public List<ExceptionSpec>? Exceptions { get; set; }
    public ResponseAction? Actions { get; set; }
    public RuleMode? Mode { get; set; }
    public List<RuleTestSpec>? Tests { get; set; }
    public ThresholdSpec? Threshold { get; set; }
    public SequenceSpec? Sequence { get; set; }
    public SuppressSpec? Suppress { get; set; }
    /// <summary>Falco's <c>source:</c> (syscall when absent); rules for a source we do not serve are skipped.</summary>
    public string? Source { get; set; }
    /// <summary>Falco's <c>skip-if-unknown-filter</c>: a field nobody knows skips the rule instead of failing the load.</summary>
    public bool? SkipIfUnknownFilter { get; set; }
    /// <summary>Keys present in the item as written (an override only changes those).</summary>
    public HashSet<string> Keys { get; init; } = [];
}

/// <summary>Everything one file declared, in order.</summary>
internal sealed class RuleFileSpec
{
    public required string File { get; init; }
    public List<ItemSpec> Items { get; init; } = [];
    /// <summary>The highest required_engine_version the file declared (null: none).</summary>
    public Version? RequiredEngineVersion { get; set; }
}
