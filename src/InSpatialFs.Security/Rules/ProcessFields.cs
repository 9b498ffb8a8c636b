using InSpatialFs.Security.Events;
using InSpatialFs.Security.Identity;

namespace InSpatialFs.Security.Rules;

/// <summary>
/// proc.*, user.*, group.* and thread.tid: read from the event's <see cref="ProcessContext"/> (pinned once per
/// process), so none of them costs a syscall per event. A process whose context could not be read has these
/// fields absent (comparisons false, <c>exists</c> false), except proc.pid, proc.name and user.uid, which every
/// event carries.
/// </summary>
internal static class ProcessFields
{
    private static ProcessContext? P(FsEvent e) => FieldDefinitions.ProcessOf(e);

    private static ReadOnlySpan<char> Text(string? s, out bool present)
    {
        present = s != null;
        return s;
    }

    private static long Number(long? v, out bool present)
    {
        present = v.HasValue;
        return v ?? 0;
    }

    public static void Add(Dictionary<string, EventField> d)
    {
        void Num(string n, NumberGetter f) => d[n] = new EventField { Name = n, Type = FieldType.Number, Number = f };
        void Txt(string n, TextGetter f) => d[n] = new EventField { Name = n, Type = FieldType.Text, Text = f };

        Num("proc.pid", (FsEvent e, out bool p) => Number(P(e)?.Pid ?? e.Pid, out p));
        Num("thread.tid", (FsEvent e, out bool p) => Number(e.Pid, out p));
        Num("proc.vpid", (FsEvent e, out bool p) => Number(P(e)?.VPid, out p));
        Num("proc.ppid", (FsEvent e, out bool p) => Number(P(e)?.PPid, out p));
        Num("proc.sid", (FsEvent e, out bool p) => Number(P(e)?.Sid, out p));
        Num("proc.vpgid", (FsEvent e, out bool p) => Number(P(e)?.Pgid, out p));
        Num("proc.tty", (FsEvent e, out bool p) => Number(P(e)?.Tty, out p));
        Txt("proc.name", (FsEvent e, out bool p) => Text(e.ProcName ?? P(e)?.Name, out p));
        Txt("proc.exe", (FsEvent e, out bool p) => Text(P(e)?.Exe, out p));
        Txt("proc.exepath", (FsEvent e, out bool p) => Text(P(e)?.ExePath, out p));
        Txt("proc.cmdline", (FsEvent e, out bool p) => Text(P(e)?.CmdLine, out p));
        Txt("proc.args", (FsEvent e, out bool p) => Text(P(e)?.Args, out p));
        Txt("proc.cwd", (FsEvent e, out bool p) => Text(P(e)?.Cwd, out p));
        Txt("proc.pname", (FsEvent e, out bool p) => Text(P(e)?.Parent?.Name, out p));
        Txt("proc.pexe", (FsEvent e, out bool p) => Text(P(e)?.Parent?.Exe, out p));
        Txt("proc.pexepath", (FsEvent e, out bool p) => Text(P(e)?.Parent?.ExePath, out p));
        Txt("proc.pcmdline", (FsEvent e, out bool p) => Text(P(e)?.Parent?.CmdLine, out p));
        Num("proc.pvpid", (FsEvent e, out bool p) => Number(P(e)?.Parent?.VPid, out p));
        Txt("proc.sname", (FsEvent e, out bool p) => Text(P(e)?.SessionLeader?.Name, out p));
        Num("proc.duration", (FsEvent e, out bool p) => Number(P(e) is { StartUnixNanos: > 0 } c ? e.TimeUnixNanos - c.StartUnixNanos : null, out p));
        d["proc.is_vpgid_leader"] = new EventField { Name = "proc.is_vpgid_leader", Type = FieldType.Bool, Bool = e => P(e) is { } c && c.Pgid == c.Pid };
        d["proc.is_pgid_leader"] = d["proc.is_vpgid_leader"];
        d["proc.is_sid_leader"] = new EventField { Name = "proc.is_sid_leader", Type = FieldType.Bool, Bool = e => P(e) is { } c && c.Sid == c.Pid };
        Txt("thread.cap_effective", (FsEvent e, out bool p) => Text(P(e)?.CapEffective, out p));
        Txt("thread.cap_permitted", (FsEvent e, out bool p) => Text(P(e)?.CapPermitted, out p));
        Txt("thread.cap_inheritable", (FsEvent e, out bool p) => Text(P(e)?.CapInheritable, out p));
        d["proc.aname"] = new EventField
        {
            Name = "proc.aname",
            Type = FieldType.Text,
            // In outputs: every ancestor's name, space separated (as Falco prints it).
            Text = (FsEvent e, out bool p) => Text(AncestorNames(P(e)), out p),
            Any = (FsEvent e, int i, out bool p) => Text(P(e)?.Ancestor(i + 1)?.Name, out p),
        };

        Num("user.uid", (FsEvent e, out bool p) => Number(e.Uid, out p));
        Num("user.gid", (FsEvent e, out bool p) => Number(e.Gid, out p));
        Num("group.gid", (FsEvent e, out bool p) => Number(e.Gid, out p));
        Num("user.loginuid", (FsEvent e, out bool p) => Number(P(e)?.LoginUid, out p));
        Txt("user.name", (FsEvent e, out bool p) => Text(P(e)?.Accounts?.User(e.Uid)?.Name, out p));
        Txt("user.homedir", (FsEvent e, out bool p) => Text(P(e)?.Accounts?.User(e.Uid)?.HomeDir, out p));
        Txt("user.shell", (FsEvent e, out bool p) => Text(P(e)?.Accounts?.User(e.Uid)?.Shell, out p));
        Txt("user.loginname", (FsEvent e, out bool p) => Text(LoginName(P(e)), out p));
        Txt("group.name", (FsEvent e, out bool p) => Text(P(e)?.Accounts?.GroupName(e.Gid), out p));
    }

    private static string? LoginName(ProcessContext? c) =>
        c is { LoginUid: >= 0 } ? c.Accounts?.User((uint)c.LoginUid)?.Name : null;

    private static string? AncestorNames(ProcessContext? c) =>
        c?.Parent == null ? null : string.Join(' ', Enumerable.Range(1, ProcessContext.MaxAncestors).Select(c.Ancestor).TakeWhile(a => a != null).Select(a => a!.Name));

    /// <summary>proc.aname[N] and friends: N = 0 is the process itself, 1 its parent, 2 the grandparent...</summary>
    public static Dictionary<string, Func<int, EventField>> Indexed() => new(StringComparer.Ordinal)
    {
        ["proc.aname"] = n => Ancestor($"proc.aname[{n}]", n, a => a.Name),
        ["proc.aexe"] = n => Ancestor($"proc.aexe[{n}]", n, a => a.Exe),
        ["proc.aexepath"] = n => Ancestor($"proc.aexepath[{n}]", n, a => a.ExePath),
        ["proc.acmdline"] = n => Ancestor($"proc.acmdline[{n}]", n, a => a.CmdLine),
        ["proc.apid"] = n => new EventField
        {
            Name = $"proc.apid[{n}]",
            Type = FieldType.Number,
            Number = (FsEvent e, out bool p) => Number(P(e)?.Ancestor(n)?.Pid, out p),
        },
    };

    private static EventField Ancestor(string name, int level, Func<ProcessContext, string> read) => new()
    {
        Name = name,
        Type = FieldType.Text,
        Text = (FsEvent e, out bool p) => Text(P(e)?.Ancestor(level) is { } a ? read(a) : null, out p),
    };
}
