using System.Text.RegularExpressions;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Matching;

namespace InSpatialFs.Security.Rules;

/// <summary>
/// Builds the predicate closures of an expanded, type-checked condition. Field accessors, value sets, globs
/// (<see cref="Glob"/>, linear time) and regexes (<see cref="RegexOptions.NonBacktracking"/>) are bound here once,
/// so evaluation does no lookup, no parsing, no backtracking and no allocation.
/// </summary>
internal static class PredicateBuilder
{
    /// <summary>Lists at or below this size are scanned; larger ones use a hash set (both allocation-free).</summary>
    private const int LinearListMax = 8;

    private delegate bool SpanTest(ReadOnlySpan<char> s);

    public static EventPredicate Build(Cond c, IReadOnlyList<string>? steps)
    {
        switch (c)
        {
            case AndCond a:
                {
                    EventPredicate[] parts = a.Children.Select(x => Build(x, steps)).ToArray();
                    if (parts.Length == 2)
                    {
                        EventPredicate l = parts[0], r = parts[1];
                        return (e, k) => l(e, k) && r(e, k);
                    }

                    return (e, k) =>
                    {
                        foreach (EventPredicate p in parts)
                        {
                            if (!p(e, k))
                            {
                                return false;
                            }
                        }

                        return true;
                    };
                }

            case OrCond o:
                {
                    EventPredicate[] parts = o.Children.Select(x => Build(x, steps)).ToArray();
                    if (parts.Length == 2)
                    {
                        EventPredicate l = parts[0], r = parts[1];
                        return (e, k) => l(e, k) || r(e, k);
                    }

                    return (e, k) =>
                    {
                        foreach (EventPredicate p in parts)
                        {
                            if (p(e, k))
                            {
                                return true;
                            }
                        }

                        return false;
                    };
                }

            case NotCond n:
                {
                    EventPredicate inner = Build(n.Inner, steps);
                    return (e, k) => !inner(e, k);
                }

            case ConstCond k:
                return k.Value ? static (_, _) => true : static (_, _) => false;
            case BoolFieldCond b:
                {
                    Func<FsEvent, bool> get = ConditionCompiler.BindChecked(b.Field).Bool!;
                    return (e, _) => get(e);
                }

            case ExistsCond ex:
                return Exists(ConditionCompiler.BindChecked(ex.Field));
            case CompareCond cmp:
                return Compare(cmp, steps);
            default:
                throw new InvalidOperationException("unexpected condition node " + c.GetType().Name);
        }
    }

    private static EventPredicate Exists(EventField f)
    {
        switch (f.Type)
        {
            case FieldType.Number:
                {
                    NumberGetter get = f.Number!;
                    return (e, _) =>
                    {
                        get(e, out bool present);
                        return present;
                    };
                }

            case FieldType.Text:
                {
                    TextGetter get = f.Text!;
                    return (e, _) =>
                    {
                        get(e, out bool present);
                        return present;
                    };
                }

            default:
                return static (_, _) => true;
        }
    }

    private static EventPredicate Compare(CompareCond cmp, IReadOnlyList<string>? steps)
    {
        EventField field = ConditionCompiler.BindChecked(cmp.Field);
        switch (cmp.Value)
        {
            case CaptureOperand cap:
                return Capture(field, cmp.Op, ConditionCompiler.BindChecked(cap.Field), IndexOf(steps!, cap.Step));
            case FieldOperand other:
                return Capture(field, cmp.Op, ConditionCompiler.BindChecked(other.Field), -1);
            default:
                break;
        }

        if (field.OpsOf != null && cmp.Field is FieldName && cmp.Op is CmpOp.Eq or CmpOp.Ne or CmpOp.In or CmpOp.Intersects)
        {
            // The commonest test in every rule: compare the operation, not its name.
            ulong mask = ConditionCompiler.ValueOps(field, cmp.Value);
            return cmp.Op == CmpOp.Ne ? (e, _) => (mask & (1UL << (int)e.Op)) == 0 : (e, _) => (mask & (1UL << (int)e.Op)) != 0;
        }

        string[] values = cmp.Value switch
        {
            ValueOperand v => [v.Text],
            ListOperand l => l.Items.Select(i => i.Text).ToArray(),
            _ => [],
        };
        bool legacy = field.LegacyNumber != null && (cmp.Op.IsOrdering() || values.All(v => ConditionCompiler.TryParseNumber(v, out _)));
        if (legacy)
        {
            return Number(field.LegacyNumber!, cmp.Op, values);
        }

        return field.Type switch
        {
            FieldType.Number => Number(field.Number!, cmp.Op, values),
            FieldType.Bool => BoolCompare(field.Bool!, cmp.Op, values[0] == "true"),
            _ => Text(field, cmp.Op, values),
        };
    }

