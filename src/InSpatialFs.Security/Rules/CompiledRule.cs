using System.Text;
using InSpatialFs.Security.Events;

namespace InSpatialFs.Security.Rules;

/// <summary>Group-by fields bound at compile time; hashes their values into a <see cref="StateKey"/>.</summary>
internal sealed class KeyPlan
{
    public static readonly KeyPlan Empty = new([]);

    private readonly EventField[] _fields;

    public KeyPlan(EventField[] fields) => _fields = fields;

    public IReadOnlyList<EventField> Fields => _fields;

    public string Describe() => string.Join(",", _fields.Select(f => f.Name));

    /// <summary>Two independent 64-bit hashes of the values: collisions are negligible and nothing is allocated.</summary>
    public StateKey KeyOf(FsEvent e)
    {
        ulong a = 14695981039346656037UL, b = 0x9E3779B97F4A7C15UL;
        foreach (EventField f in _fields)
        {
            switch (f.Type)
            {
                case FieldType.Number: Mix(ref a, ref b, (ulong)f.Number!(e, out _)); break;
                case FieldType.Bool: Mix(ref a, ref b, f.Bool!(e) ? 1UL : 0UL); break;
                default:
                    ReadOnlySpan<char> s = f.Text!(e, out bool present);
                    Mix(ref a, ref b, present ? (ulong)s.Length : ulong.MaxValue);
                    foreach (char c in s)
                    {
                        Mix(ref a, ref b, c);
                    }

                    break;
            }

            Mix(ref a, ref b, 0xFF51AFD7ED558CCDUL);
        }

        return new StateKey(a, b);
    }

    internal static ulong HashText(ReadOnlySpan<char> s)
    {
        ulong a = 14695981039346656037UL, b = 0x9E3779B97F4A7C15UL;
        foreach (char c in s)
        {
            Mix(ref a, ref b, c);
        }

        return a ^ (b * 0xC2B2AE3D27D4EB4FUL);
    }

    private static void Mix(ref ulong a, ref ulong b, ulong v)
    {
        a = (a ^ v) * 1099511628211UL;
        b = ulong.RotateLeft((b ^ v) * 0xC2B2AE3D27D4EB4FUL, 31) + 0x165667B19E3779F9UL;
    }
}

internal readonly record struct StateKey(ulong A, ulong B);

internal sealed class ThresholdPlan
{
    public required KeyPlan By { get; init; }
    public required long WindowNanos { get; init; }
    /// <summary>Count form: events per window; 0 in the distinct form.</summary>
    public int CountAtLeast { get; init; }
    public EventField? DistinctField { get; init; }
    public int DistinctAtLeast { get; init; }

    public string Describe() => DistinctField == null
        ? $"threshold by ({By.Describe()}) window {WindowNanos}ns count >= {CountAtLeast}"
        : $"threshold by ({By.Describe()}) window {WindowNanos}ns distinct {DistinctField.Name} >= {DistinctAtLeast}";
}

internal sealed class SequencePlan
{
    public required KeyPlan By { get; init; }
    public required long MaxspanNanos { get; init; }
    public required string[] StepNames { get; init; }
    public required CompiledCondition[] Steps { get; init; }
    public CompiledCondition? Until { get; init; }

    public string Describe() =>
        $"sequence by ({By.Describe()}) maxspan {MaxspanNanos}ns: "
        + string.Join(" then ", StepNames.Select((n, i) => $"[{n}: {Steps[i].Explain()}]"))
        + (Until != null ? $" until [{Until.Explain()}]" : "");
}

/// <summary>A rule ready to evaluate: predicates, stateful plans and its (carried-over) runtime state.</summary>
internal sealed class CompiledRule
{
    public required string Name { get; init; }
    public required string Desc { get; init; }
    public required Severity Severity { get; init; }
    /// <summary>Falco's priority name for alerts (Warning, Error...): as written, or mapped from our severity.</summary>
    public required string Priority { get; init; }
    /// <summary>Falco's source of the rule (syscall unless the file said otherwise).</summary>
    public string Source { get; init; } = "syscall";
    public required ResponseAction Actions { get; init; }
    public required RuleMode Mode { get; init; }
    public required IReadOnlyList<string> Tags { get; init; }
    public required bool Enabled { get; init; }
    public required string DefinedIn { get; init; }
    /// <summary>The filter (stateless and threshold rules); null for sequences.</summary>
    public CompiledCondition? Condition { get; init; }
    public ThresholdPlan? Threshold { get; init; }
    public SequencePlan? Sequence { get; init; }
    public long SuppressNanos { get; init; }
    public required KeyPlan SuppressBy { get; init; }
    public required OutputTemplate Output { get; init; }
    public required IReadOnlyList<RuleTestSpec> Tests { get; init; }
    /// <summary>Evaluated on the request path: stateless or threshold, with a deny action.</summary>
    public bool Inline => Sequence == null && (Actions & ResponseAction.Deny) != 0;
    public required ulong OpMask { get; init; }
    /// <summary>What the rule's state depends on; equal fingerprints keep state across a reload.</summary>
    public required string Fingerprint { get; init; }
    public RuleRuntime Runtime { get; set; } = null!;

    public string Kind => Sequence != null ? "sequence" : Threshold != null ? "threshold" : "stateless";

    public string Explain() => Sequence?.Describe()
        ?? (Condition!.Explain() + (Threshold != null ? "\n" + Threshold.Describe() : ""));
}
