using System.Globalization;
using InSpatialFs.Security.Events;

namespace InSpatialFs.Security.Rules;

internal enum FieldType : byte
{
    Text,
    Number,
    Bool,
}

/// <summary>Reads a text field without allocating; <paramref name="present"/> is false for a null field.</summary>
internal delegate ReadOnlySpan<char> TextGetter(FsEvent e, out bool present);

/// <summary>
/// One rule field: its name, type and an accessor bound once at compile time, so evaluation never looks a
/// field up by name. Enumerated fields (evt.op, container.level, ...) read as their lower-case names.
/// </summary>
internal sealed class EventField
{
    public required string Name { get; init; }
    public required FieldType Type { get; init; }
    public TextGetter? Text { get; init; }
    public Func<FsEvent, long>? Number { get; init; }
    public Func<FsEvent, bool>? Bool { get; init; }
    /// <summary>The values a text field can take, when it is an enumeration (checked at compile time).</summary>
    public IReadOnlyCollection<string>? Domain { get; init; }

    /// <summary>The value as text for outputs and keys (allocates; not for the hot path).</summary>
    public string? Format(FsEvent e)
    {
        switch (Type)
        {
            case FieldType.Number: return Number!(e).ToString(CultureInfo.InvariantCulture);
            case FieldType.Bool: return Bool!(e) ? "true" : "false";
            default:
                ReadOnlySpan<char> s = Text!(e, out bool present);
                return present ? s.ToString() : null;
        }
    }
}

internal static class EventFields
{
    // Mode bits from <sys/stat.h>.
    private const uint SIfmt = 0xF000, SIsuid = 0x800, SIsgid = 0x400, SIwoth = 0x2;
    private const int OTrunc = 0x200;

    private static readonly string[] OpNames = Enumerable.Range(0, FsOpNames.Count).Select(i => ((FsOp)i).Name()).ToArray();
    private static readonly string[] LevelNames = ["standard", "enhanced", "maximum"];
    private static readonly string[] ClassNames = ["allowed", "readonly", "forbidden"];
    private static readonly string[] DecisionNames = ["allow", "allow_direct", "deny", "would_deny"];
    private static readonly string[] ModeTypeNames = ["none", "fifo", "chr", "dir", "blk", "file", "symlink", "socket"];

    private static readonly Dictionary<string, EventField> Fields = Build();

    public static IReadOnlyCollection<string> Names => Fields.Keys;

    public static bool TryGet(string name, out EventField field) => Fields.TryGetValue(name, out field!);

    private static ReadOnlySpan<char> Nullable(string? s, out bool present)
    {
        present = s != null;
        return s;
    }

    private static ReadOnlySpan<char> Present(string s, out bool present)
    {
        present = true;
        return s;
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

    private static string ModeType(uint mode) => (mode & SIfmt) switch
    {
        0x1000 => ModeTypeNames[1],
        0x2000 => ModeTypeNames[2],
        0x4000 => ModeTypeNames[3],
        0x6000 => ModeTypeNames[4],
        0x8000 => ModeTypeNames[5],
        0xA000 => ModeTypeNames[6],
        0xC000 => ModeTypeNames[7],
        _ => ModeTypeNames[0],
    };

    private static Dictionary<string, EventField> Build()
    {
        var d = new Dictionary<string, EventField>(StringComparer.Ordinal);
        void Num(string n, Func<FsEvent, long> f) => d[n] = new EventField { Name = n, Type = FieldType.Number, Number = f };
        void Flag(string n, Func<FsEvent, bool> f) => d[n] = new EventField { Name = n, Type = FieldType.Bool, Bool = f };
        void Txt(string n, TextGetter f, IReadOnlyCollection<string>? domain = null) =>
            d[n] = new EventField { Name = n, Type = FieldType.Text, Text = f, Domain = domain };

        Num("evt.time", e => e.TimeUnixNanos);
        Num("evt.seq", e => (long)e.Seq);
        Txt("evt.op", (FsEvent e, out bool p) => Present(OpNames[(int)e.Op], out p), OpNames);
        Num("evt.flags", e => e.Flags);
        Num("evt.mode", e => e.Mode);
        Num("evt.res", e => e.Result);
        Flag("evt.is_write", e => e.IsWrite);
        Flag("evt.is_exec", e => e.IsExec);
        Num("evt.size", e => e.Size);
        Txt("evt.decision", (FsEvent e, out bool p) => Present(DecisionNames[(int)e.Decision], out p), DecisionNames);
        Txt("evt.reason", (FsEvent e, out bool p) => Nullable(e.Reason, out p));
        Num("evt.latency_ns", e => e.LatencyNanos);
        // Derived from evt.mode and evt.flags: rules have no bit operators, so the bits that matter are fields.
        Flag("evt.mode.setuid", e => (e.Mode & SIsuid) != 0);
        Flag("evt.mode.setgid", e => (e.Mode & SIsgid) != 0);
        Flag("evt.mode.other_write", e => (e.Mode & SIwoth) != 0);
        Txt("evt.mode.type", (FsEvent e, out bool p) => Present(ModeType(e.Mode), out p), ModeTypeNames);
        Flag("evt.is_trunc", e => e.Op == FsOp.Truncate || (e.Op is FsOp.Open or FsOp.Create && (e.Flags & OTrunc) != 0));
        Txt("fs.path", (FsEvent e, out bool p) => Present(e.Path, out p));
        Txt("fs.dir", (FsEvent e, out bool p) =>
        {
            p = true;
            return DirOf(e.Path);
        });
        Txt("fs.name", (FsEvent e, out bool p) =>
        {
            p = true;
            return NameOf(e.Path);
        });
        Txt("fs.target", (FsEvent e, out bool p) => Nullable(e.Target, out p));
        Txt("fs.link_target", (FsEvent e, out bool p) => Nullable(e.LinkTarget, out p));
        Txt("fs.xattr", (FsEvent e, out bool p) => Nullable(e.XattrName, out p));
        Flag("fs.is_new", e => e.IsNew);
        Num("proc.pid", e => e.Pid);
        Txt("proc.name", (FsEvent e, out bool p) => Nullable(e.ProcName, out p));
        Num("user.uid", e => e.Uid);
        Num("user.gid", e => e.Gid);
        Txt("container.id", (FsEvent e, out bool p) => Nullable(e.ContainerId, out p));
        Txt("container.level", (FsEvent e, out bool p) => Present(LevelNames[(int)e.Level], out p), LevelNames);
        Txt("policy.class", (FsEvent e, out bool p) => Present(ClassNames[(int)e.PolicyClass], out p), ClassNames);
        return d;
    }
}