    private static EventPredicate BoolCompare(Func<FsEvent, bool> get, CmpOp op, bool want) => op switch
    {
        CmpOp.Eq => (e, _) => get(e) == want,
        CmpOp.Ne => (e, _) => get(e) != want,
        _ => throw new InvalidOperationException($"operator {op.Name()} on a boolean"),
    };

    private static EventPredicate Number(NumberGetter get, CmpOp op, string[] values)
    {
        long[] set = values.Select(v => ConditionCompiler.TryParseNumber(v, out long n) ? n : 0).ToArray();
        long v = set.Length > 0 ? set[0] : 0;
        return op switch
        {
            CmpOp.In or CmpOp.Intersects => (e, _) => get(e, out bool p) is var x && p && Array.IndexOf(set, x) >= 0,
            CmpOp.Eq => (e, _) => get(e, out bool p) == v && p,
            CmpOp.Ne => (e, _) => get(e, out bool p) != v && p,
            CmpOp.Lt => (e, _) => get(e, out bool p) < v && p,
            CmpOp.Le => (e, _) => get(e, out bool p) <= v && p,
            CmpOp.Gt => (e, _) => get(e, out bool p) > v && p,
            CmpOp.Ge => (e, _) => get(e, out bool p) >= v && p,
            _ => throw new InvalidOperationException($"operator {op.Name()} on a number"),
        };
    }

    private static SpanTest TextTest(CmpOp op, string[] values)
    {
        string v = values.Length > 0 ? values[0] : "";
        switch (op)
        {
            case CmpOp.Eq or CmpOp.Ne:
                return s => s.SequenceEqual(v);
            case CmpOp.In or CmpOp.Intersects when values.Length > LinearListMax:
                {
                    HashSet<string>.AlternateLookup<ReadOnlySpan<char>> lookup =
                        new HashSet<string>(values, StringComparer.Ordinal).GetAlternateLookup<ReadOnlySpan<char>>();
                    return s => lookup.Contains(s);
                }

            case CmpOp.In or CmpOp.Intersects:
                return s =>
                {
                    foreach (string item in values)
                    {
                        if (s.SequenceEqual(item))
                        {
                            return true;
                        }
                    }

                    return false;
                };
            case CmpOp.Pmatch:
                {
                    var prefixes = new PathPrefixSet(values);
                    return s => prefixes.Matches(s);
                }

            case CmpOp.Contains: return s => s.Contains(v, StringComparison.Ordinal);
            case CmpOp.IContains: return s => s.Contains(v, StringComparison.OrdinalIgnoreCase);
            case CmpOp.StartsWith: return s => s.StartsWith(v, StringComparison.Ordinal);
            case CmpOp.EndsWith: return s => s.EndsWith(v, StringComparison.Ordinal);
            case CmpOp.BContains or CmpOp.BStartsWith:
                {
                    byte[] needle = FieldTransformers.ParseHex(v)!;
                    bool prefix = op == CmpOp.BStartsWith;
                    return s => FieldTransformers.Bytes(s, needle, prefix);
                }

            case CmpOp.Glob or CmpOp.IGlob:
                {
                    Glob glob = Glob.Compile(v, GlobDialect.Fnmatch, ignoreCase: op == CmpOp.IGlob);
                    return s => glob.IsMatch(s);
                }

            case CmpOp.Regex:
                {
                    var regex = new Regex(v, RegexOptions.NonBacktracking | RegexOptions.CultureInvariant);
                    return s => regex.IsMatch(s);
                }

            default:
                throw new InvalidOperationException($"operator {op.Name()} on text");
        }
    }

