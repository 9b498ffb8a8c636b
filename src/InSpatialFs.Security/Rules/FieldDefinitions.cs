using System.Globalization;
using InSpatialFs.Security.Events;
using InSpatialFs.Security.Identity;

namespace InSpatialFs.Security.Rules;

/// <summary>
/// Every field a rule can name: Falco's (canonical) and ours from before (aliases, kept for a deprecation period).
/// What each Falco field means for a filesystem event: README.md, "Rules from Falco".
/// </summary>
internal static class FieldDefinitions
{
    // Mode bits from <sys/stat.h>, open flags from <fcntl.h>.
    private const uint SIfmt = 0xF000, SIsuid = 0x800, SIsgid = 0x400, SIwoth = 0x2;
    private const int OTrunc = 0x200, OCreat = 0x40, OAccMode = 3;

    private static readonly string[] OpNames = Enumerable.Range(0, FsOpNames.Count).Select(i => ((FsOp)i).Name()).ToArray();
    private static readonly string[] TypeNames = Enumerable.Range(0, FsOpNames.Count).Select(i => SyscallMap.TypeOf((FsOp)i)).ToArray();
    private static readonly string[] LevelNames = ["standard", "enhanced", "maximum"];
    private static readonly string[] ClassNames = ["allowed", "readonly", "forbidden"];
    private static readonly string[] DecisionNames = ["allow", "allow_direct", "deny", "would_deny"];
    private static readonly string[] ModeTypeNames = ["none", "fifo", "chr", "dir", "blk", "file", "symlink", "socket"];
    private static readonly string HostName = Environment.MachineName;

    /// <summary>The process context of an event: replayed events carry their own, live ones their pinned caller's.</summary>
    internal static ProcessContext? ProcessOf(FsEvent e) => e.Process ?? e.Caller?.Process;

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

