using System.Globalization;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Identity;

namespace InSpatialFs.Security.Rules;

internal enum FieldType : byte
{
    Text,
    Number,
    Bool,
}

/// <summary>Reads a text field without allocating; <paramref name="present"/> is false for a null field.</summary>
internal delegate ReadOnlySpan<char> TextGetter(FsEvent e, out bool present);

/// <summary>Reads a numeric field; <paramref name="present"/> is false when the event has no value for it.</summary>
internal delegate long NumberGetter(FsEvent e, out bool present);

/// <summary>Reads the <paramref name="index"/>-th value of a multi-valued field (<c>proc.aname</c>: every ancestor).</summary>
internal delegate ReadOnlySpan<char> IndexedTextGetter(FsEvent e, int index, out bool present);

/// <summary>
/// One rule field: its name, type and an accessor bound once at compile time, so evaluation never looks a
/// field up by name. Enumerated fields (evt.op, container.level, ...) read as their lower-case names.
/// </summary>
internal sealed class EventField
{
    public required string Name { get; init; }
    public required FieldType Type { get; init; }
    public TextGetter? Text { get; init; }
    public NumberGetter? Number { get; init; }
    public Func<FsEvent, bool>? Bool { get; init; }
    /// <summary>The values a text field can take, when it is an enumeration (checked at compile time).</summary>
    public IReadOnlyCollection<string>? Domain { get; init; }
    /// <summary>Multi-valued (any-of) reading: a comparison holds when it holds for one of the values.</summary>
    public IndexedTextGetter? Any { get; init; }
    /// <summary>evt.type, evt.op: values name operations; comparisons compile to a test of the event's operation.</summary>
    public Func<string, ulong>? OpsOf { get; init; }
    /// <summary>evt.res: compared with a number it reads the legacy numeric result (0, or the errno), for old rules.</summary>
    public NumberGetter? LegacyNumber { get; init; }
    /// <summary>How outputs show the value, when not as the condition compares it (evt.time as Falco's time of day).</summary>
    public Func<FsEvent, string?>? Render { get; init; }

    /// <summary>The value as text for outputs and keys (allocates; not for the hot path). Null: the event has none.</summary>
    public string? Format(FsEvent e)
    {
        if (Render != null)
        {
            return Render(e);
        }

        switch (Type)
        {
            case FieldType.Number:
                long n = Number!(e, out bool has);
                return has ? n.ToString(CultureInfo.InvariantCulture) : null;
            case FieldType.Bool: return Bool!(e) ? "true" : "false";
            default:
                ReadOnlySpan<char> s = Text!(e, out bool present);
                return present ? s.ToString() : null;
        }
    }

    /// <summary>The value for Falco's output_fields: numbers stay numbers, booleans booleans, absent values are null.</summary>
    public object? Value(FsEvent e)
    {
        if (Render != null)
        {
            return Render(e);
        }

        switch (Type)
        {
            case FieldType.Number:
                long n = Number!(e, out bool has);
                return has ? n : null;
            case FieldType.Bool: return Bool!(e);
            default: return Format(e);
        }
    }
}

/// <summary>What a field name resolves to.</summary>
internal enum FieldLookup : byte
{
    Found,
    /// <summary>Falco defines it but a filesystem cannot provide it: the rule is skipped ("needs ...").</summary>
    Unavailable,
    /// <summary>Nobody defines it: a load error (R003).</summary>
    Unknown,
    /// <summary>Known, but the argument is wrong (<c>proc.aname[x]</c>): a load error (R013).</summary>
    BadArgument,
}

/// <summary>
/// The field registry. Canonical names are Falco's (<c>fd.name</c>, <c>evt.type</c>, <c>proc.cmdline</c>...);
/// the names rules used before (<c>fs.path</c>, <c>evt.op</c>...) stay as exact aliases. Definitions live in
/// <see cref="FieldDefinitions"/>.
/// </summary>
internal static class EventFields
{
    private static readonly Dictionary<string, EventField> Fields = FieldDefinitions.Build();
    private static readonly Dictionary<string, Func<int, EventField>> IndexedFields = FieldDefinitions.BuildIndexed();

    public static IReadOnlyCollection<string> Names => Fields.Keys;

    public static bool TryGet(string name, out EventField field) => Fields.TryGetValue(name, out field!);

    /// <summary>Resolves a field as written (with its argument); transformers are applied by the compiler.</summary>
    public static FieldLookup Resolve(string name, string? arg, out EventField? field)
    {
        field = null;
        if (arg == null)
        {
            if (Fields.TryGetValue(name, out field))
            {
                return FieldLookup.Found;
            }

            return FalcoFieldCatalog.IsFalcoField(name) || IndexedFields.ContainsKey(name) ? FieldLookup.Unavailable : FieldLookup.Unknown;
        }

        if (IndexedFields.TryGetValue(name, out Func<int, EventField>? make))
        {
            if (!int.TryParse(arg, NumberStyles.None, CultureInfo.InvariantCulture, out int level) || level > ProcessContext.MaxAncestors)
            {
                return FieldLookup.BadArgument;
            }

            field = make(level);
            return FieldLookup.Found;
        }

        return FalcoFieldCatalog.IsFalcoField(name) ? FieldLookup.Unavailable : FieldLookup.Unknown;
    }

    internal static ReadOnlySpan<char> DirOf(string path)
    {
        int slash = path.LastIndexOf('/');
        return slash <= 0 ? "/" : path.AsSpan(0, slash);
    }

    internal static ReadOnlySpan<char> NameOf(string path)
    {
        int slash = path.LastIndexOf('/');
        return slash < 0 ? path : path.AsSpan(slash + 1);
    }
}