    private static EventPredicate Text(EventField field, CmpOp op, string[] values)
    {
        SpanTest test = TextTest(op, values);
        bool negate = op == CmpOp.Ne;
        if (field.Any is { } any)
        {
            // Multi-valued (proc.aname): the check holds for one of the values; != holds when none is equal.
            return (e, _) =>
            {
                bool seen = false;
                for (int i = 0; i < Identity.ProcessContext.MaxAncestors; i++)
                {
                    ReadOnlySpan<char> s = any(e, i, out bool present);
                    if (!present)
                    {
                        break;
                    }

                    seen = true;
                    if (test(s))
                    {
                        return !negate;
                    }
                }

                return negate && seen;
            };
        }

        TextGetter get = field.Text!;
        if (op == CmpOp.Eq)
        {
            string v = values[0];
            return (e, _) =>
            {
                ReadOnlySpan<char> s = get(e, out bool p);
                return p && s.SequenceEqual(v);
            };
        }

        return negate
            ? (e, _) =>
            {
                ReadOnlySpan<char> s = get(e, out bool p);
                return p && !test(s);
            }
            : (e, _) =>
            {
                ReadOnlySpan<char> s = get(e, out bool p);
                return p && test(s);
            };
    }

    /// <summary>Compares with a field of a captured event (<paramref name="stepIndex"/> ≥ 0) or of the same event (-1, val()).</summary>
    private static EventPredicate Capture(EventField field, CmpOp op, EventField other, int stepIndex)
    {
        if (!op.ComparesTwoFields(field.Type == FieldType.Text))
        {
            throw new InvalidOperationException($"operator {op.Name()} between two fields"); // refused at load (R004)
        }

        if (field.Type == FieldType.Text)
        {
            TextGetter get = field.Text!, getOther = other.Text!;
            return (e, k) =>
            {
                FsEvent? source = stepIndex < 0 ? e : k?[stepIndex];
                if (source == null)
                {
                    return false;
                }

                ReadOnlySpan<char> s = get(e, out bool p);
                ReadOnlySpan<char> v = getOther(source, out bool q);
                return p && q && ApplyText(op, s, v);
            };
        }

        NumberGetter num = NumberOf(field), numOther = NumberOf(other);
        Func<long, long, bool> compare = op switch
        {
            CmpOp.Eq => static (a, b) => a == b,
            CmpOp.Ne => static (a, b) => a != b,
            CmpOp.Lt => static (a, b) => a < b,
            CmpOp.Le => static (a, b) => a <= b,
            CmpOp.Gt => static (a, b) => a > b,
            CmpOp.Ge => static (a, b) => a >= b,
            _ => throw new InvalidOperationException($"operator {op.Name()} between two numbers"),
        };
        return (e, k) =>
        {
            FsEvent? source = stepIndex < 0 ? e : k?[stepIndex];
            if (source == null)
            {
                return false;
            }

            long a = num(e, out bool p), b = numOther(source, out bool q);
            return p && q && compare(a, b);
        };
    }

    private static NumberGetter NumberOf(EventField f)
    {
        if (f.Type == FieldType.Number)
        {
            return f.Number!;
        }

        Func<FsEvent, bool> b = f.Bool!;
        return (FsEvent e, out bool p) =>
        {
            p = true;
            return b(e) ? 1 : 0;
        };
    }

    internal static bool ApplyText(CmpOp op, ReadOnlySpan<char> s, ReadOnlySpan<char> v) => op switch
    {
        CmpOp.Eq => s.SequenceEqual(v),
        CmpOp.Ne => !s.SequenceEqual(v),
        CmpOp.Contains => s.Contains(v, StringComparison.Ordinal),
        CmpOp.IContains => s.Contains(v, StringComparison.OrdinalIgnoreCase),
        CmpOp.StartsWith => s.StartsWith(v, StringComparison.Ordinal),
        CmpOp.EndsWith => s.EndsWith(v, StringComparison.Ordinal),
        _ => throw new InvalidOperationException($"operator {op.Name()} between two fields"), // Capture refused it at build
    };

    private static int IndexOf(IReadOnlyList<string> steps, string name)
    {
        for (int i = 0; i < steps.Count; i++)
        {
            if (steps[i] == name)
            {
                return i;
            }
        }

        return -1;
    }
}