    private static long Has(long v, out bool present)
    {
        present = true;
        return v;
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

    private static bool IsOpenOp(FsOp op) => op is FsOp.Open or FsOp.Create or FsOp.OpenDir or FsOp.TmpFile;

    /// <summary>fd.typechar: 'd' for directories, 'p' fifos, 'u' sockets, 'f' for everything else (Falco's file).</summary>
    private static string TypeChar(FsEvent e)
    {
        if (e.Op is FsOp.OpenDir or FsOp.ReadDir or FsOp.MkDir or FsOp.RmDir)
        {
            return "d";
        }

        return (e.Mode & SIfmt) switch
        {
            0x4000 when e.Op != FsOp.Create => "d",
            0x1000 when e.Op != FsOp.MkNod => "p",
            0xC000 when e.Op != FsOp.MkNod => "u",
            _ => "f",
        };
    }

    private static string FdType(string typeChar) => typeChar switch
    {
        "d" => "directory",
        "p" => "pipe",
        "u" => "unix",
        _ => "file",
    };

    /// <summary>The path argument for the operations whose system call has one (unlink, mkdir, rmdir, chown...).</summary>
    private static string? PathArg(FsEvent e) => e.Op is FsOp.Unlink or FsOp.RmDir or FsOp.MkDir or FsOp.Chown or FsOp.Truncate
        or FsOp.ReadLink or FsOp.Utimens or FsOp.StatFs or FsOp.GetAttr or FsOp.Access or FsOp.SetXattr or FsOp.GetXattr
        or FsOp.ListXattr or FsOp.RemoveXattr or FsOp.MkNod ? e.Path : null;

    /// <summary>The name argument (open, openat, creat, unlinkat, mknodat).</summary>
    private static string? NameArg(FsEvent e) => IsOpenOp(e.Op) || e.Op is FsOp.Unlink or FsOp.RmDir or FsOp.MkNod ? e.Path : null;

    private static bool Renames(FsEvent e) => e.Op is FsOp.Rename or FsOp.Link;

    public static Dictionary<string, EventField> Build()
    {
        var d = new Dictionary<string, EventField>(StringComparer.Ordinal);
        void Num(string n, NumberGetter f, Func<FsEvent, string?>? render = null) =>
            d[n] = new EventField { Name = n, Type = FieldType.Number, Number = f, Render = render };
        void Flag(string n, Func<FsEvent, bool> f) => d[n] = new EventField { Name = n, Type = FieldType.Bool, Bool = f };
        void Txt(string n, TextGetter f, IReadOnlyCollection<string>? domain = null) =>
            d[n] = new EventField { Name = n, Type = FieldType.Text, Text = f, Domain = domain };
        void Alias(string alias, string of) => d[alias] = d[of];

        // ---- evt.*
        Num("evt.time", (FsEvent e, out bool p) => Has(e.TimeUnixNanos, out p), e => FalcoTime(e.TimeUnixNanos));
        Num("evt.rawtime", (FsEvent e, out bool p) => Has(e.TimeUnixNanos, out p));
        Num("evt.rawtime.s", (FsEvent e, out bool p) => Has(e.TimeUnixNanos / 1_000_000_000, out p));
        Num("evt.rawtime.ns", (FsEvent e, out bool p) => Has(e.TimeUnixNanos % 1_000_000_000, out p));
        Txt("evt.time.iso8601", (FsEvent e, out bool p) => Present(FsEventJson.FormatTime(e.TimeUnixNanos), out p));
        Alias("evt.datetime", "evt.time.iso8601");
        Num("evt.num", (FsEvent e, out bool p) => Has((long)e.Seq, out p));
        Alias("evt.seq", "evt.num");
        d["evt.type"] = new EventField
        {
            Name = "evt.type",
            Type = FieldType.Text,
            Text = (FsEvent e, out bool p) => Present(TypeNames[(int)e.Op], out p),
            OpsOf = SyscallMap.OpsOf,
        };
        Alias("syscall.type", "evt.type");
        d["evt.op"] = new EventField
        {
            Name = "evt.op",
            Type = FieldType.Text,
            Text = (FsEvent e, out bool p) => Present(OpNames[(int)e.Op], out p),
            Domain = OpNames,
            OpsOf = name => FsOpNames.TryParse(name, out FsOp op) ? 1UL << (int)op : 0,
        };
        Txt("evt.dir", (FsEvent e, out bool p) => Present("<", out p), ["<", ">"]);
        Txt("evt.category", (FsEvent e, out bool p) => Present("file", out p));
        Txt("evt.hostname", (FsEvent e, out bool p) => Present(HostName, out p));
        Txt("evt.source", (FsEvent e, out bool p) => Present("syscall", out p));
        d["evt.res"] = new EventField
        {
            Name = "evt.res",
            Type = FieldType.Text,
            Text = (FsEvent e, out bool p) => Present(FieldRendering.ResultName(e.Result), out p),
            LegacyNumber = (FsEvent e, out bool p) => Has(e.Result, out p),
        };
        Num("evt.rawres", (FsEvent e, out bool p) => Has(e.Result == 0 ? 0 : -(long)e.Result, out p));
        Flag("evt.failed", e => e.Result != 0);
        Num("evt.flags", (FsEvent e, out bool p) => Has(e.Flags, out p));
        Num("evt.mode", (FsEvent e, out bool p) => Has(e.Mode, out p));
        Flag("evt.is_write", e => e.IsWrite);
        Flag("evt.is_exec", e => e.IsExec);
        Flag("evt.is_open_read", e => IsOpenOp(e.Op) && !e.IsExec && (e.Flags & OAccMode) is 0 or 2);
        Flag("evt.is_open_write", e => IsOpenOp(e.Op) && !e.IsExec && ((e.Flags & OAccMode) is 1 or 2 || e.IsWrite));
        // Falco: a file created with an execute bit (an exec of an existing file is evt.is_exec, ours).
        Flag("evt.is_open_exec", e => (e.Op is FsOp.Create or FsOp.TmpFile || (IsOpenOp(e.Op) && (e.Flags & OCreat) != 0)) && (e.Mode & 0x49) != 0);
        Flag("evt.is_open_create", e => e.Op is FsOp.Create or FsOp.TmpFile || (IsOpenOp(e.Op) && (e.Flags & OCreat) != 0));
        Num("evt.size", (FsEvent e, out bool p) => Has(e.Size, out p));
        Txt("evt.decision", (FsEvent e, out bool p) => Present(DecisionNames[(int)e.Decision], out p), DecisionNames);
        Txt("evt.reason", (FsEvent e, out bool p) => Nullable(e.Reason, out p));
        Num("evt.latency", (FsEvent e, out bool p) => Has(e.LatencyNanos, out p));
        Alias("evt.latency.ns", "evt.latency");
        Alias("evt.latency_ns", "evt.latency");
        // Derived from evt.mode and evt.flags: rules have no bit operators, so the bits that matter are fields.
        Flag("evt.mode.setuid", e => (e.Mode & SIsuid) != 0);
        Flag("evt.mode.setgid", e => (e.Mode & SIsgid) != 0);
        Flag("evt.mode.other_write", e => (e.Mode & SIwoth) != 0);
        Txt("evt.mode.type", (FsEvent e, out bool p) => Present(ModeType(e.Mode), out p), ModeTypeNames);
        // O_TRUNC on a CREATE that made the file truncates nothing: `> new.log` or pip writing new files is no overwrite.
        Flag("evt.is_trunc", e => e.Op == FsOp.Truncate || (e.Op == FsOp.Open && (e.Flags & OTrunc) != 0) || (e.Op == FsOp.Create && !e.IsNew && (e.Flags & OTrunc) != 0));

        // ---- evt.arg.*: the arguments of the system call the operation stands for.
        Txt("evt.arg.name", (FsEvent e, out bool p) => Nullable(NameArg(e), out p));
        Txt("evt.arg.path", (FsEvent e, out bool p) => Nullable(PathArg(e), out p));
        Alias("evt.arg.pathname", "evt.arg.path");
        Txt("evt.arg.filename", (FsEvent e, out bool p) => Nullable(e.Op == FsOp.Chmod ? e.Path : null, out p));
        Txt("evt.arg.oldpath", (FsEvent e, out bool p) => Nullable(Renames(e) ? e.Path : null, out p));
        Txt("evt.arg.newpath", (FsEvent e, out bool p) => Nullable(Renames(e) ? e.Target : null, out p));
        Txt("evt.arg.target", (FsEvent e, out bool p) => Nullable(e.Op == FsOp.Symlink ? e.LinkTarget : null, out p));
        Txt("evt.arg.linkpath", (FsEvent e, out bool p) => Nullable(e.Op == FsOp.Symlink ? e.Path : null, out p));
        Txt("evt.arg.flags", (FsEvent e, out bool p) => Nullable(IsOpenOp(e.Op) ? FieldRendering.CachedOpenFlags(e.Flags) : null, out p));
        Txt("evt.arg.mode", (FsEvent e, out bool p) => Nullable(
            e.Op is FsOp.Chmod or FsOp.Create or FsOp.MkDir or FsOp.MkNod or FsOp.Open or FsOp.TmpFile ? FieldRendering.CachedMode(e.Mode) : null, out p));
        Txt("evt.arg.res", (FsEvent e, out bool p) => Present(FieldRendering.ResultName(e.Result), out p));

        // ---- fd.* and fs.path.*: the file the operation acts on.
        Txt("fd.name", (FsEvent e, out bool p) => Present(e.Path, out p));
        Alias("fd.nameraw", "fd.name");
        Alias("fs.path", "fd.name");
        Alias("fs.path.name", "fd.name");
        Alias("fs.path.nameraw", "fd.name");
        Txt("fd.directory", (FsEvent e, out bool p) =>
        {
            p = true;
            return EventFields.DirOf(e.Path);
        });
        Alias("fs.dir", "fd.directory");
        Txt("fd.filename", (FsEvent e, out bool p) =>
        {
            p = true;
            return EventFields.NameOf(e.Path);
        });
        Alias("fs.name", "fd.filename");
        Txt("fd.typechar", (FsEvent e, out bool p) => Present(TypeChar(e), out p));
        Txt("fd.type", (FsEvent e, out bool p) => Present(FdType(TypeChar(e)), out p));
        Num("fd.num", (FsEvent e, out bool p) => Has(e.Result == 0 ? 0 : -1, out p));
        Flag("fd.name_changed", e => false);
        Txt("fs.path.source", (FsEvent e, out bool p) => Nullable(Renames(e) ? e.Path : e.Op == FsOp.Symlink ? e.LinkTarget : null, out p));
        Alias("fs.path.sourceraw", "fs.path.source");
        Txt("fs.path.target", (FsEvent e, out bool p) => Nullable(Renames(e) ? e.Target : e.Op == FsOp.Symlink ? e.Path : null, out p));
        Alias("fs.path.targetraw", "fs.path.target");
        Txt("fs.target", (FsEvent e, out bool p) => Nullable(e.Target, out p));
        Txt("fs.link_target", (FsEvent e, out bool p) => Nullable(e.LinkTarget, out p));
        Txt("fs.link_resolved", (FsEvent e, out bool p) => Nullable(e.LinkResolved, out p));
        Txt("fs.xattr", (FsEvent e, out bool p) => Nullable(e.XattrName, out p));
        Flag("fs.is_new", e => e.IsNew);

        ProcessFields.Add(d);

        // ---- container.*: the instance's name for its members, "host" for anyone else (as Falco says for the host).
        Txt("container.id", (FsEvent e, out bool p) => Present(e.ContainerId ?? "host", out p));
        Alias("container.name", "container.id");
        // A filesystem does not know the image or the pod: these read as absent, as for a process outside Kubernetes, so
        // image- and pod-based exceptions of Falco's rules never match (the rules still run) and outputs print <NA>.
        foreach (string image in (string[])["container.image", "container.image.repository", "container.image.tag", "container.image.id", "container.image.digest", "k8s.pod.name", "k8s.ns.name"])
        {
            Txt(image, (FsEvent e, out bool p) => Nullable(null, out p));
        }

        Txt("container.level", (FsEvent e, out bool p) => Present(LevelNames[(int)e.Level], out p), LevelNames);
        Txt("policy.class", (FsEvent e, out bool p) => Present(ClassNames[(int)e.PolicyClass], out p), ClassNames);
        return d;
    }

    public static Dictionary<string, Func<int, EventField>> BuildIndexed() => ProcessFields.Indexed();

    /// <summary>evt.time in outputs: Falco's local time of day with nanoseconds (we print UTC).</summary>
    internal static string FalcoTime(long unixNanos)
    {
        long seconds = Math.DivRem(unixNanos, 1_000_000_000L, out long nanos);
        DateTime t = DateTime.UnixEpoch.AddSeconds(seconds);
        return t.ToString("HH:mm:ss", CultureInfo.InvariantCulture) + "." + nanos.ToString("D9", CultureInfo.InvariantCulture);
    }
}
