namespace InSpatialFs.Security.Rules;

/// <summary>
/// Comparison operators of the condition language, as Falco's engine defines them (libsinsp filter parser):
/// an operator that is not one of these is a load error (R004), never a silent fallback.
/// </summary>
internal enum CmpOp : byte
{
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Intersects,
    Pmatch,
    Contains,
    IContains,
    BContains,
    StartsWith,
    BStartsWith,
    EndsWith,
    Glob,
    IGlob,
    Regex,
}

internal static class CmpOps
{
    /// <summary>Operator spellings; <c>==</c> is Falco's synonym of <c>=</c>.</summary>
    private static readonly Dictionary<string, CmpOp> ByName = new(StringComparer.Ordinal)
    {
        ["="] = CmpOp.Eq,
        ["=="] = CmpOp.Eq,
        ["!="] = CmpOp.Ne,
        ["<"] = CmpOp.Lt,
        ["<="] = CmpOp.Le,
        [">"] = CmpOp.Gt,
        [">="] = CmpOp.Ge,
        ["in"] = CmpOp.In,
        ["intersects"] = CmpOp.Intersects,
        ["pmatch"] = CmpOp.Pmatch,
        ["contains"] = CmpOp.Contains,
        ["icontains"] = CmpOp.IContains,
        ["bcontains"] = CmpOp.BContains,
        ["startswith"] = CmpOp.StartsWith,
        ["bstartswith"] = CmpOp.BStartsWith,
        ["endswith"] = CmpOp.EndsWith,
        ["glob"] = CmpOp.Glob,
        ["iglob"] = CmpOp.IGlob,
        ["regex"] = CmpOp.Regex,
    };

    /// <summary>Every operator name the language accepts (for messages).</summary>
    public static string Known => "=, ==, !=, <, <=, >, >=, in, intersects, pmatch, contains, icontains, bcontains, startswith, bstartswith, endswith, glob, iglob, regex, exists";

    public static bool TryParse(string text, out CmpOp op) => ByName.TryGetValue(text, out op);

    public static string Name(this CmpOp op) => op switch
    {
        CmpOp.Eq => "=",
        CmpOp.Ne => "!=",
        CmpOp.Lt => "<",
        CmpOp.Le => "<=",
        CmpOp.Gt => ">",
        CmpOp.Ge => ">=",
        CmpOp.In => "in",
        CmpOp.Intersects => "intersects",
        CmpOp.Pmatch => "pmatch",
        CmpOp.Contains => "contains",
        CmpOp.IContains => "icontains",
        CmpOp.BContains => "bcontains",
        CmpOp.StartsWith => "startswith",
        CmpOp.BStartsWith => "bstartswith",
        CmpOp.EndsWith => "endswith",
        CmpOp.Glob => "glob",
        CmpOp.IGlob => "iglob",
        CmpOp.Regex => "regex",
        _ => throw new ArgumentOutOfRangeException(nameof(op), op, "not an operator"),
    };

    /// <summary>Operators whose right-hand side is a list: <c>(a, b)</c> or a list name.</summary>
    public static bool TakesList(this CmpOp op) => op is CmpOp.In or CmpOp.Intersects or CmpOp.Pmatch;

    public static bool IsOrdering(this CmpOp op) => op is CmpOp.Lt or CmpOp.Le or CmpOp.Gt or CmpOp.Ge;

    /// <summary>
    /// Operators that can compare a field with another field (<c>val()</c>, a sequence's <c>$step.field</c>): on text
    /// equality and the substring tests, on numbers (and booleans, as 0/1) equality and ordering. The others need a
    /// compiled literal (a glob, a regex, hex bytes, a list) and are a load error there, never a comparison that is
    /// silently false.
    /// </summary>
    public static bool ComparesTwoFields(this CmpOp op, bool text) => text
        ? op is CmpOp.Eq or CmpOp.Ne or CmpOp.Contains or CmpOp.IContains or CmpOp.StartsWith or CmpOp.EndsWith
        : op is CmpOp.Eq or CmpOp.Ne || op.IsOrdering();

    /// <summary>Operators that only make sense on text.</summary>
    public static bool IsTextOnly(this CmpOp op) => op is CmpOp.Contains or CmpOp.IContains or CmpOp.BContains
        or CmpOp.StartsWith or CmpOp.BStartsWith or CmpOp.EndsWith or CmpOp.Glob or CmpOp.IGlob or CmpOp.Regex or CmpOp.Pmatch;
}
