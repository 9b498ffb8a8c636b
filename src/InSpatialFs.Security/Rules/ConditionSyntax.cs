namespace InSpatialFs.Security.Rules;

/// <summary>
/// The left-hand side of a check: a field (with its optional argument, <c>proc.aname[2]</c>) or a transformer
/// applied to one (<c>tolower(fd.name)</c>). Offsets are character offsets in the condition text.
/// </summary>
internal abstract record FieldExpr(int At)
{
    /// <summary>The expression as written (field[arg], transformer(inner)).</summary>
    public abstract string Text { get; }

    /// <summary>The field at the bottom of the expression (transformers are applied to it).</summary>
    public abstract FieldName Root { get; }
}

internal sealed record FieldName(string Name, string? Arg, int At) : FieldExpr(At)
{
    public override string Text => Arg == null ? Name : $"{Name}[{Arg}]";

    public override FieldName Root => this;
}

internal sealed record FieldTransform(string Transformer, FieldExpr Inner, int At) : FieldExpr(At)
{
    public override string Text => $"{Transformer}({Inner.Text})";

    public override FieldName Root => Inner.Root;
}

/// <summary>Condition syntax tree (before macros and lists are expanded, and after). And/or are n-ary, so a long chain is flat, not deep.</summary>
internal abstract record Cond(int Offset);

internal sealed record AndCond(IReadOnlyList<Cond> Children, int At) : Cond(At);

internal sealed record OrCond(IReadOnlyList<Cond> Children, int At) : Cond(At);

internal sealed record NotCond(Cond Inner, int At) : Cond(At);

/// <summary>A bare identifier: a macro.</summary>
internal sealed record NameCond(string Name, int At) : Cond(At);

/// <summary>A boolean field used as a predicate without an operator (<c>evt.is_exec</c>; Falco spells it <c>evt.is_exec=true</c>).</summary>
internal sealed record BoolFieldCond(FieldExpr Field, int At) : Cond(At);

internal sealed record ExistsCond(FieldExpr Field, int At) : Cond(At);

internal sealed record CompareCond(FieldExpr Field, CmpOp Op, Operand Value, int At, int OpAt) : Cond(At);

/// <summary>Constant true/false (an empty list after expansion).</summary>
internal sealed record ConstCond(bool Value, int At) : Cond(At);

internal abstract record Operand(int Offset);

/// <summary>A single value; <see cref="Quoted"/> values never name a list.</summary>
internal sealed record ValueOperand(string Text, bool Quoted, int At) : Operand(At);

/// <summary><c>(a, b)</c>, or a bare list name after in/intersects/pmatch (<see cref="Parenthesized"/> false).</summary>
internal sealed record ListOperand(IReadOnlyList<ValueOperand> Items, bool Parenthesized, int At) : Operand(At);

/// <summary><c>$step.field</c>: the field of the event an earlier sequence step captured.</summary>
internal sealed record CaptureOperand(string Step, FieldExpr Field, int At) : Operand(At);

/// <summary><c>val(field)</c> or a transformer on the right-hand side: compare with another field of the same event.</summary>
internal sealed record FieldOperand(FieldExpr Field, int At) : Operand(At);

internal sealed class ConditionSyntaxException(string message, int offset, bool badOperator = false) : Exception(message)
{
    public int Offset { get; } = offset;

    /// <summary>The error is an unknown operator (R004) rather than malformed syntax (R012).</summary>
    public bool BadOperator { get; } = badOperator;
}
